/**
 * Small NARs fetched with their narinfo (src/substituter/nar-prefetch.ts): the prefetcher's
 * limits with a fetch function of the test's own, then the substituter between real libp2p
 * nodes, where a small NAR that came in the narinfo's answer, or was prefetched after it,
 * reaches Nix after the peer that had it is gone.
 */
import '../../src/polyfill.js'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { signNarInfo } from '../../src/nix/narinfo-signing.js'
import { generateSecretKey, publicKeyOf, TrustedKeys } from '../../src/nix/signing.js'
import { Libp2pPeerClient } from '../../src/p2p/libp2p-peer-client.js'
import { NarPrefetcher, PREFETCH_MAX_NAR_BYTES } from '../../src/substituter/nar-prefetch.js'
import { Substituter } from '../../src/substituter/substituter.js'
import { MemorySource, Nodes, eventually } from '../p2p/node-helpers.js'
import type { PeerixNode } from '../../src/p2p/node.js'

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
