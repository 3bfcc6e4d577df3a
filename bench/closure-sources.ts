/**
 * What the closure benchmarks copy from: a closure built and signed in A's chroot store, and
 * three servers of it: a static cache (`python3 -m http.server`), B's shim with A as its only
 * peer (each daemon in a host process of its own), and in B's host the floor of a
 * peer-to-peer shim, the static cache's files relayed from A (bench/file-relay.ts).
 */
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { NixEnv, type KeyPair } from '../test/helpers/nix.js'
import { BenchHost } from './host-client.js'
import { StaticCache } from './static-cache.js'
import { closureExpr, type ClosureShape } from './stores.js'

export interface ClosureSources {
  nix: NixEnv
  key: KeyPair
  /** A's chroot store, which holds the closure. */
  rootA: string
  /** The closure's top path, and the whole closure. */
  top: string
  closure: string[]
  /** The static cache's URL, B's shim URL, and the URL of the relay in B's host over the static cache's files (bench/file-relay.ts). */
  staticUrl: string
  shimUrl: string
  relayUrl: string
  /** The processes serving each: python's, and A's and B's hosts (the shim's and the relay's). */
  pids: { static: number[], peerix: number[] }
  /** Stops the servers and removes every file. */
  stop: () => Promise<void>
}

export async function closureSources (prefix: string, shape: ClosureShape, progress: (line: string) => void = () => {}): Promise<ClosureSources> {
  const nix = await NixEnv.create(prefix)
  const hosts: BenchHost[] = []
  let cache: StaticCache | undefined
  const stop = async (): Promise<void> => {
    await cache?.stop()
    await Promise.all(hosts.map(async h => { await h.stop() }))
    await nix.cleanup()
  }
  try {
    const key = await nix.generateKey('bench-a-1')
    const rootA = nix.storeRoot('hostA')
    progress(`closure: building ${shape.leaves + shape.mids + 1} paths with nix-build`)
    const [top] = await nix.build(rootA, closureExpr(shape, String(Date.now())))
    const closure = await nix.closure(rootA, top)
    await nix.run('nix', ['store', 'sign', '--store', rootA, '--key-file', key.secretFile, '-r', top])

    const cacheDir = join(nix.dir, 'static-cache')
    await StaticCache.fill(nix, rootA, cacheDir, [top])
    cache = await StaticCache.serve(cacheDir)

    await mkdir(join(nix.dir, 'state-a'))
    await mkdir(join(nix.dir, 'state-b'))
    const common = ['--listen', '127.0.0.1:0', '--p2p-listen', '/ip4/127.0.0.1/tcp/0', '--no-mdns', '--trusted-public-keys', key.publicKey]
    const hostA = await BenchHost.spawn('A', nix.env)
    hosts.push(hostA)
    const a = await hostA.startDaemon([...common, '--state-dir', join(nix.dir, 'state-a'), '--store-root', rootA, '--signing-key-file', key.secretFile, '--serve', 'all'])
    const hostB = await BenchHost.spawn('B', nix.env)
    hosts.push(hostB)
    const b = await hostB.startDaemon([...common, '--state-dir', join(nix.dir, 'state-b'), '--store-root', await nix.initStore('hostB'), '--peer', a.addrs[0]])
    await hostB.waitForPeers(b.index, 1)
    const relayUrl = await hostB.fileRelay(b.index, a.peerId, cacheDir)
    return { nix, key, rootA, top, closure, staticUrl: cache.url, shimUrl: b.url, relayUrl, pids: { static: [cache.pid], peerix: [hostA.pid, hostB.pid] }, stop }
  } catch (err) {
    await stop()
    throw err
  }
}
