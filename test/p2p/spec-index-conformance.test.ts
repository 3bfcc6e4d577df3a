/**
 * protocols/peerix-index-1.md against a real peerix node, both ways: a subscriber written from
 * the spec text alone (test/p2p/spec-wire.ts: hand-written protobuf, frames, summary keys and
 * Golomb–Rice key sets) reads a peerix publisher's summary and its deltas, and a publisher
 * written the same way feeds a peerix subscriber. The spec's coding rules are held against
 * peerix's codec: the same bits for the same keys, the same keys or a refusal for any data.
 */
import '../../src/polyfill.js'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { identify } from '@libp2p/identify'
import { toNix32 } from '../../src/nix/nix32.js'
import { peerIndex, type PeerIndex } from '../../src/p2p/index/index.js'
import { decodeKeySet, encodeKeySet, riceBitsFor } from '../../src/p2p/index/golomb.js'
import { StoreSummary } from '../../src/store/summary.js'
import { summaryKey } from '../../src/store/summary-keys.js'
import { MemoryDb } from './memory-db.js'
import { eventually, loopbackNode, Nodes } from './node-helpers.js'
import {
  bytesField, bytesOf, frame, has, parseMessage, RawReader, specDecodeKeys, specEncodeKeys, specRiceBits,
  specSummaryKey, varintField, varintOf
} from './spec-wire.js'
import type { Libp2p, Stream } from '@libp2p/interface'

const INDEX = '/peerix/index/1'
const REQUEST_MAX = 256
const UPDATE_MAX = 4 * 1024 * 1024
const FULL = 1n
const DELTA = 2n
const UNKNOWN = 3n


/** An IndexUpdate as the spec reads it. */
interface Update {
  kind: bigint
  version: bigint
  added?: number[]
  removed?: number[]
}

/** Parses an IndexUpdate, decoding its key sets by the spec and checking the sender's Rice parameter. */
function parseUpdate (body: Buffer): Update {
  const fields = parseMessage(body)
  const keySet = (field: number): number[] | undefined => {
    if (!has(fields, field)) return undefined
    const set = parseMessage(bytesOf(fields, field))
    const count = Number(varintOf(set, 1))
    const riceBits = Number(varintOf(set, 2))
    assert.equal(riceBits, specRiceBits(count), `the sender picks rice_bits = floor(log2(2^32 / ${count}))`)
    return specDecodeKeys(count, riceBits, bytesOf(set, 3))
  }
  return { kind: varintOf(fields, 1), version: varintOf(fields, 2), added: keySet(3), removed: keySet(4) }
}

/** A KeySet message of `keys` as the spec codes it. */
function keySetMessage (keys: number[]): Buffer {
  const sorted = [...new Set(keys)].sort((a, b) => a - b)
  const riceBits = specRiceBits(sorted.length)
  const data = specEncodeKeys(sorted, riceBits)
  return Buffer.concat([
    ...(sorted.length > 0 ? [varintField(1, sorted.length)] : []),
    ...(riceBits > 0 ? [varintField(2, riceBits)] : []),
    ...(data.length > 0 ? [bytesField(3, data)] : [])
  ])
}

function updateMessage (kind: bigint, version: number, added?: number[], removed?: number[]): Buffer {
  return frame(Buffer.concat([
    varintField(1, kind),
    ...(version > 0 ? [varintField(2, version)] : []),
    ...(added !== undefined ? [bytesField(3, keySetMessage(added))] : []),
    ...(removed !== undefined ? [bytesField(4, keySetMessage(removed))] : [])
  ]))
}

const sortedKeys = (hashParts: string[]): number[] => [...new Set(hashParts.map(specSummaryKey))].sort((a, b) => a - b)

