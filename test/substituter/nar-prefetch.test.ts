/**
 * Small NARs fetched with their narinfo (src/substituter/nar-prefetch.ts): the prefetcher's
 * limits with a fetch function of the test's own, then the substituter between real libp2p
 * nodes, where a small NAR that came in the narinfo's answer, or was prefetched after it,
 * reaches Nix after the peer that had it is gone; and, through the HTTP shim, a small NAR whose
 * peers stall: Nix's request waits out each stall once, not once in the prefetch and again in
 * its own download.
 */
import '../../src/polyfill.js'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { signNarInfo } from '../../src/nix/narinfo-signing.js'
import { generateSecretKey, publicKeyOf, TrustedKeys } from '../../src/nix/signing.js'
import { Libp2pPeerClient } from '../../src/p2p/libp2p-peer-client.js'
import { NarPrefetcher, PREFETCH_MAX_NAR_BYTES } from '../../src/substituter/nar-prefetch.js'
import { Substituter } from '../../src/substituter/substituter.js'
import { createShim, listenShim } from '../../src/http/server.js'
import { parseNarInfo } from '../../src/nix/narinfo.js'
import { MemorySource, Nodes, eventually, hashPartOf } from '../p2p/node-helpers.js'
import type { PeerixNode } from '../../src/p2p/node.js'
import type { NarBytes, NarInfoOptions, Served, ServedNarInfo } from '../../src/store/source.js'
import type { Server } from 'node:http'

const H1 = '11111111111111111111111111111111'
const H2 = '22222222222222222222222222222222'
const H3 = '33333333333333333333333333333333'
const H4 = '44444444444444444444444444444444'
const NAR_HASH = 'sha256:1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s'

/** A fetch the test resolves or fails by hand, remembering what was asked. */
class ManualFetch {
  readonly asked: Array<{ hashPart: string, signal: AbortSignal, resolve: (bytes: Uint8Array) => void, reject: (err: Error) => void }> = []
  readonly fetch = async (hashPart: string, _narHash: string, _narSize: number, signal: AbortSignal): Promise<Uint8Array> => {
    return await new Promise((resolve, reject) => { this.asked.push({ hashPart, signal, resolve, reject }) })
  }
}

