/**
 * Where a `nix copy` spends its time, request by request: a logging proxy in front of the
 * source times each request Nix sends (to the response headers, then to the last byte), for
 * the static cache and for peerix's shim, each twice (the second peerix copy finds the
 * narinfos in the shim's cache). Prints per source the sums for narinfos and NARs, and for
 * each kind when its requests ran and how many were in flight on average (Nix walks a closure
 * one narinfo at a time); with `--each` every request. `--nix-default-ttl` leaves Nix its
 * default positive narinfo TTL (it then asks for each narinfo once, not again before its NAR).
 * Run: `npx tsx bench/closure-timeline.ts [leaves] [--each] [--leaf-bytes MIN-MAX]
 * [--nix-default-ttl]` (default 30 leaves of 1.2–12 MB).
 */
import { createServer, request, type Server } from 'node:http'
import { rm } from 'node:fs/promises'
import { closureSources } from './closure-sources.js'
import { compileHost } from './compile-host.js'
import { benchSizes } from './sizes.js'

interface Timed { start: number, kind: 'narinfo' | 'nar' | 'other', toHeaders: number, toEnd: number, line: string }

/** Forwards every request to `target` and records how long each took. */
function loggingProxy (target: string, log: Timed[]): Server {
  return createServer((req, res) => {
    const start = performance.now()
    const url = req.url ?? '/'
    const upstream = request(new URL(url, target), { method: req.method, headers: req.headers }, (answer) => {
      const headers = performance.now()
      res.writeHead(answer.statusCode ?? 502, answer.headers)
      answer.pipe(res)
      answer.on('end', () => {
        const end = performance.now()
        const kind = url.endsWith('.narinfo') ? 'narinfo' : url.startsWith('/nar/') ? 'nar' : 'other'
        log.push({ start, kind, toHeaders: headers - start, toEnd: end - headers, line: `${(headers - start).toFixed(1).padStart(6)} ms + ${(end - headers).toFixed(1).padStart(6)} ms  ${req.method ?? ''} ${answer.statusCode ?? 0} ${url.slice(0, 60)}` })
      })
    })
    req.pipe(upstream)
  })
}

/** When the requests of one kind ran (from the copy's start) and how many were in flight on average. */
function phase (log: Timed[], kind: Timed['kind'], started: number): string {
  const requests = log.filter(t => t.kind === kind)
  if (requests.length === 0) return `no ${kind} requests`
  const first = Math.min(...requests.map(t => t.start))
  const last = Math.max(...requests.map(t => t.start + t.toHeaders + t.toEnd))
  const busy = requests.reduce((sum, t) => sum + t.toHeaders + t.toEnd, 0)
  return `${kind} requests from ${(first - started).toFixed(0)} to ${(last - started).toFixed(0)} ms, ${(busy / (last - first)).toFixed(1)} in flight on average`
}

const leaves = Number(process.argv.slice(2).find(a => /^\d+$/.test(a)) ?? 30)
const each = process.argv.includes('--each')
// The private nix.conf says 0 (Nix asks again before every NAR); Nix's default is 30 days.
const ttl = process.argv.includes('--nix-default-ttl') ? ['--option', 'narinfo-cache-positive-ttl', '2592000'] : []
const leafFlag = process.argv.indexOf('--leaf-bytes')
const { closure: shape } = benchSizes(false, undefined, leafFlag >= 0 ? process.argv[leafFlag + 1] ?? '' : undefined)
const compiled = await compileHost()
process.env.PEERIX_BENCH_HOST_JS = compiled.hostJs
const { nix, key, top, staticUrl, shimUrl, stop } = await closureSources('peerix-bench-timeline-', { leaves, mids: 4, minLeafBytes: shape.minLeafBytes, maxLeafBytes: shape.maxLeafBytes })
try {
  let copies = 0
  for (const [name, target] of [['static cache', staticUrl], ['peerix', shimUrl], ['static cache', staticUrl], ['peerix', shimUrl]]) {
    const log: Timed[] = []
    const proxy = loggingProxy(target, log)
    await new Promise<void>(resolve => proxy.listen(0, '127.0.0.1', resolve))
    const address = proxy.address()
    if (address === null || typeof address === 'string') throw new Error('the proxy has no port')
    const started = performance.now()
    await nix.run('nix', ['copy', '--from', `http://127.0.0.1:${address.port}`, '--to', nix.storeRoot(`client-${copies++}`), top, '--option', 'trusted-public-keys', key.publicKey, ...ttl])
    const total = performance.now() - started
    proxy.close()
    const sum = (kind: Timed['kind'], field: 'toHeaders' | 'toEnd'): string => log.filter(t => t.kind === kind).reduce((s, t) => s + t[field], 0).toFixed(0)
    const count = (kind: Timed['kind']): number => log.filter(t => t.kind === kind).length
    console.log(`${name}: ${total.toFixed(0)} ms; ${count('narinfo')} narinfos ${sum('narinfo', 'toHeaders')} + ${sum('narinfo', 'toEnd')} ms; ${count('nar')} NARs ${sum('nar', 'toHeaders')} ms to headers + ${sum('nar', 'toEnd')} ms of body`)
    console.log(`  ${phase(log, 'narinfo', started)}; ${phase(log, 'nar', started)}`)
    if (each) console.log(log.map(t => `  ${t.line}`).join('\n'))
  }
} finally {
  await stop()
  await rm(compiled.dir, { recursive: true, force: true })
}
