/**
 * /peerix/index/1 between real libp2p nodes: summaries exchanged after identify, kept current
 * by deltas, one view per audience, dropped on disconnect, and peers without a summary (older
 * peerix, a store too large, a peer that sends garbage) asked as before.
 */
import '../../src/polyfill.js'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { identify } from '@libp2p/identify'
import { toNix32 } from '../../src/nix/nix32.js'
import { UPDATE_PAUSE_FACTOR } from '../../src/p2p/index/constants.js'
import { peerIndex, INDEX_PROTOCOL, type PeerIndex, type PeerIndexInit } from '../../src/p2p/index/index.js'
import { encodeKeySet } from '../../src/p2p/index/golomb.js'
import { IndexUpdate } from '../../src/p2p/index/pb/message.js'
import { encodeFrame } from '../../src/p2p/wire/frame.js'
import { StoreSummary, type StoreSummaryOptions } from '../../src/store/summary.js'
import { summaryKey, toKeySet } from '../../src/store/summary-keys.js'
import { MemoryDb } from './memory-db.js'
import { eventually, LogLines, loopbackNode } from './node-helpers.js'
import type { Libp2p } from '@libp2p/interface'

type Node = Libp2p<{ index: PeerIndex }>


const absent = (): string => toNix32(randomBytes(20))