describe('NarPrefetcher', () => {
  it('fetches only NARs up to the size limit, and hands each out once', async () => {
    const manual = new ManualFetch()
    const prefetcher = new NarPrefetcher(manual.fetch, { maxNarBytes: 1000 })
    prefetcher.offer(H1, NAR_HASH, 1000)
    prefetcher.offer(H2, NAR_HASH, 1001)
    prefetcher.offer(H1, NAR_HASH, 1000) // again: already held
    assert.deepEqual(manual.asked.map(a => a.hashPart), [H1])
    assert.equal(prefetcher.narSize(H1, NAR_HASH), 1000)
    assert.equal(prefetcher.narSize(H2, NAR_HASH), undefined)
    const ready = prefetcher.ready(H1, NAR_HASH) // before the fetch is done: waits for it
    manual.asked[0].resolve(Uint8Array.of(1, 2, 3))
    assert.equal(await ready, 1000)
    assert.deepEqual(await prefetcher.take(H1, NAR_HASH), Uint8Array.of(1, 2, 3))
    assert.equal(await prefetcher.ready(H1, NAR_HASH), undefined, 'taken')
    assert.equal(await prefetcher.take(H1, NAR_HASH), undefined)
    prefetcher.offer(H3, NAR_HASH, 10)
    const taken = prefetcher.take(H3, NAR_HASH) // taken while it is fetched: waits for it
    manual.asked[1].resolve(Uint8Array.of(4))
    assert.deepEqual(await taken, Uint8Array.of(4))
    assert.equal(prefetcher.heldBytes, 0)
  })

  it('keeps within its byte budget and its concurrency, queueing the rest in order; taking makes room', async () => {
    const manual = new ManualFetch()
    const prefetcher = new NarPrefetcher(manual.fetch, { maxNarBytes: 600, budgetBytes: 1000, concurrency: 2 })
    prefetcher.offer(H1, NAR_HASH, 600)
    prefetcher.offer(H2, NAR_HASH, 500) // over the budget: waits
    prefetcher.offer(H3, NAR_HASH, 300) // would fit, but came after H2
    assert.deepEqual(manual.asked.map(a => a.hashPart), [H1])
    assert.equal(prefetcher.heldBytes, 600)
    manual.asked[0].resolve(new Uint8Array(600))
    assert.equal((await prefetcher.take(H1, NAR_HASH))?.byteLength, 600)
    assert.deepEqual(manual.asked.map(a => a.hashPart), [H1, H2, H3])
    assert.equal(prefetcher.heldBytes, 800)

    const one = new NarPrefetcher(manual.fetch, { concurrency: 1 })
    one.offer(H1, NAR_HASH, 10)
    one.offer(H3, NAR_HASH, 10) // one is running: H3 waits for it
    assert.equal(manual.asked.length, 4)
    manual.asked[3].resolve(new Uint8Array(10))
    assert.equal(await one.ready(H1, NAR_HASH), 10)
    assert.deepEqual(manual.asked.map(a => a.hashPart), [H1, H2, H3, H1, H3])
  })

  it('leaves a waiting NAR to Nix when Nix asks first, bounds its queue, and drops offers Nix did not ask for in time', async () => {
    const manual = new ManualFetch()
    const prefetcher = new NarPrefetcher(manual.fetch, { concurrency: 1, maxQueued: 2 })
    prefetcher.offer(H1, NAR_HASH, 10)
    prefetcher.offer(H2, NAR_HASH, 10)
    prefetcher.offer(H3, NAR_HASH, 10)
    prefetcher.offer(H4, NAR_HASH, 10) // the queue holds two
    assert.equal(await prefetcher.ready(H2, NAR_HASH), undefined, 'waiting, not fetched: Nix\'s request fetches it')
    manual.asked[0].resolve(new Uint8Array(10))
    assert.equal(await prefetcher.ready(H1, NAR_HASH), 10)
    assert.deepEqual(manual.asked.map(a => a.hashPart), [H1, H3], 'not H2 (Nix asked for it) nor H4 (no room in the queue)')

    const slow = new NarPrefetcher(manual.fetch, { concurrency: 1, ttlMs: 30 })
    slow.offer(H1, NAR_HASH, 10)
    slow.offer(H2, NAR_HASH, 10)
    await new Promise(resolve => setTimeout(resolve, 50)) // H2's offer is past its time
    manual.asked[2].resolve(new Uint8Array(10))
    assert.equal(await slow.ready(H1, NAR_HASH), 10)
    assert.equal(manual.asked.length, 3, 'H2 was not fetched')
  })

  it('stops waiting for a prefetch when Nix leaves, and keeps the prefetch for its next request', async () => {
    const manual = new ManualFetch()
    const prefetcher = new NarPrefetcher(manual.fetch)
    prefetcher.offer(H1, NAR_HASH, 10)
    const nix = new AbortController()
    const waiting = prefetcher.ready(H1, NAR_HASH, nix.signal)
    nix.abort()
    assert.equal(await waiting, undefined)
    assert.equal(manual.asked[0].signal.aborted, false, 'the prefetch goes on')
    const again = prefetcher.ready(H1, NAR_HASH)
    manual.asked[0].resolve(new Uint8Array(10))
    assert.equal(await again, 10)
  })

  it('lets go of a NAR whose fetch failed: Nix\'s request goes to the peers as usual', async () => {
    const manual = new ManualFetch()
    const prefetcher = new NarPrefetcher(manual.fetch)
    prefetcher.offer(H1, NAR_HASH, 100)
    manual.asked[0].reject(new Error('the peer left'))
    assert.equal(await prefetcher.ready(H1, NAR_HASH), undefined)
    assert.equal(prefetcher.narSize(H1, NAR_HASH), undefined)
    assert.equal(await prefetcher.take(H1, NAR_HASH), undefined)
    assert.equal(prefetcher.heldBytes, 0)
  })

  it('drops a NAR nobody asked for within its time', async () => {
    const manual = new ManualFetch()
    const prefetcher = new NarPrefetcher(manual.fetch, { ttlMs: 20 })
    prefetcher.offer(H1, NAR_HASH, 100)
    manual.asked[0].resolve(new Uint8Array(100))
    await new Promise(resolve => setTimeout(resolve, 40))
    prefetcher.offer(H2, NAR_HASH, 100) // any offer sweeps what expired
    assert.equal(prefetcher.narSize(H1, NAR_HASH), undefined)
    assert.equal(prefetcher.heldBytes, 100)
  })

  it('stops its fetches and drops what it holds', async () => {
    const manual = new ManualFetch()
    const prefetcher = new NarPrefetcher(manual.fetch)
    prefetcher.offer(H1, NAR_HASH, 100)
    prefetcher.stop()
    assert.equal(manual.asked[0].signal.aborted, true)
    assert.equal(prefetcher.heldBytes, 0)
    prefetcher.offer(H2, NAR_HASH, 100)
    assert.equal(manual.asked.length, 1)
  })
})

