/**
 * Benchmark 2: one big NAR from daemon A to daemon B (two host processes on loopback, B has A
 * as a static peer), layer by layer: through B's shim to curl (what Nix gets, through libcurl), over
 * /peerix/nar/1 alone (no HTTP, no verification), the bare libp2p stream between the same two
 * nodes (bytes from memory), and raw TCP between the same two processes. Also the peak RSS of
 * both daemons while the shim streams, and a sweep of the NAR writer chunk × send chunk over
 * the same libp2p connection.
 */
import { DEFAULT_CHUNK_SIZE } from '../src/nix/nar.js'
import { SEND_CHUNK_BYTES } from '../src/p2p/nar/constants.js'
import { curlDownload } from './http-client.js'
import { MiB, range, type Table } from './report.js'
import { startNarPair } from './nar-pair.js'
import type { Transfer } from './host-protocol.js'

export interface NarThroughputOptions {
  narBytes: number
  chunkSweepBytes: number
  chunkSizes: number[]
  runs: number
  progress: (line: string) => void
}

const KiB = 1024
const GiB = 1024 * MiB
type Layer = 'shim' | 'relay' | 'service' | 'bare' | 'tcp'

function mibPerSecond (t: Transfer, expected: number): number {
  if (t.bytes !== expected) throw new Error(`transfer carried ${t.bytes} of ${expected} bytes`)
  return t.bytes / MiB / t.seconds
}

export async function narThroughput (opts: NarThroughputOptions): Promise<Table[]> {
  const pair = await startNarPair(opts.narBytes, opts.chunkSweepBytes, opts.progress)
  const { hostA, hostB, a, b, idle, narUrl, narHash, narSize } = pair
  try {
    const tcpPort = await hostA.tcpListen()
    const relayUrl = await hostB.bareRelay(b.index, a.peerId)

    const rates: Record<Layer, number[]> = { shim: [], relay: [], service: [], bare: [], tcp: [] }
    const cpu: Record<Layer, number[]> = { shim: [], relay: [], service: [], bare: [], tcp: [] }
    /** Runs one transfer, noting its rate and the CPU seconds per GiB both daemons and the client (curl, if any) used. */
    const timed = async (layer: Layer, keep: boolean, transfer: () => Promise<Transfer & { clientCpuSeconds?: number }>): Promise<void> => {
      const before = [await hostA.cpuSeconds(), await hostB.cpuSeconds()] as const
      const done = await transfer()
      const rate = mibPerSecond(done, narSize)
      if (!keep) return
      rates[layer].push(rate)
      const used = (await hostA.cpuSeconds() - before[0]) + (await hostB.cpuSeconds() - before[1]) + (done.clientCpuSeconds ?? 0)
      cpu[layer].push(used / (narSize / GiB))
    }
    const viaCurl = async (what: string, url: string): Promise<Transfer & { clientCpuSeconds: number }> => {
      const got = await curlDownload(url)
      if (got.status !== 200) throw new Error(`${what} answered ${got.status} for ${url}`)
      return { bytes: got.bytes, seconds: got.seconds, clientCpuSeconds: got.cpuSeconds }
    }
    const peaks = { a: [] as number[], b: [] as number[] }
    // Run 0 is not recorded: each daemon's first transfer also pays for V8 compiling its code
    // (measured: the first shim transfer of a pair cost A 3.7–4.9 and B 4.5–4.7 CPU s per GiB,
    // the next ones 1.8–2.5 and 3.2–3.7), and the first layer of run 1 paid it alone.
    for (let run = 0; run <= opts.runs; run++) {
      const keep = run > 0
      const name = keep ? `run ${run}/${opts.runs}` : 'warm-up run'
      opts.progress(`nar: ${name}: through the shim`)
      await hostA.resetPeak()
      await hostB.resetPeak()
      await timed('shim', keep, async () => await viaCurl('the shim', `${b.url}/${narUrl}`))
      if (keep) {
        peaks.a.push((await hostA.memory()).peakMB)
        peaks.b.push((await hostB.memory()).peakMB)
      }
      opts.progress(`nar: ${name}: the bare stream relayed to curl, /peerix/nar/1, bare stream, raw TCP`)
      await timed('relay', keep, async () => await viaCurl('the bare relay', `${relayUrl}/${narSize}`))
      await timed('service', keep, async () => await hostB.pullNar(b.index, a.peerId, pair.hashPart, narHash))
      await timed('bare', keep, async () => await hostB.pullBytes(b.index, a.peerId, narSize, SEND_CHUNK_BYTES))
      await timed('tcp', keep, async () => await hostB.pullTcp(tcpPort, narSize))
    }

    const sweep: string[][] = []
    const sweepFile = pair.sweepFile
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
    const layer = (name: string, l: Layer): string[] => [name, range(rates[l], 0), range(rates[l].map(x => x / bareMid), 2), range(cpu[l], 1)]
    const sizeMiB = (narSize / MiB).toFixed(0)
    return [{
      title: `NAR throughput, ${sizeMiB} MiB path, A → B on loopback (MiB/s)`,
      columns: ['layer', 'MiB/s', '× bare stream (mean)', 'CPU s per GiB (A + B + curl)'],
      rows: [
        layer('through B\'s shim (curl reads, discards, as Nix\'s libcurl)', 'shim'),
        layer('floor: the bare stream, SHA-256 and HTTP to curl in B (bench/bare-relay.ts)', 'relay'),
        layer('/peerix/nar/1 alone (B reads, no verification)', 'service'),
        layer('bare libp2p stream, same connection (bytes from memory)', 'bare'),
        layer('raw TCP between the same two processes', 'tcp')
      ],
      notes: [
        `${opts.runs} run(s) per layer, interleaved, after a warm-up run not recorded; ranges over runs. CPU: user + system time of both daemon processes during the transfer, plus curl's through the shim — on a loaded 2-core machine throughput follows from it.`,
        `Peak RSS (VmHWM, reset before each shim transfer) while the shim streams: A ${range(peaks.a, 0)} MB, B ${range(peaks.b, 0)} MB; idle before: A ${idle.a.rssMB.toFixed(0)} MB, B ${idle.b.rssMB.toFixed(0)} MB. Under tsx (--quick, --tsx) each process carries ~55 MB more.`,
        `NAR writer chunk ${DEFAULT_CHUNK_SIZE / KiB} KiB, send chunk ${SEND_CHUNK_BYTES / KiB} KiB (the daemon's defaults).`
      ]
    }, {
      title: `NAR writer chunk × send chunk over libp2p, ${(opts.chunkSweepBytes / MiB).toFixed(0)} MiB path, A → B (MiB/s)`,
      columns: ['writer chunk ↓ / send chunk →', ...opts.chunkSizes.map(c => `${c / KiB} KiB`)],
      rows: sweep,
      notes: ['The /peerix/nar/1 sending loop (NAR writer, pieces gathered into writes of at least the send chunk, back-pressure) on a bench protocol that takes both sizes per request; B reads and discards.']
    }]
  } finally {
    await pair.stop()
  }
}