describe('/peerix/index/1 between libp2p nodes', function () {
  this.timeout(60_000)
  const running: Node[] = []

  afterEach(async () => {
    await Promise.all(running.splice(0).map(async n => { await n.stop() }))
  })

  async function node (init: PeerIndexInit = {}): Promise<Node> {
    const n = await loopbackNode({ identify: identify(), index: peerIndex({ resubscribeMinMs: 100, resubscribeMaxMs: 400, ...init }) })
    running.push(n)
    return n
  }

  async function summaryOver (db: MemoryDb, opts: Partial<StoreSummaryOptions> = {}): Promise<StoreSummary> {
    const summary = new StoreSummary({ db, ...opts })
    await summary.poll()
    return summary
  }

  const versionOf = (from: Node, of: Node): number | undefined => from.services.index.summaryOf(of.peerId.toString())?.version

  it('asks no peer for its summary when told not to (--no-index), and still serves its own', async () => {
    const db = new MemoryDb()
    db.add('one')
    const a = await node({ summary: await summaryOver(db), subscribe: false })
    const b = await node({ summary: await summaryOver(new MemoryDb()) })
    await b.dial(a.getMultiaddrs()[0])
    await eventually('B has A\'s summary', () => b.services.index.summaryOf(a.peerId.toString()) !== undefined)
    await new Promise(resolve => setTimeout(resolve, 300))
    assert.equal(a.services.index.summaryOf(b.peerId.toString()), undefined, 'A did not subscribe to B')
  })

  it('sends the summary after identify and keeps it current: additions by poll, removals by resync', async () => {
    const db = new MemoryDb()
    const p1 = db.add('one')
    const p2 = db.add('two')
    const summary = await summaryOver(db)
    const a = await node({ summary })
    const b = await node()
    await b.dial(a.getMultiaddrs()[0])
    const peerA = a.peerId.toString()

    await eventually('B has A\'s summary', () => b.services.index.summaryOf(peerA) !== undefined)
    assert.deepEqual(b.services.index.summaryOf(peerA), { version: 1, keys: 2 })
    assert.ok(b.services.index.mayHave(peerA, p1))
    assert.ok(b.services.index.mayHave(peerA, p2))
    assert.ok(!b.services.index.mayHave(peerA, absent()), 'a miss needs no question')
    assert.equal(a.services.index.summaryOf(b.peerId.toString()), undefined, 'B serves no summary: A would ask it')
    assert.ok(a.services.index.mayHave(b.peerId.toString(), absent()))
    // one hash part asked of every peer, as a miss does: the same answers
    const miss = absent()
    assert.deepEqual([peerA, 'a peer without a summary'].map(b.services.index.holders(miss)), [false, true])
    assert.deepEqual([peerA].map(b.services.index.holders(p1)), [true])
    assert.throws(() => b.services.index.holders('not-a-hash-part'), /hash/)

    const p3 = db.add('three')
    await summary.poll()
    await eventually('the delta', () => versionOf(b, a) === 2)
    assert.ok(b.services.index.mayHave(peerA, p3))

    db.remove(p1)
    await summary.poll()
    assert.ok(b.services.index.mayHave(peerA, p1), 'a poll only adds')
    await summary.resync()
    await eventually('the resync delta', () => versionOf(b, a) === 3)
    assert.ok(!b.services.index.mayHave(peerA, p1))
    assert.deepEqual(b.services.index.summaryOf(peerA), { version: 3, keys: 2 })
  })

  it('gives each peer the view the policy allows it', async () => {
    const db = new MemoryDb()
    const p = db.add('local-only')
    const trusted = await node()
    const trustedId = trusted.peerId.toString()
    // the policy stands in for ServingPolicy: only the trusted peer may have anything
    const summary = await summaryOver(db, { policy: { decide: (_info, peer) => peer === trustedId ? { allowed: true } : { allowed: false, reason: 'no' } }, trustedPeers: [trustedId] })
    const a = await node({ summary })
    const stranger = await node()
    await trusted.dial(a.getMultiaddrs()[0])
    await stranger.dial(a.getMultiaddrs()[0])
    const peerA = a.peerId.toString()
    await eventually('both have a summary', () => trusted.services.index.summaryOf(peerA) !== undefined && stranger.services.index.summaryOf(peerA) !== undefined)
    assert.ok(trusted.services.index.mayHave(peerA, p))
    assert.ok(!stranger.services.index.mayHave(peerA, p), 'the stranger learns nothing of a path it would be refused')
    assert.equal(stranger.services.index.summaryOf(peerA)?.keys, 0)
  })

  it('forgets a peer\'s summary when it disconnects, and a node without a summary does not offer the protocol', async () => {
    const db = new MemoryDb()
    db.add('x')
    const a = await node({ summary: await summaryOver(db) })
    const b = await node()
    await b.dial(a.getMultiaddrs()[0])
    const peerA = a.peerId.toString()
    await eventually('B has A\'s summary', () => b.services.index.summaryOf(peerA) !== undefined)
    assert.ok((await b.peerStore.get(a.peerId)).protocols.includes(INDEX_PROTOCOL))
    // B's own protocol list, not A's peer store: libp2p adds a protocol there for every
    // stream B opens to A, and B opens /peerix/index/1 to subscribe to A's summary
    assert.ok(!b.getProtocols().includes(INDEX_PROTOCOL), 'B has no summary and does not offer one')
    await b.hangUp(a.peerId)
    await eventually('the summary is gone', () => b.services.index.summaryOf(peerA) === undefined)
    assert.ok(b.services.index.mayHave(peerA, absent()))
  })

  it('offers no summary over the size bound: the peer is asked directly', async () => {
    const db = new MemoryDb()
    for (let i = 0; i < 5; i++) db.add(`p${i}`)
    const logs = new LogLines()
    const a = await node({ summary: await summaryOver(db), maxKeys: 4 })
    const b = await node({ log: logs.logger })
    await b.dial(a.getMultiaddrs()[0])
    await eventually('B is told there is none', () => logs.matching(/has no summary to offer/).length > 0)
    assert.equal(b.services.index.summaryOf(a.peerId.toString()), undefined)
    assert.ok(b.services.index.mayHave(a.peerId.toString(), absent()))
  })

  it('drops a summary that breaks the protocol and subscribes again', async () => {
    const a = await node()
    const logs = new LogLines()
    const b = await node({ log: logs.logger })
    let subscriptions = 0
    let sawFull = (): void => {}
    const fullSeen = new Promise<void>(resolve => { sawFull = resolve })
    // A hand-written responder: a FULL summary, then (once B is seen to hold it) a delta that skips a version.
    await a.handle(INDEX_PROTOCOL, async (stream) => {
      subscriptions++
      stream.send(encodeFrame(IndexUpdate.encode({ kind: IndexUpdate.Kind.FULL, version: 1, added: encodeKeySet(toKeySet([summaryKey(absent())])) })))
      await fullSeen
      stream.send(encodeFrame(IndexUpdate.encode({ kind: IndexUpdate.Kind.DELTA, version: 3, added: encodeKeySet(new Uint32Array()) })))
    })
    await b.dial(a.getMultiaddrs()[0])
    const peerA = a.peerId.toString()
    await eventually('the full summary', () => b.services.index.summaryOf(peerA) !== undefined)
    sawFull()
    await eventually('the bad delta is refused', () => logs.matching(/delta to version 3 does not follow version 1/).length > 0)
    assert.equal(b.services.index.summaryOf(peerA), undefined, 'no summary after a broken one')
    assert.ok(b.services.index.mayHave(peerA, absent()))
    await eventually('a new subscription', () => subscriptions >= 2)
  })

  it('reads a peer that pushes full summaries back to back no faster than their cost allows', async () => {
    const a = await node()
    const logs = new LogLines()
    // every update counts as 20 ms of event loop, whatever it really took
    const cost = 20
    const b = await node({ log: logs.logger, updateCost: work => { work(); return cost } })
    await a.handle(INDEX_PROTOCOL, async (stream) => {
      for (let version = 1; version <= 20; version++) {
        stream.send(encodeFrame(IndexUpdate.encode({ kind: IndexUpdate.Kind.FULL, version, added: encodeKeySet(toKeySet([summaryKey(absent())])) })))
      }
    })
    await b.dial(a.getMultiaddrs()[0])
    await eventually('four updates applied', () => logs.matching(/full v4:/).length > 0)
    const applied = logs.matching(/full v\d+:/).map(l => l.at)
    assert.ok(applied.length < 20, `all ${applied.length} updates read at once`)
    for (let i = 1; i < applied.length; i++) {
      // a timer counts from the start of the event loop's turn, a little before the log line
      assert.ok(applied[i] - applied[i - 1] >= cost * UPDATE_PAUSE_FACTOR - 20, `update ${i + 1} read ${applied[i] - applied[i - 1]} ms after the one before`)
    }
  })
})
