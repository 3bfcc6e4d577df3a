/**
 * The shim's HTTP surface with plain requests (raw request targets, so nothing is normalised
 * on the way): status codes for bad URLs and methods, loopback-only access, HEAD, and how a
 * NAR is streamed (Content-Length, back-pressure, a cut connection when the download fails).
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { request, type Server } from 'node:http'
import { networkInterfaces } from 'node:os'
import { createShim, listenShim, type ShimOptions } from '../../src/http/server.js'
import { isLoopback } from '../../src/http/access.js'
import { Substituter } from '../../src/substituter/substituter.js'
import { formatNarInfo, parseNarInfo, type NarInfo } from '../../src/nix/narinfo.js'
import { signNarInfo } from '../../src/nix/narinfo-signing.js'
import { hashNar } from '../../src/nix/nar-hash.js'
import { TrustedKeys, formatPublicKey, generateSecretKey, publicKeyOf } from '../../src/nix/signing.js'
import { formatNarUrl } from '../../src/store/nar-url.js'
import { FixturePeerClient, narServer, type FixturePeer, type NarFault } from '../substituter/fixture-peers.js'

const key = generateSecretKey('peer-1')
const trusted = TrustedKeys.parse(formatPublicKey(publicKeyOf(key)))
const HASH = 'p4pclmv1gyja5kzc26npqpia1qqxrf0l'
const ABSENT = 'a4pclmv1gyja5kzc26npqpia1qqxrf0l'

interface Reply { status: number, headers: Record<string, string | string[] | undefined>, body: Buffer }

/** A raw HTTP request; rejects when the connection is cut before the response is complete. */
async function send (port: number, path: string, opts: { method?: string, host?: string, localAddress?: string, hostHeader?: string, headers?: Record<string, string> } = {}): Promise<Reply> {
  return await new Promise((resolve, reject) => {
    const headers = { ...opts.headers, ...(opts.hostHeader === undefined ? {} : { host: opts.hostHeader }) }
    const req = request({ host: opts.host ?? '127.0.0.1', port, path, method: opts.method ?? 'GET', localAddress: opts.localAddress, headers }, res => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('error', reject)
      res.on('aborted', () => { reject(new Error(`response cut after ${Buffer.concat(chunks).length} bytes`)) })
      res.on('end', () => { resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }) })
    })
    req.on('error', reject)
    req.end()
  })
}