describe('/peerix/index/1 against a peerix node: a subscriber and a publisher written from the spec', function () {
  this.timeout(60_000)
  const nodes = new Nodes()
  const running: Libp2p[] = []

  afterEach(async () => {
    await Promise.all(running.splice(0).map(async n => { await n.stop() }))
    await nodes.stopAll()
  })

  async function indexNode (summary?: StoreSummary): Promise<Libp2p<{ index: PeerIndex }>> {
    const node = await loopbackNode({ identify: identify(), index: peerIndex({ summary, resubscribeMinMs: 100, resubscribeMaxMs: 400 }) })
    running.push(node)
    return node
  }

  it('decodes summary keys as the spec says: the hash part as Nix decodes it, bytes 0–3 big-endian', () => {
    // `nix-hash --type sha1 --to-base16 p4pclmv1gyja5kzc26npqpia1qqxrf0l` (Nix 2.8): 14b8dc31…
    assert.equal(specSummaryKey('p4pclmv1gyja5kzc26npqpia1qqxrf0l'), 0x14b8dc31)
    assert.equal(summaryKey('p4pclmv1gyja5kzc26npqpia1qqxrf0l'), 0x14b8dc31)
    for (let i = 0; i < 2000; i++) {
      const hashPart = toNix32(randomBytes(20))
      assert.equal(summaryKey(hashPart), specSummaryKey(hashPart), hashPart)
    }
  })

  it('picks the spec\'s Rice parameter and codes key sets bit for bit as the spec describes', () => {
    const counts = [1, 2, 3, 4, 5, 7, 1000, 100_000, 999_999, 1_000_000]
    for (let m = 0; m <= 20; m++) counts.push(2 ** m - 1, 2 ** m, 2 ** m + 1)
    for (const count of counts.filter(c => c > 0)) assert.equal(riceBitsFor(count), specRiceBits(count), `count ${count}`)
    assert.equal(riceBitsFor(0), 0)

    for (let round = 0; round < 300; round++) {
      const count = round % 3 === 0 ? Math.floor(Math.random() * 3) : 1 + Math.floor(Math.random() * 400)
      const keys = [...new Set(Array.from({ length: count }, () => randomBytes(4).readUInt32BE(0)))].sort((a, b) => a - b)
      if (round % 10 === 0) keys.unshift(0) // a first key of 0 is a zero gap, allowed for the first
      const distinct = [...new Set(keys)]
      // a Rice parameter below the sender's makes long unary runs: keep those keys small
      const riceBits = round % 5 === 0 ? Math.max(0, specRiceBits(distinct.length) - 1 - Math.floor(Math.random() * 3)) : specRiceBits(distinct.length)
      const encoded = encodeKeySet(Uint32Array.from(distinct), riceBits)
      assert.deepEqual(Buffer.from(encoded.data), specEncodeKeys(distinct, riceBits), `round ${round}, rice_bits ${riceBits}`)
      assert.deepEqual(specDecodeKeys(distinct.length, riceBits, encoded.data), distinct)
    }
  })

  it('accepts and rejects exactly the key sets the spec says a decoder accepts and rejects', () => {
    let rejected = 0
    for (let round = 0; round < 3000; round++) {
      const count = Math.floor(Math.random() * 12)
      const riceBits = round % 4 === 0 ? Math.floor(Math.random() * 32) : specRiceBits(Math.max(1, count))
      let data: Buffer
      if (round % 3 === 0) {
        data = randomBytes(Math.floor(Math.random() * 40))
      } else {
        // keys below 2^(rice_bits + 10): no gap needs more than 1,024 one-bits
        const bound = 2 ** Math.min(32, riceBits + 10)
        const keys = [...new Set(Array.from({ length: count }, () => Math.floor(Math.random() * bound)))].sort((a, b) => a - b)
        data = specEncodeKeys(keys, riceBits)
        // one fault: a flipped bit, a byte more or less
        const fault = Math.floor(Math.random() * 4)
        if (fault === 1 && data.length > 0) data[Math.floor(Math.random() * data.length)] ^= 1 << Math.floor(Math.random() * 8)
        if (fault === 2) data = Buffer.concat([data, Buffer.of(Math.random() < 0.5 ? 0 : 0x80)])
        if (fault === 3) data = data.subarray(0, Math.max(0, data.length - 1))
      }
      let spec: number[] | string
      let peerix: number[] | string
      try { spec = specDecodeKeys(count, riceBits, data) } catch { spec = 'rejected' }
      try { peerix = [...decodeKeySet({ count, riceBits, data: new Uint8Array(data) }, 1_000_000)] } catch { peerix = 'rejected' }
      assert.deepEqual(peerix, spec, `count ${count}, rice_bits ${riceBits}, data ${data.toString('hex')}`)
      if (spec === 'rejected') rejected++
    }
    assert.ok(rejected > 300, `only ${rejected} rejections: the faults are too mild`)
    // the bounds the spec names
    assert.throws(() => decodeKeySet({ count: 11, riceBits: 0, data: new Uint8Array(0) }, 10), /expected at most 10/)
    assert.throws(() => decodeKeySet({ count: 1, riceBits: 32, data: new Uint8Array(5) }, 10), /0 to 31/)
  })

  it('reads a peerix publisher: UNKNOWN before its first pass, then FULL, then DELTAs one version apart', async () => {
    const db = new MemoryDb()
    const first = [db.add('a'), db.add('b'), db.add('c')]
    const summary = new StoreSummary({ db })
    const publisher = await indexNode(summary)
    const subscriber = await nodes.plain()
    const stream: Stream = await subscriber.dialProtocol(publisher.getMultiaddrs()[0], INDEX)
    const reader = new RawReader(stream)
    stream.send(frame(Buffer.alloc(0)))
    await stream.close()

    assert.deepEqual(parseUpdate(await reader.frame(UPDATE_MAX)), { kind: UNKNOWN, version: 0n, added: undefined, removed: undefined })
    await summary.poll()
    const full = parseUpdate(await reader.frame(UPDATE_MAX))
    assert.equal(full.kind, FULL)
    assert.deepEqual(full.added, sortedKeys(first))

    const more = [db.add('d'), db.add('e')]
    await summary.poll()
    const delta = parseUpdate(await reader.frame(UPDATE_MAX))
    assert.equal(delta.kind, DELTA)
    assert.equal(delta.version, full.version + 1n)
    assert.deepEqual(delta.added, sortedKeys(more))
    assert.deepEqual(delta.removed ?? [], [])

    db.remove(first[1])
    await summary.resync()
    const removal = parseUpdate(await reader.frame(UPDATE_MAX))
    assert.equal(removal.kind, DELTA)
    assert.equal(removal.version, full.version + 2n)
    assert.deepEqual(removal.added ?? [], [])
    assert.deepEqual(removal.removed, sortedKeys([first[1]]))
    assert.ok(await reader.quietFor(100), 'one frame per change, nothing in between')
  })

  it('feeds a peerix subscriber: FULL and DELTAs by the spec are applied, a DELTA out of order drops the summary and it subscribes again', async () => {
    const held = Array.from({ length: 50 }, () => toNix32(randomBytes(20)))
    const later = toNix32(randomBytes(20))
    const never = toNix32(randomBytes(20))
    const publisher = await nodes.plain()
    let subscriptions = 0
    const sent: Array<(frame: Buffer) => void> = []
    await publisher.handle(INDEX, async (stream) => {
      subscriptions++
      const reader = new RawReader(stream)
      await reader.frame(REQUEST_MAX)
      sent.push((bytes) => { stream.send(bytes) })
      stream.send(updateMessage(FULL, 7, sortedKeys(held)))
    })
    const subscriber = await indexNode()
    await subscriber.dial(publisher.getMultiaddrs()[0])
    const peer = publisher.peerId.toString()
    const index = subscriber.services.index

    await eventually('the full summary', () => index.summaryOf(peer) !== undefined)
    assert.deepEqual(index.summaryOf(peer), { version: 7, keys: 50 })
    assert.ok(held.every(h => index.mayHave(peer, h)))
    assert.ok(!index.mayHave(peer, never))

    sent[0](updateMessage(DELTA, 8, sortedKeys([later]), sortedKeys([held[0]])))
    await eventually('the delta', () => index.summaryOf(peer)?.version === 8)
    assert.ok(index.mayHave(peer, later))
    assert.ok(!index.mayHave(peer, held[0]))
    assert.equal(index.summaryOf(peer)?.keys, 50)

    sent[0](updateMessage(UNKNOWN, 0))
    await eventually('UNKNOWN: no summary, ask directly', () => index.summaryOf(peer) === undefined)
    assert.ok(index.mayHave(peer, never))

    sent[0](updateMessage(FULL, 1, []))
    await eventually('an empty FULL', () => index.summaryOf(peer)?.version === 1)
    assert.ok(!index.mayHave(peer, held[1]), 'an empty summary: ask no one')

    sent[0](updateMessage(DELTA, 3, [specSummaryKey(never)]))
    await eventually('the broken delta drops the summary', () => index.summaryOf(peer) === undefined)
    await eventually('a new subscription', () => subscriptions === 2 && index.summaryOf(peer)?.version === 7)
  })
})
