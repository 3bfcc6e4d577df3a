/**
 * Benchmark 3: the real Nix client copying a whole closure into an empty store, four ways:
 * through peerix (`nix copy --from <B's shim>`, B fetching everything from peer A), from a
 * static `file://` cache (no compression) served by `python3 -m http.server`, straight
 * from A's chroot store (the floor), and from the floor of any peer-to-peer shim: the static
 * cache's narinfos from B's disk and its NARs relayed from A over the daemons' libp2p
 * connection and hashed (bench/file-relay.ts). Each copy goes into a fresh store; the four are
 * interleaved within each run, after a round that is not recorded: the daemons' first copy
 * also measured V8 compiling their code, which a daemon running for a while has long done.
 * Each recorded peerix copy starts once the shim's narinfo cache of the copy before has
 * expired, so it looks every path up from peer A, as for a closure it has never seen.
 */
import { availableParallelism } from 'node:os'
import { closureSources } from './closure-sources.js'
import { childrenCpuSeconds, processCpuSeconds, TIMED_COMMAND } from './cpu.js'
import { MiB, range, type Table } from './report.js'
import { leafBytes, type ClosureShape } from './stores.js'
import { NARINFO_CACHE_MS } from '../src/substituter/narinfo-cache.js'

export interface ClosureCopyOptions extends ClosureShape {
  runs: number
  progress: (line: string) => void
}

export async function closureCopy (opts: ClosureCopyOptions): Promise<Table> {
  const { nix, key, rootA, top, closure, staticUrl, shimUrl, relayUrl, pids, stop } = await closureSources('peerix-bench-closure-', opts, opts.progress)
  try {
    const dataBytes = Array.from({ length: opts.leaves }, (_, i) => leafBytes(opts, i)).reduce((s, x) => s + x, 0)
    const sources: Array<[string, string, number[]]> = [
      ['straight from A\'s chroot store (floor)', rootA, []],
      ['static file:// cache, python3 -m http.server', staticUrl, pids.static],
      ['floor for a p2p shim: the static cache\'s NARs relayed from A over the bare libp2p stream, hashed in B', relayUrl, pids.peerix],
      ['peerix: B\'s shim, fetching from peer A', shimUrl, pids.peerix]
    ]
    /** Per source and copy: wall seconds, nix's CPU seconds, the serving processes' CPU seconds. */
    const copiesOf = new Map(sources.map(([name]) => [name, { seconds: [] as number[], nixCpu: [] as number[], serverCpu: [] as number[] }]))
    const serversCpu = async (servers: number[]): Promise<number> => (await Promise.all(servers.map(processCpuSeconds))).reduce((s, x) => s + x, 0)
    let copies = 0
    let shimCacheExpires = 0
    for (let run = -1; run < opts.runs; run++) {
      const keep = run >= 0
      for (const [name, from, servers] of sources) {
        opts.progress(`closure: ${keep ? `run ${run + 1}/${opts.runs}` : 'warm-up round'}: ${name}`)
        if (from === shimUrl) await new Promise(resolve => setTimeout(resolve, Math.max(0, shimCacheExpires - Date.now())))
        const to = nix.storeRoot(`client-${copies++}`)
        const cpuBefore = await serversCpu(servers)
        const t0 = process.hrtime.bigint()
        const copy = await nix.run('bash', ['-c', TIMED_COMMAND, 'nix-copy', 'nix', 'copy', '--from', from, '--to', to, top, '--option', 'trusted-public-keys', key.publicKey])
        const seconds = Number(process.hrtime.bigint() - t0) / 1e9
        if (from === shimUrl) shimCacheExpires = Date.now() + NARINFO_CACHE_MS + 1000
        const measured = keep ? copiesOf.get(name) : undefined
        measured?.seconds.push(seconds)
        measured?.nixCpu.push(childrenCpuSeconds(copy.stdout))
        measured?.serverCpu.push(await serversCpu(servers) - cpuBefore)
        const copied = await nix.closure(to, top)
        if (copied.length !== closure.length) throw new Error(`${name}: copied ${copied.length} of ${closure.length} paths`)
        await nix.run('sh', ['-c', 'chmod -R u+w "$0" && rm -rf "$0"', to])
      }
    }
    const cores = availableParallelism()
    const floor = Math.min(...(copiesOf.get(sources[0][0])?.seconds ?? []))
    const staticBest = Math.min(...(copiesOf.get(sources[1][0])?.seconds ?? []))
    return {
      title: `nix copy of a ${closure.length}-path closure, ${(dataBytes / MiB).toFixed(0)} MiB, into an empty store (s)`,
      columns: ['from', 'seconds', '× floor (best)', '× static cache (best)', 'CPU s: nix', 'CPU s: server', `all CPU s ÷ ${cores} cores`],
      rows: sources.map(([name, , servers]) => {
        const { seconds: s, nixCpu, serverCpu } = copiesOf.get(name) ?? { seconds: [], nixCpu: [], serverCpu: [] }
        const server = servers.length === 0 ? '—' : range(serverCpu, 2)
        const spread = nixCpu.map((n, i) => (n + (serverCpu[i] ?? 0)) / cores)
        return [name, range(s, 2), (Math.min(...s) / floor).toFixed(2), (Math.min(...s) / staticBest).toFixed(2), range(nixCpu, 2), server, range(spread, 2)]
      }),
      notes: [
        `${opts.leaves} leaves of random data (${decimalBytes(opts.minLeafBytes)}–${decimalBytes(opts.maxLeafBytes)}), ${opts.mids} mids, one top, built offline with nix-build; ${opts.runs} run(s) of each source, interleaved, after a round not recorded; ranges over runs.`,
        `Each recorded peerix copy starts after the shim's narinfo cache (${NARINFO_CACHE_MS / 1000} s) of the copy before has expired.`,
        'Private NIX_CONF_DIR with narinfo-cache-negative-ttl = 0 and positive-ttl = 0; the same trusted-public-keys for every source.',
        'The p2p floor: B\'s host answers narinfos from the static cache\'s directory without asking A, and pulls each NAR file from A\'s host over one libp2p connection (TCP, Noise, yamux; streams kept open), SHA-256 over every byte, to Nix with the shim\'s batched writer: no signatures, database, NAR writer or index.',
        `CPU: user + system seconds during each copy, of \`nix copy\` and of the processes serving it (python; A's and B's hosts for peerix and the p2p floor). Their sum over the machine's ${cores} cores is the least wall time the copy could take with every core busy all along.`
      ]
    }
  } finally {
    await stop()
  }
}

/** `1.2 MB`, `64 kB` or `512 B`: a leaf size as the notes print it. */
function decimalBytes (n: number): string {
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)} MB`
  return n >= 1e3 ? `${(n / 1e3).toFixed(0)} kB` : `${n} B`
}
