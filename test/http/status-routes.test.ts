/**
 * The operator's routes on the shim without daemons: routing of /, /status, /metrics and
 * /which/<hash>; JSON and HTML answers; requests counted by route and status (cut ones too);
 * the narinfo latency histogram; and `which` sorting each peer's answer (verified by which
 * key, signed by someone we do not trust, absent, refused, failed, silent past the budget).
 */
import assert from 'node:assert/strict'
import { request, type Server } from 'node:http'
import { Registry } from 'prom-client'
import { createShim, listenShim } from '../../src/http/server.js'
import { route } from '../../src/http/router.js'
import { ShimMetrics } from '../../src/http/metrics.js'
import type { Introspection } from '../../src/http/status.js'
import { Substituter } from '../../src/substituter/substituter.js'
import { WHICH_MAX_WAIT_MS, whichPeers, whichWaitMs } from '../../src/substituter/which.js'
import { REQUEST_TIMEOUT_MS } from '../../src/cli/client.js'
import { formatNarInfo, type NarInfo } from '../../src/nix/narinfo.js'
import { signNarInfo } from '../../src/nix/narinfo-signing.js'
import { TrustedKeys, formatPublicKey, generateSecretKey, publicKeyOf } from '../../src/nix/signing.js'
import { FixturePeerClient, never, type FixturePeer } from '../substituter/fixture-peers.js'

const HASH = 'p4pclmv1gyja5kzc26npqpia1qqxrf0l'
const trustedKey = generateSecretKey('lab-1')
const strangerKey = generateSecretKey('stranger-1')
const trusted = TrustedKeys.parse(formatPublicKey(publicKeyOf(trustedKey)))
const unsigned: NarInfo = {
  storePath: `/nix/store/${HASH}-hello`,
  url: 'nar/x.nar',
  compression: 'none',
  narHash: 'sha256:1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s',
  narSize: 120,
  references: [],
  sigs: []
}

function peer (narInfo: FixturePeer['narInfo']): FixturePeer {
  return { narInfo }
}

async function get (port: number, path: string, method = 'GET'): Promise<{ status: number, type: string, headers: Record<string, unknown>, body: string }> {
  return await new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method }, res => {
      let body = ''
      res.on('data', (c: Buffer) => { body += c.toString() })
      res.on('end', () => { resolve({ status: res.statusCode ?? 0, type: res.headers['content-type'] ?? '', headers: res.headers, body }) })
    })
    req.on('error', reject)
    req.end()
  })
}