describe('substituter prefetching between peerix nodes', () => {
  const nodes = new Nodes()
  afterEach(async () => { await nodes.stopAll() })

  /** A (serving a small and a large path) and B connected; the substituter in B, made by `options`. */
  async function twoNodes (options: { inlineNars: boolean }): Promise<{ a: PeerixNode, b: PeerixNode, paths: Array<{ hashPart: string, narHash: string }>, small: Uint8Array, sub: Substituter }> {
    const key = generateSecretKey('prefetch-test-1')
    const source = new MemorySource()
    const small = new Uint8Array(randomBytes(PREFETCH_MAX_NAR_BYTES))
    const large = new Uint8Array(randomBytes(PREFETCH_MAX_NAR_BYTES + 1))
    const paths = [source.add('small', small), source.add('large', large)]
    for (const { hashPart } of paths) {
      const info = source.infos.get(hashPart)
      assert.ok(info !== undefined)
      source.infos.set(hashPart, signNarInfo({ ...info, url: `nar/${hashPart}.nar` }, key))
    }
    const a = await nodes.peerix({ source })
    const b = await nodes.peerix()
    await b.dial(a.getMultiaddrs()[0])
    await eventually('A known to speak peerix', () => b.services.peerixPeers.list().length === 1)
    const sub = new Substituter({ client: new Libp2pPeerClient(b), trusted: new TrustedKeys([publicKeyOf(key)]), timeoutMs: 5000, inlineNars: options.inlineNars, narPeerGraceMs: 200 })
    return { a, b, paths, small, sub }
  }

  /** With A gone, B still hands out the small NAR (from memory), and has no large one. */
  async function afterAGoes ({ a, b, paths, small, sub }: Awaited<ReturnType<typeof twoNodes>>): Promise<void> {
    await a.stop()
    await eventually('A gone', () => b.services.peerixPeers.list().length === 0)
    const got = await sub.nar(paths[0].hashPart, paths[0].narHash)
    assert.ok(got !== undefined)
    assert.equal(got.narSize, small.byteLength)
    const chunks: Uint8Array[] = []
    for await (const chunk of got.stream) chunks.push(chunk)
    assert.ok(Buffer.concat(chunks).equals(small))
    assert.equal(sub.counters.narPrefetchHits, 1)
    assert.equal(await sub.nar(paths[1].hashPart, paths[1].narHash), undefined, 'the large NAR was not fetched ahead')
  }

  it('hands Nix a small NAR that came with its narinfo (r2), after the peer that had it is gone; no NAR stream; a large one does not come', async () => {
    const pair = await twoNodes({ inlineNars: true })
    try {
      for (const { hashPart } of pair.paths) assert.ok(await pair.sub.narInfo(hashPart) !== undefined)
      assert.equal(pair.sub.counters.narsInline, 1)
      assert.equal(pair.sub.counters.narDownloads, 0)
      await afterAGoes(pair)
    } finally {
      pair.sub.stop()
    }
  })

  it('prefetches a small NAR over /peerix/nar/1 when it did not come with its narinfo (a peer of r1)', async () => {
    const pair = await twoNodes({ inlineNars: false })
    try {
      for (const { hashPart } of pair.paths) assert.ok(await pair.sub.narInfo(hashPart) !== undefined)
      await eventually('the small NAR prefetched', () => pair.sub.counters.narCompleted === 1)
      assert.equal(pair.sub.counters.narsInline, 0)
      await afterAGoes(pair)
    } finally {
      pair.sub.stop()
    }
  })
})

