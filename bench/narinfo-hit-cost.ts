/**
 * What a narinfo hit costs beyond its round trip to the peer. One peer daemon holds the paths;
 * in the shim's host, daemons started with each set of flags in turn (and the hit floor of
 * bench/file-relay.ts on one of them: the same round trip with nothing else done) are asked
 * `--count` hits each, every hit followed by a miss to a server that answers 404 at once, as in
 * the narinfo benchmark. Prints per variant the client's hit p50/p90/p99 and the CPU of the
 * shim's and the peer's host processes per hit. Run:
 * `npx tsx bench/narinfo-hit-cost.ts [--count N] [--rounds N] [flags …]`, each flag set one
 * argument (default: `relay`, `default`, `--no-nar-prefetch`, `--no-narinfo-read-ahead`).
 */
import { mkdir, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { NixEnv } from '../test/helpers/nix.js'
import { takeNumberOption } from './args.js'
import { compileHost } from './compile-host.js'
import { BenchHost } from './host-client.js'
import { formatTable, percentile } from './report.js'
import { StaticCache } from './static-cache.js'
import { addSmallPaths, hashPart } from './stores.js'

const WARM_UP = 100
const args = process.argv.slice(2)
const count = takeNumberOption(args, '--count', 400)
const rounds = takeNumberOption(args, '--rounds', 2)
const variants = args.length > 0 ? args : ['relay', 'default', '--no-nar-prefetch', '--no-narinfo-read-ahead']

const compiled = await compileHost()
process.env.PEERIX_BENCH_HOST_JS = compiled.hostJs
const nix = await NixEnv.create('peerix-bench-hit-cost-')
const hosts: BenchHost[] = []
const rows: string[][] = []
try {
  const key = await nix.generateKey('bench-peers-1')
  const root = await nix.initStore('peer')
  const paths = await addSmallPaths(nix, root, WARM_UP + count * variants.length * rounds)
  const cacheDir = join(nix.dir, 'static-cache')
  await StaticCache.fill(nix, root, cacheDir, paths)
  const common = ['--listen', '127.0.0.1:0', '--p2p-listen', '/ip4/127.0.0.1/tcp/0', '--no-mdns', '--trusted-public-keys', key.publicKey, '--log-level', 'warn']
  const peerHost = await BenchHost.spawn('peer', nix.env)
  hosts.push(peerHost)
  await mkdir(join(nix.dir, 'state-peer'))
  const peer = await peerHost.startDaemon([...common, '--state-dir', join(nix.dir, 'state-peer'), '--store-root', root, '--signing-key-file', key.secretFile, '--serve', 'all'])
  const shimHost = await BenchHost.spawn('shim', nix.env)
  hosts.push(shimHost)
  const client = await BenchHost.spawn('client', nix.env)
  hosts.push(client)
  const absentUrl = await shimHost.absentHttp()
  let next = WARM_UP
  for (let round = 0; round < rounds; round++) {
    for (const variant of variants) {
      const state = join(nix.dir, `state-shim-${round}-${rows.length}`)
      await mkdir(state)
      const flags = variant === 'default' || variant === 'relay' ? [] : variant.split(' ')
      const shim = await shimHost.startDaemon([...common, '--state-dir', state, '--store-root', await nix.initStore(`shim-${round}-${rows.length}`), '--peer', peer.addrs[0], ...flags])
      await shimHost.waitForPeers(shim.index, 1)
      await new Promise(resolve => setTimeout(resolve, 1000))
      const url = variant === 'relay' ? await shimHost.fileRelay(shim.index, peer.peerId, cacheDir, true) : shim.url
      await client.narinfoLatencies(url, paths.slice(0, WARM_UP).map(hashPart), 3, false, absentUrl)
      const cpu0 = [await shimHost.cpuSeconds(), await peerHost.cpuSeconds()]
      const l = await client.narinfoLatencies(url, paths.slice(next, next + count).map(hashPart), 1, false, absentUrl)
      const cpu1 = [await shimHost.cpuSeconds(), await peerHost.cpuSeconds()]
      next += count
      if (l.errors > 0) throw new Error(`${variant}: ${l.errors} requests failed`)
      const ms = (i: number): string => ((cpu1[i] - cpu0[i]) * 1000 / count).toFixed(2)
      rows.push([`${round + 1}`, variant === 'relay' ? 'hit floor (bench/file-relay.ts)' : variant, ...[50, 90, 99].map(p => percentile(l.hits, p).toFixed(2)), ms(0), ms(1)])
      await shimHost.stopDaemon(shim.index)
    }
  }
  console.log(formatTable({
    title: `narinfo hits through the shim by its flags, ${count} per round (ms)`,
    columns: ['round', 'shim', 'hit p50', 'hit p90', 'hit p99', 'CPU per hit: shim host', 'CPU per hit: peer host'],
    rows,
    notes: ['Each hit is followed by a miss to a server in the shim\'s host that answers 404 at once; the shim host\'s CPU includes it.']
  }))
} finally {
  await Promise.all(hosts.map(async h => { await h.stop() }))
  await nix.cleanup()
  await rm(compiled.dir, { recursive: true, force: true })
}
