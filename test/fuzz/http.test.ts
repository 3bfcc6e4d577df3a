/**
 * The HTTP shim fed what a hostile or broken local client could send, with a fixed seed: the
 * router on its own (traversal, overlong targets, non-UTF-8, invalid nix32), then a real shim
 * over raw TCP sockets (arbitrary bytes, huge headers). Every answer is 2xx for what is valid
 * and a 4xx with a reason otherwise; never a 5xx, never a crash, and the shim keeps serving.
 */
import assert from 'node:assert/strict'
import { connect } from 'node:net'
import fc from 'fast-check'
import type { Server } from 'node:http'
import { createShim, listenShim } from '../../src/http/server.js'
import { MAX_URL_LENGTH, route } from '../../src/http/router.js'
import { TrustedKeys, formatPublicKey, generateSecretKey, publicKeyOf } from '../../src/nix/signing.js'
import { Substituter } from '../../src/substituter/substituter.js'
import { FixturePeerClient } from '../substituter/fixture-peers.js'

const SEED = 5005
const NIX32 = '0123456789abcdfghijklmnpqrsvwxyz'
const nix32 = (length: number): fc.Arbitrary<string> => fc.array(fc.constantFrom(...NIX32), { minLength: length, maxLength: length }).map(cs => cs.join(''))

/** Request targets near the ones Nix sends, and the tricks a client could try instead. */
const target: fc.Arbitrary<string> = fc.oneof(
  fc.constant('/nix-cache-info'),
  nix32(32).map(h => `/${h}.narinfo`),
  fc.tuple(nix32(32), nix32(52)).map(([h, n]) => `/nar/${h}-${n}.nar`),
  fc.string({ unit: 'binary', maxLength: 80 }).map(s => `/${s}.narinfo`),
  fc.string({ unit: 'grapheme-ascii', maxLength: 60 }).map(s => `/${s}`),
  fc.tuple(fc.constantFrom('..', '.', '%2e%2e', '%2F', '', '~'), nix32(32)).map(([seg, h]) => `/${seg}/${h}.narinfo`),
  fc.constantFrom('/../../etc/passwd', '/nar/../db.sqlite', '//nix-cache-info', '/nix-cache-info?x=1', '/nix-cache-info#f', 'nix-cache-info', '*', ''),
  fc.tuple(nix32(31), fc.constantFrom('e', 'o', 't', 'u', 'E', '-', 'é', '\u0000')).map(([h, c]) => `/${h}${c}.narinfo`),
  fc.integer({ min: MAX_URL_LENGTH - 2, max: MAX_URL_LENGTH * 70 }).map(n => `/${'a'.repeat(n)}.narinfo`)
)
const method = fc.oneof(
  { arbitrary: fc.constantFrom('GET', 'HEAD'), weight: 4 },
  { arbitrary: fc.constantFrom('POST', 'PUT', 'DELETE', 'OPTIONS', 'TRACE', 'CONNECT', 'get'), weight: 1 },
  { arbitrary: fc.string({ maxLength: 8 }), weight: 1 }
)