/** A peer that answers narinfos (without their NAR) and, asked for a NAR, sends nothing: its connection stays up. */
class StallingSource extends MemorySource {
  narAsks = 0

  override async narInfo (hashPart: string, peer?: string): Promise<ServedNarInfo> {
    return await super.narInfo(hashPart, peer) // no NAR with it, whatever the asker would take
  }

  override async nar (hashPart: string, narHash: string, offset: number, _peer?: string, signal?: AbortSignal): Promise<Served<NarBytes>> {
    const served = await super.nar(hashPart, narHash, offset)
    if (served.status !== 'found') return served
    this.narAsks += 1
    const stall = async function * (): AsyncGenerator<Uint8Array> {
      await new Promise<void>(resolve => { if (signal?.aborted === true) resolve(); else signal?.addEventListener('abort', () => { resolve() }, { once: true }) })
      throw new Error('the asker went away')
    }
    return { status: 'found', value: { length: served.value.length, stream: stall() } }
  }
}

/** An honest peer of r1: it sends a NAR only when asked for it over /peerix/nar/1, after `delayMs` for its narinfo. */
class PlainSource extends MemorySource {
  narAsks = 0
  constructor (private readonly delayMs = 0) { super() }

  override async narInfo (hashPart: string, peer?: string, _options?: NarInfoOptions): Promise<ServedNarInfo> {
    await new Promise(resolve => setTimeout(resolve, this.delayMs))
    return await super.narInfo(hashPart, peer)
  }

  override async nar (hashPart: string, narHash: string, offset: number): Promise<Served<NarBytes>> {
    this.narAsks += 1
    return await super.nar(hashPart, narHash, offset)
  }
}

