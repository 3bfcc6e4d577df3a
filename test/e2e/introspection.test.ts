/**
 * What an operator sees of two real daemons after the real Nix client fetched a closure from
 * one through the other: /status and /metrics on both sides, /which, and a stock libp2p node
 * (the README's probe script) identifying and pinging a daemon.
 */
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { readFile, rm, writeFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { startFetchedPair, type FetchedPair } from '../helpers/daemon-pair.js'
import type { StatusReport } from '../../src/daemon/status.js'
import type { PeerHolding } from '../../src/substituter/which.js'
import { AGENT_VERSION } from '../../src/p2p/constants.js'

const REPO = fileURLToPath(new URL('../..', import.meta.url))

async function get (url: string): Promise<{ status: number, type: string, body: string }> {
  const res = await fetch(url)
  return { status: res.status, type: res.headers.get('content-type') ?? '', body: await res.text() }
}

async function status (base: string): Promise<StatusReport> {
  const res = await get(`${base}/status`)
  assert.equal(res.status, 200, res.body)
  assert.match(res.type, /^application\/json/)
  return JSON.parse(res.body) as StatusReport
}

/** The value of one sample line of Prometheus text, e.g. `name{label="x"}`. */
function sample (text: string, series: string): number {
  const line = text.split('\n').find(l => l.startsWith(`${series} `))
  assert.ok(line !== undefined, `no ${series} in /metrics:\n${text}`)
  return Number(line.slice(series.length + 1))
}

describe('introspection of two daemons after a real fetch (/status, /metrics, /which, libp2p tools)', function () {
  this.timeout(180_000)
  let pair: FetchedPair
  /** Sum of the closure's NarSizes: what went from A to B. */
  let narBytes: number
  let hashOfTop: string

  before(async () => {
    pair = await startFetchedPair('intro')
    const { stdout } = await pair.nix.run('nix-store', ['--store', pair.nix.storeRoot('hostA'), '-q', '--size', ...pair.closure])
    narBytes = stdout.trim().split('\n').map(Number).reduce((a, b) => a + b, 0)
    hashOfTop = pair.top.slice('/nix/store/'.length, '/nix/store/'.length + 32)
  })

  after(async () => { await pair?.cleanup() })

  it('/status on the fetching daemon names the node, its policy, the peer and what came from it', async () => {
    let s = await status(pair.b.url)
    // A's index summary reaches B soon after they connect; give a loaded machine time.
    for (let i = 0; i < 100 && s.peers[0]?.indexSize === null; i++) {
      await new Promise(resolve => setTimeout(resolve, 200))
      s = await status(pair.b.url)
    }
    assert.equal(s.peerId, pair.b.peerId)
    assert.equal(s.agent, AGENT_VERSION)
    assert.equal(s.listen.http, pair.b.url)
    assert.ok(s.listen.p2p.some(a => a.startsWith('/ip4/127.0.0.1/tcp/')), s.listen.p2p.join(' '))
    assert.match(s.publicKey, /^peerix-[^:]+:[A-Za-z0-9+/]{43}=$/)
    assert.equal(s.policy.mode, 'trusted')
    assert.ok(s.policy.deny.includes('nixos-system-*'))
    assert.equal(s.policy.peersOnly, false)
    assert.ok(s.uptimeSeconds >= 0 && s.startedAt <= Date.now())

    assert.equal(s.peers.length, 1, JSON.stringify(s.peers))
    const [peer] = s.peers
    assert.equal(peer.id, pair.a.peerId)
    assert.equal(peer.peerix, true)
    assert.equal(peer.agent, AGENT_VERSION)
    for (const p of ['/peerix/narinfo/1', '/peerix/nar/1', '/ipfs/id/1.0.0', '/ipfs/ping/1.0.0']) assert.ok(peer.protocols.includes(p), `${p} not in ${peer.protocols.join(' ')}`)
    assert.ok(peer.addresses.some(a => pair.aAddr.startsWith(a)), `${peer.addresses.join(' ')} vs ${pair.aAddr}`)
    assert.equal(typeof peer.latencyMs, 'number')
    assert.ok(peer.connectedSince <= Date.now())
    assert.ok(peer.connectedSeconds >= 0 && peer.connectedSeconds <= (Date.now() - peer.connectedSince) / 1000 + 1)
    // A serves its whole store (--serve all): its index summary lists at least the closure.
    assert.ok(typeof peer.indexSize === 'number' && peer.indexSize >= pair.closure.length, `indexSize ${peer.indexSize}`)
    assert.ok(peer.fetched.narInfos >= pair.closure.length, JSON.stringify(peer.fetched))
    assert.equal(peer.fetched.narBytes, narBytes)
    assert.equal(peer.fetched.rejected, 0)
    assert.deepEqual(peer.served, { narInfos: 0, refusals: 0, narBytes: 0 })

    assert.ok(s.counters.narInfoHits >= pair.closure.length, JSON.stringify(s.counters))
    // the closure's NARs are small: they come with their narinfo (r2), each once, or are downloaded
    assert.ok(s.counters.narsInline >= 1, JSON.stringify(s.counters))
    assert.equal(s.counters.narCompleted + s.counters.narsInline, pair.closure.length, JSON.stringify(s.counters))
    // and Nix got some of them from memory
    assert.ok(s.counters.narPrefetchHits >= 1 && s.counters.narPrefetchHits <= pair.closure.length, JSON.stringify(s.counters))
    // Nix walks the closure one narinfo at a time: the references of each path answered were
    // looked up before Nix asked for them
    assert.ok(s.counters.narInfoReadAheads >= 1 && s.counters.narInfoReadAheads < pair.closure.length, JSON.stringify(s.counters))
    assert.ok(s.counters.narInfoReadAheadHits >= 1 && s.counters.narInfoReadAheadHits <= s.counters.narInfoReadAheads, JSON.stringify(s.counters))
    assert.equal(s.counters.narBytesIn, narBytes)
    assert.equal(s.counters.narBytesOut, 0)
    assert.equal(s.counters.verificationFailures, 0)
    assert.deepEqual(s.transfers, [])
  })

  it('/status on the serving daemon shows the same bytes going out, to that peer', async () => {
    const s = await status(pair.a.url)
    assert.equal(s.policy.mode, 'all')
    assert.equal(s.counters.narsServed, pair.closure.length)
    assert.equal(s.counters.narBytesOut, narBytes)
    assert.equal(s.counters.narBytesIn, 0)
    const peer = s.peers.find(p => p.id === pair.b.peerId)
    assert.ok(peer !== undefined, JSON.stringify(s.peers))
    assert.equal(peer.served.narBytes, narBytes)
    assert.ok(peer.served.narInfos >= pair.closure.length)
  })

  it('/metrics has request counts, narinfo latency, NAR bytes both ways, peers, verification failures and libp2p\'s own', async () => {
    const b = await get(`${pair.b.url}/metrics`)
    assert.equal(b.status, 200)
    assert.match(b.type, /^text\/plain/)
    assert.ok(sample(b.body, 'peerix_http_requests_total{route="narinfo",status="200"}') >= pair.closure.length)
    assert.equal(sample(b.body, 'peerix_http_requests_total{route="nar",status="200"}'), pair.closure.length)
    assert.ok(sample(b.body, 'peerix_narinfo_duration_seconds_count{status="200"}') >= pair.closure.length)
    assert.ok(sample(b.body, 'peerix_narinfo_duration_seconds_sum{status="200"}') > 0)
    assert.equal(sample(b.body, 'peerix_nar_bytes_total{direction="in"}'), narBytes)
    assert.equal(sample(b.body, 'peerix_nar_bytes_total{direction="out"}'), 0)
    assert.equal(sample(b.body, 'peerix_peers_connected'), 1)
    assert.equal(sample(b.body, 'peerix_verification_failures_total'), 0)
    assert.equal(sample(b.body, 'peerix_refusals_total{direction="received"}'), 0)
    assert.equal(sample(b.body, 'peerix_refusals_total{direction="given"}'), 0)
    assert.ok(sample(b.body, 'peerix_narinfo_lookups_total{result="hit"}') >= pair.closure.length)
    // libp2p's metrics, in the same per-daemon registry.
    // the NARs came over /peerix/nar/1 or with their narinfo (r2)
    const received = (protocol: string): number => {
      const series = `libp2p_data_transfer_bytes_total{protocol="${protocol} received"}`
      return b.body.includes(`${series} `) ? sample(b.body, series) : 0
    }
    assert.ok(received('/peerix/nar/1') + received('/peerix/narinfo/1') >= narBytes)
    assert.ok(sample(b.body, 'libp2p_noise_xxhandshake_successes_total') >= 1)

    const a = await get(`${pair.a.url}/metrics`)
    assert.equal(sample(a.body, 'peerix_nar_bytes_total{direction="out"}'), narBytes)
    // Its own requests are counted too (the /metrics just answered is counted once it closes).
    const again = await get(`${pair.a.url}/metrics`)
    assert.ok(sample(again.body, 'peerix_http_requests_total{route="metrics",status="200"}') >= 1)
  })

  it('/which/<hash> asks every peer and says which key verified its signature', async () => {
    const res = await get(`${pair.b.url}/which/${hashOfTop}`)
    assert.equal(res.status, 200, res.body)
    const holdings = JSON.parse(res.body) as PeerHolding[]
    assert.equal(holdings.length, 1)
    const [h] = holdings
    assert.equal(h.peer, pair.a.peerId)
    assert.equal(h.status, 'verified')
    assert.ok(h.status === 'verified')
    assert.equal(h.storePath, pair.top)
    assert.equal(h.verifiedBy, pair.keyName)
    assert.ok(h.signatures.includes(pair.keyName))

    const absent = JSON.parse((await get(`${pair.b.url}/which/${'0'.repeat(32)}`)).body) as PeerHolding[]
    assert.deepEqual(absent, [{ peer: pair.a.peerId, status: 'absent' }])
    assert.equal((await get(`${pair.b.url}/which/not-a-hash`)).status, 400)
  })

  it('the README\'s probe script (a stock js-libp2p node) identifies and pings a daemon', async () => {
    const readme = await readFile(join(REPO, 'README.md'), 'utf8')
    const script = /<!-- probe\.mjs -->\s*```js\n([\s\S]*?)```/.exec(readme)?.[1]
    assert.ok(script !== undefined, 'README has no <!-- probe.mjs --> code block')
    // It imports ./dist/polyfill.js: it runs from the checkout, as README says.
    const file = join(REPO, `.probe-${process.pid}.mjs`)
    await writeFile(file, script)
    try {
      const { stdout } = await promisify(execFile)(process.execPath, [file, pair.aAddr], { cwd: REPO, timeout: 60_000 })
      assert.match(stdout, new RegExp(`^peer ${pair.a.peerId}$`, 'm'))
      assert.match(stdout, new RegExp(`^agent ${AGENT_VERSION.replace(/\./g, '\\.')}$`, 'm'))
      assert.match(stdout, /^protocols .*\/peerix\/narinfo\/1/m)
      assert.match(stdout, /^ping \d+ ms$/m)
    } finally {
      await rm(file, { force: true })
    }
  })
})