describe('fuzz: HTTP router and shim (fast-check, fixed seed)', function () {
  this.timeout(120_000)
  let server: Server
  let port: number
  const key = generateSecretKey('fuzz-1')

  before(async () => {
    // One peer that answers every narinfo question with a garbage narinfo: a lookup must still end in 404.
    const client = new FixturePeerClient(new Map([['peer-garbage', {
      narInfo: async () => ({ status: 'found' as const, value: 'StorePath: /nix/store/\u0000\nNarSize: -1\n' })
    }]]))
    const substituter = new Substituter({ client, trusted: TrustedKeys.parse(formatPublicKey(publicKeyOf(key))), timeoutMs: 500 })
    server = createShim({ substituter, priority: 30 })
    port = (await listenShim(server, '127.0.0.1', 0)).port
  })

  after(async () => {
    server.closeAllConnections()
    await new Promise<void>(resolve => { server.close(() => { resolve() }) })
  })

  it('route() answers every method and target with an endpoint or a 4xx with its reason', () => {
    let rejected = 0
    fc.assert(fc.property(method, target, (m, url) => {
      const r = route(m, url)
      if (r.endpoint === 'reject') {
        rejected++
        assert.ok([400, 404, 405].includes(r.status))
        assert.ok(r.message.length > 3 && r.message.length < 400, `message: ${r.message.slice(0, 500)}`)
        assert.ok(!r.message.includes('\n'))
      } else {
        assert.ok(m === 'GET' || m === 'HEAD')
        assert.ok(url.length <= MAX_URL_LENGTH && !url.includes('..') && !url.includes('%'))
        if ('hashPart' in r) assert.match(r.hashPart, /^[0-9a-df-np-sv-z]{32}$/)
      }
    }), { seed: SEED, numRuns: 20_000 })
    assert.ok(rejected > 1000, `only ${rejected} rejections: the generator is too tame`)
  })

  /** Sends raw bytes, half-closes, and returns what came back before the shim closed (or 3 s). */
  async function raw (bytes: Uint8Array): Promise<string> {
    return await new Promise((resolve, reject) => {
      const chunks: Buffer[] = []
      const socket = connect(port, '127.0.0.1')
      const timer = setTimeout(() => { socket.destroy(); resolve(Buffer.concat(chunks).toString('latin1')) }, 3000)
      socket.on('data', (c: Buffer) => chunks.push(c))
      socket.on('error', (err: NodeJS.ErrnoException) => {
        // the shim may close while we still write (e.g. after 431): what it answered counts
        if (err.code === 'EPIPE' || err.code === 'ECONNRESET') return
        clearTimeout(timer)
        reject(err)
      })
      socket.on('close', () => { clearTimeout(timer); resolve(Buffer.concat(chunks).toString('latin1')) })
      socket.end(bytes)
    })
  }

  /** The status codes of every response in `reply` (a keep-alive client may get several). */
  function statuses (reply: string): number[] {
    return [...reply.matchAll(/HTTP\/1\.[01] (\d{3}) /g)].map(m => Number(m[1]))
  }

  async function assertAlive (): Promise<void> {
    const reply = await raw(Buffer.from('GET /nix-cache-info HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n'))
    assert.deepEqual(statuses(reply), [200], `the shim stopped serving: ${reply.slice(0, 200)}`)
    assert.match(reply, /StoreDir: \/nix\/store/)
  }

  const header = fc.oneof(
    fc.constant('Host: localhost'),
    fc.tuple(fc.stringMatching(/^[A-Za-z-]{1,20}$/), fc.string({ unit: 'binary', maxLength: 40 })).map(([k, v]) => `${k}: ${v}`),
    fc.integer({ min: 1, max: 200 }).map(kib => `X-Huge: ${'h'.repeat(kib * 1024)}`),
    fc.string({ unit: 'binary', maxLength: 40 })
  )
  const request = fc.oneof(
    // structured requests: method, target (as UTF-8 or as raw bytes), headers
    { arbitrary: fc.tuple(method, target, fc.boolean(), fc.nat(9), fc.array(header, { maxLength: 3 })).map(([m, url, latin1, noHost, more]) => {
      const headers = [...(noHost === 0 ? [] : ['Host: localhost']), ...more, 'Connection: close'].map(h => `${h}\r\n`).join('')
      return Buffer.concat([Buffer.from(`${m} `), Buffer.from(url, latin1 ? 'latin1' : 'utf8'), Buffer.from(` HTTP/1.1\r\n${headers}\r\n`, 'latin1')])
    }),
    weight: 4
  },
    // non-UTF-8 bytes straight in the target
    fc.uint8Array({ minLength: 1, maxLength: 64 }).map(b => Buffer.concat([Buffer.from('GET /'), b, Buffer.from('.narinfo HTTP/1.1\r\nHost: x\r\n\r\n')])),
    // anything at all
    fc.uint8Array({ maxLength: 2048 }).map(b => Buffer.from(b))
  )

  it('a real shim over raw sockets: 2xx/404 for valid requests, 4xx for the rest, never 5xx, still serving', async () => {
    const seen = new Map<number | 'closed', number>()
    await fc.assert(fc.asyncProperty(request, async (bytes) => {
      const reply = await raw(bytes)
      const codes = statuses(reply)
      if (codes.length === 0) seen.set('closed', (seen.get('closed') ?? 0) + 1)
      for (const code of codes) {
        seen.set(code, (seen.get(code) ?? 0) + 1)
        assert.ok(code < 500, `5xx for ${JSON.stringify(bytes.subarray(0, 200).toString('latin1'))}: ${reply.slice(0, 300)}`)
        // the shim's own rejections say why (Node's parser errors are bare, with no body)
        const head = reply.slice(0, reply.indexOf('\r\n\r\n'))
        if (code >= 400 && codes.length === 1 && /Content-Type: text\/plain/.test(head) && !bytes.subarray(0, 5).equals(Buffer.from('HEAD '))) {
          assert.ok(reply.length > head.length + 5, `no reason given: ${reply.slice(0, 300)}`)
        }
      }
    }), { seed: SEED, numRuns: 1000 })
    await assertAlive()
    // what the run exercised, for the report
    console.log(`      shim answers over ${[...seen.values()].reduce((a, b) => a + b, 0)} raw requests: ${[...seen].map(([k, v]) => `${k}×${v}`).join(' ')}`)
    assert.ok((seen.get(400) ?? 0) > 0 && (seen.get(404) ?? 0) > 0 && (seen.get(431) ?? 0) > 0, 'the run did not reach 400, 404 and 431')
  })

  it('answers 431 to headers of 1 MiB or a target of 64 KiB, 400 with the reason to one of 4 KiB, and keeps serving', async () => {
    const huge = await raw(Buffer.from(`GET /nix-cache-info HTTP/1.1\r\nHost: x\r\nX-A: ${'a'.repeat(1024 * 1024)}\r\n\r\n`))
    assert.deepEqual(statuses(huge), [431])
    // Node's parser counts the request line against its 16 KiB header limit: 431 before the router sees it
    const long = await raw(Buffer.from(`GET /${'a'.repeat(64 * 1024)}.narinfo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`))
    assert.deepEqual(statuses(long), [431])
    const overlong = await raw(Buffer.from(`GET /${'a'.repeat(4 * 1024)}.narinfo HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n`))
    assert.deepEqual(statuses(overlong), [400])
    assert.match(overlong, /longer than 1024/)
    await assertAlive()
  })
})