describe('a small NAR whose peers stall (real peerix nodes, the HTTP shim)', function () {
  /** The substituter's stall limit here; the daemon's is 20 s. */
  const STALL_MS = 1000
  this.timeout(30_000)
  const nodes = new Nodes()
  const key = generateSecretKey('stall-test-1')
  const small = new Uint8Array(randomBytes(20_000))
  let sub: Substituter | undefined
  let shim: Server | undefined

  afterEach(async () => {
    sub?.stop()
    if (shim !== undefined) {
      const closed = new Promise(resolve => shim?.close(resolve))
      shim.closeAllConnections()
      await closed
    }
    sub = undefined
    shim = undefined
    await nodes.stopAll()
  })

  /** `source` with the small NAR, its narinfo signed by the key the shim trusts. */
  function holding<T extends MemorySource> (source: T): T {
    const { hashPart } = source.add('small', small)
    const info = source.infos.get(hashPart)
    assert.ok(info !== undefined)
    source.infos.set(hashPart, signNarInfo({ ...info, url: `nar/${hashPart}.nar` }, key))
    return source
  }

  /** A node serving each of `sources`, and B (the shim's host) connected to them. */
  async function peers (...sources: MemorySource[]): Promise<{ b: PeerixNode, url: string, hashPart: string }> {
    const b = await nodes.peerix()
    for (const source of sources) await connect(b, source)
    sub = new Substituter({ client: new Libp2pPeerClient(b), trusted: new TrustedKeys([publicKeyOf(key)]), timeoutMs: 5000, stallMs: STALL_MS, narPeerGraceMs: 200 })
    shim = createShim({ substituter: sub, priority: 30 })
    const { port } = await listenShim(shim, '127.0.0.1', 0)
    return { b, url: `http://127.0.0.1:${port}`, hashPart: hashPartOf('small') }
  }

  async function connect (b: PeerixNode, source: MemorySource): Promise<void> {
    const known = b.services.peerixPeers.list().length
    const node = await nodes.peerix({ source })
    await b.dial(node.getMultiaddrs()[0])
    await eventually('the peer known to speak peerix', () => b.services.peerixPeers.list().length === known + 1)
  }

  /** Nix's two requests: the narinfo, then at once its NAR; how long the NAR's answer took. */
  async function nixAsks (url: string, hashPart: string): Promise<{ status: number, body: Buffer, narMs: number }> {
    const narinfo = await fetch(`${url}/${hashPart}.narinfo`)
    assert.equal(narinfo.status, 200)
    const info = parseNarInfo(await narinfo.text())
    return await narAsked(`${url}/${info.url}`)
  }

  async function narAsked (narUrl: string): Promise<{ status: number, body: Buffer, narMs: number }> {
    const started = performance.now()
    const res = await fetch(narUrl)
    const body = Buffer.from(await res.arrayBuffer())
    return { status: res.status, body, narMs: performance.now() - started }
  }

  for (const stallers of [1, 2]) {
    it(`answers 404 after the prefetch's stall${stallers > 1 ? 's' : ''} when the ${stallers > 1 ? `${stallers} peers that offered the NAR all stall` : 'one peer that offered the NAR stalls'}: no peer is waited for twice`, async () => {
      const sources = Array.from({ length: stallers }, () => holding(new StallingSource()))
      const { url, hashPart } = await peers(...sources)
      const { status, narMs } = await nixAsks(url, hashPart)
      assert.equal(status, 404)
      // Before: each staller's limit in the prefetch, then again in Nix's own download (2 × it).
      assert.ok(narMs < 1.5 * stallers * STALL_MS, `the NAR's 404 took ${narMs.toFixed(0)} ms, for ${stallers} stall limit(s) of ${STALL_MS} ms`)
      assert.ok(narMs >= 0.5 * stallers * STALL_MS, `the NAR's 404 took ${narMs.toFixed(0)} ms: the prefetch did not wait out the stalls`)
      assert.deepEqual(sources.map(s => s.narAsks), sources.map(() => 1), 'each staller asked for the NAR once')
    })
  }

  it('still takes the NAR from an honest peer that offered it too, after one stall', async () => {
    // The staller answers the narinfo first, so it is asked for the NAR first.
    const staller = holding(new StallingSource())
    const honest = holding(new PlainSource(300))
    const { url, hashPart } = await peers(staller, honest)
    const { status, body, narMs } = await nixAsks(url, hashPart)
    assert.equal(status, 200)
    assert.ok(body.equals(small))
    assert.ok(narMs < 1.5 * STALL_MS, `the NAR took ${narMs.toFixed(0)} ms`)
    assert.deepEqual([staller.narAsks, honest.narAsks], [1, 1])
  })

  it('takes the NAR from an honest peer that came after the prefetch stalled, without asking the staller again', async () => {
    const staller = holding(new StallingSource())
    const { b, url, hashPart } = await peers(staller)
    const narinfo = await fetch(`${url}/${hashPart}.narinfo`)
    assert.equal(narinfo.status, 200)
    const narUrl = `${url}/${parseNarInfo(await narinfo.text()).url}`
    await eventually('the prefetch to give up on the staller', () => sub?.counters.narFailed === 1, 5 * STALL_MS)
    const honest = holding(new PlainSource())
    await connect(b, honest)
    const { status, body, narMs } = await narAsked(narUrl)
    assert.equal(status, 200)
    assert.ok(body.equals(small))
    assert.ok(narMs < 0.5 * STALL_MS, `the NAR took ${narMs.toFixed(0)} ms: the staller was waited for again`)
    assert.deepEqual([staller.narAsks, honest.narAsks], [1, 1])
  })
})
