/**
 * Two daemons for the NAR benchmarks, each in its own host process on loopback: A serves a
 * chroot store holding one big random path (and a smaller one for the chunk sweep), B has
 * A as its static peer and trusts A's key; B's shim has already answered the narinfo.
 */
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { NixEnv } from '../test/helpers/nix.js'
import { BenchHost } from './host-client.js'
import { HttpClient } from './http-client.js'
import { MiB } from './report.js'
import { addRandomFile, hashPart, narinfoField } from './stores.js'
import type { StartedDaemon } from './host-protocol.js'

export interface NarPair {
  hostA: BenchHost
  hostB: BenchHost
  a: StartedDaemon
  b: StartedDaemon
  /** Resident memory of both before any transfer. */
  idle: { a: { rssMB: number }, b: { rssMB: number } }
  hashPart: string
  narUrl: string
  narHash: string
  narSize: number
  /** The smaller path's file on A's disk. */
  sweepFile: string
  /** Stops both hosts and removes every file. */
  stop: () => Promise<void>
}

function daemonArgs (state: string, storeRoot: string): string[] {
  return ['--state-dir', state, '--listen', '127.0.0.1:0', '--p2p-listen', '/ip4/127.0.0.1/tcp/0', '--no-mdns', '--store-root', storeRoot]
}

/** `nodeArgs` go to both host processes (e.g. `--cpu-prof`); by default $PEERIX_BENCH_NODE_ARGS. */
export async function startNarPair (narBytes: number, sweepBytes: number, progress: (line: string) => void, nodeArgs?: string[]): Promise<NarPair> {
  const nix = await NixEnv.create('peerix-bench-nar-')
  const hosts: BenchHost[] = []
  const stop = async (): Promise<void> => {
    await Promise.all(hosts.map(async h => { await h.stop() }))
    await nix.cleanup()
  }
  try {
    const key = await nix.generateKey('bench-a-1')
    const rootA = await nix.initStore('hostA')
    progress(`nar: adding a ${(narBytes / MiB).toFixed(0)} MiB path`)
    const big = await addRandomFile(nix, rootA, narBytes)
    const sweepPath = await addRandomFile(nix, rootA, sweepBytes)
    await mkdir(join(nix.dir, 'state-a'))
    await mkdir(join(nix.dir, 'state-b'))

    const hostA = await BenchHost.spawn('A', nix.env, nodeArgs)
    hosts.push(hostA)
    const a = await hostA.startDaemon([...daemonArgs(join(nix.dir, 'state-a'), rootA), '--signing-key-file', key.secretFile, '--serve', 'all', '--trusted-public-keys', key.publicKey])
    const hostB = await BenchHost.spawn('B', nix.env, nodeArgs)
    hosts.push(hostB)
    const b = await hostB.startDaemon([...daemonArgs(join(nix.dir, 'state-b'), await nix.initStore('hostB')), '--trusted-public-keys', key.publicKey, '--peer', a.addrs[0]])
    await hostB.waitForPeers(b.index, 1)
    const idle = { a: await hostA.memory(), b: await hostB.memory() }

    const client = new HttpClient()
    const narinfo = await client.get(`${b.url}/${hashPart(big)}.narinfo`)
    client.close()
    if (narinfo.status !== 200) throw new Error(`the shim answered ${narinfo.status} for ${big}'s narinfo: ${narinfo.body}`)
    return {
      hostA,
      hostB,
      a,
      b,
      idle,
      hashPart: hashPart(big),
      narUrl: narinfoField(narinfo.body, 'URL') ?? '',
      narHash: narinfoField(narinfo.body, 'NarHash') ?? '',
      narSize: Number(narinfoField(narinfo.body, 'NarSize')),
      sweepFile: join(rootA, sweepPath),
      stop
    }
  } catch (err) {
    await stop()
    throw err
  }
}
