/**
 * Benchmark 3: the real Nix client copying a whole closure into an empty store, three ways:
 * through peerix (`nix copy --from <B's shim>`, B fetching everything from peer A), from a
 * static `file://` cache (no compression) served by `python3 -m http.server`, and straight
 * from A's chroot store (the floor). Each copy goes into a fresh store; the three are
 * interleaved within each run.
 */
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { NixEnv } from '../test/helpers/nix.js'
import { BenchHost } from './host-client.js'
import { MiB, range, type Table } from './report.js'
import { StaticCache } from './static-cache.js'
import { closureExpr, generateKey, leafBytes, type ClosureShape } from './stores.js'

export interface ClosureCopyOptions extends ClosureShape {
  runs: number
  progress: (line: string) => void
}

export async function closureCopy (opts: ClosureCopyOptions): Promise<Table> {
  const nix = await NixEnv.create('peerix-bench-closure-')
  const hosts: BenchHost[] = []
  let cache: StaticCache | undefined
  try {
    const key = await generateKey(nix, 'bench-a-1')
    const rootA = nix.storeRoot('hostA')
    opts.progress(`closure: building ${opts.leaves + opts.mids + 1} paths with nix-build`)
    const [top] = await nix.build(rootA, closureExpr(opts, String(Date.now())))
    const closure = await nix.closure(rootA, top)
    await nix.run('nix', ['store', 'sign', '--store', rootA, '--key-file', key.secretFile, '-r', top])
    const dataBytes = Array.from({ length: opts.leaves }, (_, i) => leafBytes(opts, i)).reduce((s, x) => s + x, 0)

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

    const sources: Array<[string, string]> = [
      ['straight from A\'s chroot store (floor)', rootA],
      ['static file:// cache, python3 -m http.server', cache.url],
      ['peerix: B\'s shim, fetching from peer A', b.url]
    ]
    const seconds = new Map<string, number[]>(sources.map(([name]) => [name, []]))
    let copies = 0
    for (let run = 0; run < opts.runs; run++) {
      for (const [name, from] of sources) {
        opts.progress(`closure: run ${run + 1}/${opts.runs}: ${name}`)
        const to = nix.storeRoot(`client-${copies++}`)
        const t0 = process.hrtime.bigint()
        await nix.run('nix', ['copy', '--from', from, '--to', to, top, '--option', 'trusted-public-keys', key.publicKey])
        seconds.get(name)?.push(Number(process.hrtime.bigint() - t0) / 1e9)
        const copied = await nix.closure(to, top)
        if (copied.length !== closure.length) throw new Error(`${name}: copied ${copied.length} of ${closure.length} paths`)
        await nix.run('sh', ['-c', 'chmod -R u+w "$0" && rm -rf "$0"', to])
      }
    }
    const floor = Math.min(...(seconds.get(sources[0][0]) ?? []))
    const staticBest = Math.min(...(seconds.get(sources[1][0]) ?? []))
    return {
      title: `nix copy of a ${closure.length}-path closure, ${(dataBytes / MiB).toFixed(0)} MiB, into an empty store (s)`,
      columns: ['from', 'seconds', '× floor (best)', '× static cache (best)'],
      rows: sources.map(([name]) => {
        const s = seconds.get(name) ?? []
        return [name, range(s, 2), (Math.min(...s) / floor).toFixed(2), (Math.min(...s) / staticBest).toFixed(2)]
      }),
      notes: [
        `${opts.leaves} leaves of random data (${(opts.minLeafBytes / 1e6).toFixed(1)}–${(opts.maxLeafBytes / 1e6).toFixed(1)} MB), ${opts.mids} mids, one top, built offline with nix-build; ${opts.runs} run(s) of each source, interleaved; ranges over runs.`,
        'Private NIX_CONF_DIR with narinfo-cache-negative-ttl = 0 and positive-ttl = 0; the same trusted-public-keys for every source.'
      ]
    }
  } finally {
    await cache?.stop()
    await Promise.all(hosts.map(async h => { await h.stop() }))
    await nix.cleanup()
  }
}
