/**
 * Benchmark 2: one big NAR from daemon A to daemon B (two host processes on loopback, B has A
 * as a static peer), layer by layer: through B's shim to an HTTP client (what Nix gets), over
 * /peerix/nar/1 alone (no HTTP, no verification), the bare libp2p stream between the same two
 * nodes (bytes from memory), and raw TCP between the same two processes. Also the peak RSS of
 * both daemons while the shim streams, and a sweep of the NAR writer chunk × send chunk over
 * the same libp2p connection.
 */
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { DEFAULT_CHUNK_SIZE } from '../src/nix/nar.js'
import { SEND_CHUNK_BYTES } from '../src/p2p/nar/constants.js'
import { NixEnv } from '../test/helpers/nix.js'
import { BenchHost } from './host-client.js'
import { HttpClient } from './http-client.js'
import { MiB, range, type Table } from './report.js'
import { addRandomFile, generateKey, hashPart, narinfoField } from './stores.js'
import type { StartedDaemon, Transfer } from './host-protocol.js'

export interface NarThroughputOptions {
  narBytes: number
  chunkSweepBytes: number
  chunkSizes: number[]
  runs: number
  progress: (line: string) => void
}

const KiB = 1024

function mibPerSecond (t: Transfer, expected: number): number {
  if (t.bytes !== expected) throw new Error(`transfer carried ${t.bytes} of ${expected} bytes`)
  return t.bytes / MiB / t.seconds
}

function daemonArgs (state: string, storeRoot: string): string[] {
  return ['--state-dir', state, '--listen', '127.0.0.1:0', '--p2p-listen', '/ip4/127.0.0.1/tcp/0', '--no-mdns', '--store-root', storeRoot]
}