describe('HTTP shim routes', function () {
  let server: Server
  let port: number
  let nar: Uint8Array
  let info: NarInfo
  let client: FixturePeerClient
  let substituter: Substituter
  const fault: NarFault = {}
  const servers: Server[] = []

  async function start (sub: Substituter, remote?: ShimOptions['remote'], host = '127.0.0.1'): Promise<number> {
    const s = createShim({ substituter: sub, priority: 33, remote })
    servers.push(s)
    return (await listenShim(s, host, 0)).port
  }

  before(async () => {
    nar = Uint8Array.from(randomBytes(16 * 1024 * 1024))
    const digest = await hashNar((async function * () { yield nar })())
    info = signNarInfo({ storePath: `/nix/store/${HASH}-big`, url: 'x', compression: 'none', references: [], sigs: [], ...digest }, key)
    const peer: FixturePeer = {
      narInfo: async (hashPart) => hashPart === HASH ? { status: 'found', value: formatNarInfo(info) } : { status: 'absent' },
      // The fault is read per request, so each test can set its own.
      nar: async (...args) => await narServer(nar, { chunkSize: 64 * 1024, ...fault })(...args)
    }
    client = new FixturePeerClient(new Map([['peer', peer]]))
    substituter = new Substituter({ client, trusted, timeoutMs: 2000, stallMs: 2000 })
    port = await start(substituter)
    server = servers[0]
  })

  beforeEach(() => {
    for (const k of Object.keys(fault) as Array<keyof NarFault>) Reflect.deleteProperty(fault, k)
    client.narCalls.length = 0
  })

  after(async () => {
    for (const s of servers) {
      s.closeAllConnections()
      await new Promise(resolve => s.close(resolve))
    }
  })

  it('serves nix-cache-info with the store dir and priority', async () => {
    const reply = await send(port, '/nix-cache-info')
    assert.equal(reply.status, 200)
    assert.equal(reply.body.toString(), 'StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 33\n')
  })

  it('serves a verified narinfo pointing at the stable NAR URL, and HEAD without a body', async () => {
    const got = await send(port, `/${HASH}.narinfo`)
    assert.equal(got.status, 200)
    assert.equal(got.headers['content-type'], 'text/x-nix-narinfo')
    const served = parseNarInfo(got.body.toString())
    assert.equal(served.url, formatNarUrl(HASH, info.narHash))
    assert.equal(served.compression, 'none')
    assert.deepEqual(served.sigs, info.sigs)

    const head = await send(port, `/${HASH}.narinfo`, { method: 'HEAD' })
    assert.equal(head.status, 200)
    assert.equal(head.headers['content-length'], String(got.body.length))
    assert.equal(head.body.length, 0)
  })

  it('answers 404 at once for a path no peer has (GET and HEAD)', async () => {
    const started = performance.now()
    assert.equal((await send(port, `/${ABSENT}.narinfo`)).status, 404)
    assert.equal((await send(port, `/${ABSENT}.narinfo`, { method: 'HEAD' })).status, 404)
    assert.ok(performance.now() - started < 1000)
    assert.equal((await send(port, `/${formatNarUrl(ABSENT, info.narHash)}`)).status, 404)
  })

  for (const [path, status, message] of [
    ['/eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee.narinfo', 400, /not a nix32 character/],
    ['/p4pclmv1gyja5kzc26npqpia1qq.narinfo', 400, /expected 32/],
    ['/../etc/passwd', 400, /segments/],
    ['/nar/../../etc/passwd', 400, /segments/],
    ['/%2e%2e/%2e%2e/etc/passwd', 400, /percent-encoded/],
    [`/${HASH}%2enarinfo`, 400, /percent-encoded/],
    ['//nix-cache-info', 400, /empty path segments/],
    ['/nix-cache-info?x=1', 400, /query string/],
    [`/${HASH}.narinfo?junk`, 400, /query string/],
    [`/${'a'.repeat(2000)}.narinfo`, 400, /longer than 1024/],
    ['/nar/garbage.nar', 400, /invalid NAR URL/],
    [`/nar/${HASH}-xyz.nar`, 400, /invalid NAR URL/],
    ['/', 404, /not found/],
    ['/etc/passwd', 404, /not found/]
  ] as Array<[string, number, RegExp]>) {
    it(`answers ${status} for ${path.length > 60 ? `${path.slice(0, 60)}…` : path}`, async () => {
      const reply = await send(port, path)
      assert.equal(reply.status, status)
      assert.match(reply.body.toString(), message)
      assert.ok(reply.body.length < 300, 'a short message')
    })
  }

  it('answers 405 with Allow for other methods', async () => {
    for (const method of ['POST', 'PUT', 'DELETE', 'OPTIONS']) {
      const reply = await send(port, '/nix-cache-info', { method })
      assert.equal(reply.status, 405, method)
      assert.equal(reply.headers.allow, 'GET, HEAD')
    }
  })

  it('refuses requests from other hosts unless allowed', async function () {
    const external = Object.values(networkInterfaces()).flat().find(a => a !== undefined && a.family === 'IPv4' && !a.internal)
    if (external === undefined) this.skip()
    const refusing = await start(substituter, undefined, '0.0.0.0')
    const allowing = await start(substituter, { publicKeys: trusted, hostNames: [] }, '0.0.0.0')
    const from = { host: external.address, localAddress: external.address }
    assert.equal((await send(refusing, '/nix-cache-info', from)).status, 403)
    assert.equal((await send(allowing, '/nix-cache-info', from)).status, 200)
    assert.equal((await send(refusing, '/nix-cache-info')).status, 200, 'loopback is always allowed')
  })

  it('counts a client on one of this host\'s own addresses as this host when it serves other hosts', async function () {
    const external = Object.values(networkInterfaces()).flat().find(a => a !== undefined && a.family === 'IPv4' && !a.internal)
    if (external === undefined) this.skip()
    // Other machines get only what a public cache signed (test/e2e/lan-substitution.test.ts);
    // Nix on this host, reaching a shim that listens on the LAN address, gets everything.
    const other = TrustedKeys.parse(formatPublicKey(publicKeyOf(generateSecretKey('cache.example.org-1'))))
    const lanPort = await start(substituter, { publicKeys: other, hostNames: [] }, '0.0.0.0')
    const from = { host: external.address, localAddress: external.address }
    assert.equal((await send(lanPort, `/${HASH}.narinfo`, from)).status, 200)
    assert.ok((await send(lanPort, `/${formatNarUrl(HASH, info.narHash)}`, from)).body.equals(nar))
  })

  it('takes IP addresses and its own names as Host when it serves other hosts, never another name', async () => {
    const remotePort = await start(substituter, { publicKeys: trusted, hostNames: ['nas.lan'] })
    for (const hostHeader of ['192.0.2.7:12304', '[fe80::1]:12304', 'NAS.lan:12304', 'localhost']) {
      assert.equal((await send(remotePort, '/nix-cache-info', { hostHeader })).status, 200, hostHeader)
    }
    for (const hostHeader of ['attacker.example', 'nas.lan.attacker.example:12304']) {
      const reply = await send(remotePort, '/nix-cache-info', { hostHeader })
      assert.equal(reply.status, 403, hostHeader)
      assert.match(reply.body.toString(), /Host header must name this host \(an IP address/)
    }
  })

  it('refuses a Host header that does not name this host (DNS rebinding from a browser)', async () => {
    const rebound = await send(port, '/status', { hostHeader: `attacker.example:${port}` })
    assert.equal(rebound.status, 403)
    assert.match(rebound.body.toString(), /Host header must name this host/)
    for (const hostHeader of [`localhost:${port}`, `127.0.0.1:${port}`, `[::1]:${port}`, 'LOCALHOST']) {
      assert.equal((await send(port, '/nix-cache-info', { hostHeader })).status, 200, hostHeader)
    }
  })

  it('recognises loopback addresses', () => {
    for (const a of ['127.0.0.1', '127.1.2.3', '::1', '::ffff:127.0.0.1']) assert.equal(isLoopback(a), true, a)
    for (const a of ['192.0.2.2', '::ffff:10.0.0.1', 'fe80::1', '::', '0.0.0.0', '', undefined]) assert.equal(isLoopback(a), false, String(a))
  })

  it('streams a NAR with Content-Length = NarSize', async () => {
    const reply = await send(port, `/${formatNarUrl(HASH, info.narHash)}`)
    assert.equal(reply.status, 200)
    assert.equal(reply.headers['content-length'], String(nar.length))
    assert.ok(reply.body.equals(nar))
  })

  it('resumes a NAR from a byte (Range: bytes=N-), as Nix does after a broken transfer', async () => {
    const url = `/${formatNarUrl(HASH, info.narHash)}`
    const whole = await send(port, url)
    assert.equal(whole.headers['accept-ranges'], 'bytes')
    const resumed = await send(port, url, { headers: { range: 'bytes=1000-' } })
    assert.equal(resumed.status, 206)
    assert.equal(resumed.headers['content-range'], `bytes 1000-${nar.length - 1}/${nar.length}`)
    assert.equal(resumed.headers['content-length'], String(nar.length - 1000))
    assert.ok(resumed.body.equals(nar.subarray(1000)))
    const past = await send(port, url, { headers: { range: `bytes=${nar.length}-` } })
    assert.equal(past.status, 416)
    assert.equal(past.headers['content-range'], `bytes */${nar.length}`)
    const other = await send(port, url, { headers: { range: 'bytes=0-9,20-29' } })
    assert.equal(other.status, 200, 'a range form other than N- gets the whole NAR')
    assert.ok(other.body.equals(nar))
  })

  it('answers HEAD for a NAR with its size and fetches nothing', async () => {
    const reply = await send(port, `/${formatNarUrl(HASH, info.narHash)}`, { method: 'HEAD' })
    assert.equal(reply.status, 200)
    assert.equal(reply.headers['content-length'], String(nar.length))
    assert.equal(reply.body.length, 0)
    assert.equal(client.narCalls.length, 0)
  })

  it('answers 404, not a cut connection, when the peer fails before the first byte', async () => {
    for (const f of [{ absent: true }, { cutAt: 0 }]) {
      Object.assign(fault, f)
      const reply = await send(port, `/${formatNarUrl(HASH, info.narHash)}`)
      assert.equal(reply.status, 404, JSON.stringify(f))
      assert.match(reply.body.toString(), /no peer could deliver the NAR of p4pclmv1/)
      for (const k of Object.keys(f)) Reflect.deleteProperty(fault, k)
    }
  })

  it('cuts the connection when the download fails midway', async () => {
    fault.cutAt = 3 * 1024 * 1024
    await assert.rejects(send(port, `/${formatNarUrl(HASH, info.narHash)}`), /cut after \d+ bytes|socket hang up|aborted/)
  })

  it('reads from the peer only as fast as the client reads (back-pressure), and stops when it leaves', async () => {
    const before = substituter.counters.narBytesIn
    await new Promise<void>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, path: `/${formatNarUrl(HASH, info.narHash)}` }, res => {
        res.pause()
        setTimeout(() => {
          try {
            const pulled = substituter.counters.narBytesIn - before
            assert.ok(pulled < nar.length / 2, `pulled ${pulled} of ${nar.length} bytes while the client read nothing`)
            req.destroy()
            resolve()
          } catch (err) { reject(err) }
        }, 500)
      })
      req.on('error', () => {})
      req.end()
    })
    // the server sees the connection close a moment after the client: wait for it
    const settled = (): boolean => client.narCalls.at(-1)?.signal.aborted === true && substituter.transfers().length === 0
    for (let i = 0; i < 50 && !settled(); i++) await new Promise(resolve => setTimeout(resolve, 100))
    assert.ok(client.narCalls.at(-1)?.signal.aborted, 'the peer stream was aborted when the client left')
    assert.deepEqual(substituter.transfers(), [])
  })

  it('keeps serving after all that', async () => {
    assert.equal((await send(port, '/nix-cache-info')).status, 200)
    assert.ok(server.listening)
  })
})