describe('the shim\'s operator routes', function () {
  this.timeout(30_000)
  const servers: Server[] = []

  async function shim (introspection?: Introspection): Promise<number> {
    const client = new FixturePeerClient(new Map())
    const server = createShim({ substituter: new Substituter({ client, trusted, timeoutMs: 500 }), priority: 20, introspection })
    servers.push(server)
    return (await listenShim(server, '127.0.0.1', 0)).port
  }

  after(async () => {
    for (const s of servers) {
      s.closeAllConnections()
      await new Promise(resolve => s.close(resolve))
    }
  })

  it('routes /, /status, /metrics and /which/<hash>; anything near them is not found or bad', () => {
    assert.deepEqual(route('GET', '/'), { endpoint: 'dashboard' })
    assert.deepEqual(route('GET', '/status'), { endpoint: 'status' })
    assert.deepEqual(route('HEAD', '/metrics'), { endpoint: 'metrics' })
    assert.deepEqual(route('GET', `/which/${HASH}`), { endpoint: 'which', hashPart: HASH })
    assert.equal(route('GET', '/status/').endpoint, 'reject')
    assert.equal(route('GET', '/which/').endpoint, 'reject')
    assert.match((route('GET', '/which/nope') as { message: string }).message, /"nope"/)
    assert.equal((route('GET', '/status?x=1') as { status: number }).status, 400)
    assert.equal((route('POST', '/status') as { status: number }).status, 405)
    assert.equal((route('GET', '/toString') as { status: number }).status, 404)
  })

  it('answers 404 for them when the daemon gave no introspection', async () => {
    const port = await shim()
    for (const path of ['/', '/status', '/metrics', `/which/${HASH}`]) assert.equal((await get(port, path)).status, 404, path)
  })

  it('serves JSON, HTML and Prometheus text, counting every request by route and status', async () => {
    const registry = new Registry()
    let whichCalls = 0
    let hanging = (): void => {}
    const introspection: Introspection = {
      status: async () => ({ hello: 'operator' }),
      which: async (hashPart, signal) => {
        whichCalls++
        if (hashPart !== HASH) return []
        hanging()
        // Hangs until the client goes away: a request that never finishes.
        await new Promise(resolve => { signal.addEventListener('abort', resolve, { once: true }) })
        return []
      },
      metrics: new ShimMetrics(registry, () => ({ narBytesIn: 1234, narBytesOut: 99, peersConnected: 2, verificationFailures: 3, narInfoHits: 4, narInfoMisses: 5, narInfoRefusals: 8, refusalsReceived: 6, refusalsGiven: 7 }))
    }
    const port = await shim(introspection)

    const status = await get(port, '/status')
    assert.equal(status.status, 200)
    assert.equal(status.type, 'application/json')
    assert.equal(status.headers['cache-control'], 'no-store')
    assert.deepEqual(JSON.parse(status.body), { hello: 'operator' })
    assert.equal((await get(port, '/status', 'HEAD')).body, '')

    const page = await get(port, '/')
    assert.equal(page.status, 200)
    assert.match(page.type, /^text\/html/)
    assert.match(String(page.headers['content-security-policy']), /default-src 'none'/)
    assert.match(page.body, /fetch\('\/status'/)
    assert.doesNotMatch(page.body, /<(script|link|img)[^>]+(src|href)=/) // nothing from elsewhere

    assert.deepEqual(JSON.parse((await get(port, `/which/${'a'.repeat(32)}`)).body), [])
    // A /which the client gives up on (once the daemon is working on it) is counted as cut.
    await new Promise<void>(resolve => {
      const req = request({ host: '127.0.0.1', port, path: `/which/${HASH}` })
      req.on('error', () => { resolve() })
      hanging = () => { req.destroy() }
      req.end()
    })
    assert.equal((await get(port, `/${HASH}.narinfo`)).status, 404)

    // The server sees the cut connection close a moment after the client: wait for it.
    let metrics = await get(port, '/metrics')
    for (let i = 0; i < 50 && !metrics.body.includes('status="cut"'); i++) {
      await new Promise(resolve => setTimeout(resolve, 100))
      metrics = await get(port, '/metrics')
    }
    assert.equal(metrics.status, 200)
    assert.match(metrics.type, /^text\/plain; version=0\.0\.4/)
    const lines = metrics.body.split('\n')
    for (const expected of [
      'peerix_http_requests_total{route="status",status="200"} 2',
      'peerix_http_requests_total{route="dashboard",status="200"} 1',
      'peerix_http_requests_total{route="which",status="200"} 1',
      'peerix_http_requests_total{route="which",status="cut"} 1',
      'peerix_http_requests_total{route="narinfo",status="404"} 1',
      'peerix_narinfo_duration_seconds_count{status="404"} 1',
      'peerix_nar_bytes_total{direction="in"} 1234',
      'peerix_nar_bytes_total{direction="out"} 99',
      'peerix_peers_connected 2',
      'peerix_verification_failures_total 3',
      // a wrong NAR sent with a verified narinfo is counted too (narinfo-race.ts)
      '# HELP peerix_verification_failures_total Peer answers dropped: a narinfo malformed, for another path or not signed by a trusted key, or a NAR sent with its narinfo that does not match it',
      'peerix_narinfo_lookups_total{result="hit"} 4',
      'peerix_narinfo_lookups_total{result="miss"} 5',
      'peerix_narinfo_lookups_total{result="refused"} 8',
      'peerix_refusals_total{direction="received"} 6',
      'peerix_refusals_total{direction="given"} 7'
    ]) assert.ok(lines.includes(expected), `${expected} not in:\n${metrics.body}`)
    assert.equal(whichCalls, 2)
  })

  it('which: every peer\'s answer, checked on its own, within the wait budget', async () => {
    const client = new FixturePeerClient(new Map([
      ['good', peer(async () => ({ status: 'found', value: formatNarInfo(signNarInfo(signNarInfo(unsigned, strangerKey), trustedKey)) }))],
      ['stranger', peer(async () => ({ status: 'found', value: formatNarInfo(signNarInfo(unsigned, strangerKey)) }))],
      ['garbled', peer(async () => ({ status: 'found', value: 'StorePath: nonsense\n' }))],
      ['empty', peer(async () => ({ status: 'absent' }))],
      ['strict', peer(async () => ({ status: 'refused', reason: 'only this host has it' }))],
      ['broken', peer(async () => { throw new Error('stream reset') })],
      ['frozen', peer(never())]
    ]))
    const started = Date.now()
    const answers = await whichPeers(client, trusted, HASH, 300)
    assert.ok(Date.now() - started < 5000)
    assert.deepEqual(answers.map(a => [a.peer, a.status]), [
      ['good', 'verified'], ['stranger', 'unverified'], ['garbled', 'unverified'], ['empty', 'absent'],
      ['strict', 'refused'], ['broken', 'error'], ['frozen', 'error']
    ])
    const [good, stranger, garbled] = answers
    assert.ok(good.status === 'verified' && stranger.status === 'unverified' && garbled.status === 'unverified')
    assert.equal(good.verifiedBy, 'lab-1')
    assert.deepEqual(good.signatures, ['stranger-1', 'lab-1'])
    assert.equal(good.storePath, unsigned.storePath)
    assert.match(stranger.reason, /no valid signature by a trusted key/)
    assert.deepEqual(stranger.signatures, ['stranger-1'])
    assert.match(garbled.reason, /malformed narinfo/)
    assert.deepEqual(answers[4], { peer: 'strict', status: 'refused', reason: 'only this host has it' })
    assert.deepEqual(answers[5], { peer: 'broken', status: 'error', reason: 'stream reset' })
    assert.deepEqual(answers[6], { peer: 'frozen', status: 'error', reason: 'no answer within 0.3 s' })
  })

  it('waits for peers less long than `peerix which` waits for the daemon, whatever --timeout says', () => {
    assert.equal(whichWaitMs(2000), 2000)
    assert.equal(whichWaitMs(600_000), WHICH_MAX_WAIT_MS)
    assert.ok(WHICH_MAX_WAIT_MS + 5000 <= REQUEST_TIMEOUT_MS)
  })
})