export async function narThroughput (opts: NarThroughputOptions): Promise<Table[]> {
  const nix = await NixEnv.create('peerix-bench-nar-')
  const hosts: BenchHost[] = []
  const client = new HttpClient()
  try {
    const key = await generateKey(nix, 'bench-a-1')
    const rootA = await nix.initStore('hostA')
    opts.progress(`nar: adding a ${(opts.narBytes / MiB).toFixed(0)} MiB path`)
    const big = await addRandomFile(nix, rootA, opts.narBytes)
    const sweepPath = await addRandomFile(nix, rootA, opts.chunkSweepBytes)
    await mkdir(join(nix.dir, 'state-a'))
    await mkdir(join(nix.dir, 'state-b'))

    const hostA = await BenchHost.spawn('A', nix.env)
    hosts.push(hostA)
    const a: StartedDaemon = await hostA.startDaemon([...daemonArgs(join(nix.dir, 'state-a'), rootA), '--signing-key-file', key.secretFile, '--serve', 'all', '--trusted-public-keys', key.publicKey])
    const hostB = await BenchHost.spawn('B', nix.env)
    hosts.push(hostB)
    const b = await hostB.startDaemon([...daemonArgs(join(nix.dir, 'state-b'), await nix.initStore('hostB')), '--trusted-public-keys', key.publicKey, '--peer', a.addrs[0]])
    await hostB.waitForPeers(b.index, 1)
    const idle = { a: await hostA.memory(), b: await hostB.memory() }

    const narinfo = await client.get(`${b.url}/${hashPart(big)}.narinfo`)
    if (narinfo.status !== 200) throw new Error(`the shim answered ${narinfo.status} for ${big}'s narinfo: ${narinfo.body}`)
    const narUrl = narinfoField(narinfo.body, 'URL') ?? ''
    const narHash = narinfoField(narinfo.body, 'NarHash') ?? ''
    const narSize = Number(narinfoField(narinfo.body, 'NarSize'))
    const tcpPort = await hostA.tcpListen()

    const rates: Record<string, number[]> = { shim: [], service: [], bare: [], tcp: [] }
    const peaks = { a: [] as number[], b: [] as number[] }
    for (let run = 0; run < opts.runs; run++) {
      opts.progress(`nar: run ${run + 1}/${opts.runs}: through the shim`)
      await hostA.resetPeak()
      await hostB.resetPeak()
      const viaShim = await client.get(`${b.url}/${narUrl}`, false)
      if (viaShim.status !== 200) throw new Error(`the shim answered ${viaShim.status} for ${narUrl}`)
      rates.shim.push(mibPerSecond({ bytes: viaShim.bytes, seconds: viaShim.ms / 1000 }, narSize))
      peaks.a.push((await hostA.memory()).peakMB)
      peaks.b.push((await hostB.memory()).peakMB)
      opts.progress(`nar: run ${run + 1}/${opts.runs}: /peerix/nar/1, bare stream, raw TCP`)
      rates.service.push(mibPerSecond(await hostB.pullNar(b.index, a.peerId, hashPart(big), narHash), narSize))
      rates.bare.push(mibPerSecond(await hostB.pullBytes(b.index, a.peerId, narSize, SEND_CHUNK_BYTES), narSize))
      rates.tcp.push(mibPerSecond(await hostB.pullTcp(tcpPort, narSize), narSize))
    }

    const sweep: string[][] = []
    const sweepFile = join(rootA, sweepPath)
    for (const writerChunk of opts.chunkSizes) {
      const row = [`${writerChunk / KiB} KiB`]
      for (const sendChunk of opts.chunkSizes) {
        opts.progress(`nar: chunk sweep, writer ${writerChunk / KiB} KiB × send ${sendChunk / KiB} KiB`)
        const got: number[] = []
        for (let run = 0; run < opts.runs; run++) {
          const t = await hostB.pullNarChunks(b.index, a.peerId, sweepFile, writerChunk, sendChunk)
          got.push(t.bytes / MiB / t.seconds)
        }
        row.push(range(got, 0))
      }
      sweep.push(row)
    }

    const bareMid = rates.bare.reduce((s, x) => s + x, 0) / rates.bare.length
    const layer = (name: string, r: number[]): string[] => [name, range(r, 0), range(r.map(x => x / bareMid), 2)]
    const sizeMiB = (narSize / MiB).toFixed(0)
    return [{
      title: `NAR throughput, ${sizeMiB} MiB path, A → B on loopback (MiB/s)`,
      columns: ['layer', 'MiB/s', '× bare stream (mean)'],
      rows: [
        layer('through B\'s shim (HTTP client reads, discards)', rates.shim),
        layer('/peerix/nar/1 alone (B reads, no verification)', rates.service),
        layer('bare libp2p stream, same connection (bytes from memory)', rates.bare),
        layer('raw TCP between the same two processes', rates.tcp)
      ],
      notes: [
        `${opts.runs} run(s) per layer, interleaved; ranges over runs.`,
        `Peak RSS (VmHWM, reset before each shim transfer) while the shim streams: A ${range(peaks.a, 0)} MB, B ${range(peaks.b, 0)} MB; idle before: A ${idle.a.rssMB.toFixed(0)} MB, B ${idle.b.rssMB.toFixed(0)} MB. Each daemon runs under tsx (its loader is in these figures).`,
        `NAR writer chunk ${DEFAULT_CHUNK_SIZE / KiB} KiB, send chunk ${SEND_CHUNK_BYTES / KiB} KiB (the daemon's defaults).`
      ]
    }, {
      title: `NAR writer chunk × send chunk over libp2p, ${(opts.chunkSweepBytes / MiB).toFixed(0)} MiB path, A → B (MiB/s)`,
      columns: ['writer chunk ↓ / send chunk →', ...opts.chunkSizes.map(c => `${c / KiB} KiB`)],
      rows: sweep,
      notes: ['The /peerix/nar/1 sending loop (NAR writer, pieces gathered into writes of at least the send chunk, back-pressure) on a bench protocol that takes both sizes per request; B reads and discards.']
    }]
  } finally {
    client.close()
    await Promise.all(hosts.map(async h => { await h.stop() }))
    await nix.cleanup()
  }
}
