/**
 * What a miss costs the shim: a shim daemon with `--peers` peers (daemons with empty stores, in
 * another host process) is asked `--count` misses back to back, four rounds; per round it
 * prints the client's p50/p99 and the shim host's CPU per miss. The first rounds also measure
 * V8 compiling the code; the last ones are the steady state. Run:
 * `npx tsx bench/narinfo-miss-cpu.ts [--peers N] [--count N]` (default 16 peers, 4,000 misses).
 */
import { mkdir, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { NixEnv } from '../test/helpers/nix.js'
import { takeNumberOption } from './args.js'
import { compileHost } from './compile-host.js'
import { BenchHost } from './host-client.js'
import { percentile } from './report.js'

const ROUNDS = 4
const args = process.argv.slice(2)
const peerCount = takeNumberOption(args, '--peers', 16)
const count = takeNumberOption(args, '--count', 4000)

const compiled = await compileHost()
process.env.PEERIX_BENCH_HOST_JS = compiled.hostJs
const nix = await NixEnv.create('peerix-bench-miss-cpu-')
const hosts: BenchHost[] = []
try {
  const key = await nix.generateKey('bench-peers-1')
  const empty = await nix.initStore('empty')
  const common = ['--listen', '127.0.0.1:0', '--p2p-listen', '/ip4/127.0.0.1/tcp/0', '--no-mdns', '--log-level', 'warn']
  const farm = await BenchHost.spawn('peers', nix.env)
  hosts.push(farm)
  const peers = []
  for (let i = 0; i < peerCount; i++) {
    const state = join(nix.dir, `state-peer-${i}`)
    await mkdir(state)
    peers.push(await farm.startDaemon([...common, '--state-dir', state, '--store-root', empty, '--signing-key-file', key.secretFile, '--serve', 'all']))
  }
  const shimHost = await BenchHost.spawn('shim', nix.env)
  hosts.push(shimHost)
  const client = await BenchHost.spawn('client', nix.env)
  hosts.push(client)
  await mkdir(join(nix.dir, 'state-shim'))
  const shim = await shimHost.startDaemon([...common, '--state-dir', join(nix.dir, 'state-shim'), '--store-root', await nix.initStore('shim'), '--trusted-public-keys', key.publicKey, ...peers.flatMap(p => ['--peer', p.addrs[0]])])
  await shimHost.waitForPeers(shim.index, peerCount)
  // let the peers' summaries arrive: before that every peer may have every path
  await new Promise(resolve => setTimeout(resolve, 1500))
  // narinfoLatencies asks one random miss per entry; with missesOnly, nothing else
  const misses = Array.from({ length: count }, () => '')
  for (let round = 1; round <= ROUNDS; round++) {
    const cpu0 = await shimHost.cpuSeconds()
    const l = await client.narinfoLatencies(shim.url, misses, 1, true)
    const cpu1 = await shimHost.cpuSeconds()
    if (l.errors > 0) throw new Error(`${l.errors} misses were not answered 404`)
    console.log(`round ${round}: miss p50 ${percentile(l.misses, 50).toFixed(3)} ms, p99 ${percentile(l.misses, 99).toFixed(3)} ms, shim CPU ${((cpu1 - cpu0) * 1e6 / count).toFixed(0)} µs per miss`)
  }
} finally {
  await Promise.all(hosts.map(async h => { await h.stop() }))
  await nix.cleanup()
  await rm(compiled.dir, { recursive: true, force: true })
}
