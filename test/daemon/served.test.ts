/**
 * What the daemon counts as served to peers (ServedLog's totals, PeerTraffic's per peer),
 * through the real /peerix/narinfo/1 and /peerix/nar/1 services on loopback nodes: served
 * means delivered. A NAR counts once its last byte went out, a NAR resumed from an offset adds
 * its bytes but is no NAR served, one cut off adds only the bytes that went out, and a narinfo
 * (with the NAR sent along) counts only once its answer went out.
 */
import '../../src/polyfill.js'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { ServedLog } from '../../src/daemon/served.js'
import { PeerTraffic } from '../../src/daemon/peer-traffic.js'
import { nar, NAR_PROTOCOL, type NarService } from '../../src/p2p/nar/index.js'
import { narinfo, NARINFO_PROTOCOL, type NarinfoService } from '../../src/p2p/narinfo/index.js'
import { NarRequest, NarResponse } from '../../src/p2p/nar/pb/message.js'
import { encodeFrame } from '../../src/p2p/wire/frame.js'
import { ending, eventually, hashPartOf, LogLines, loopbackNode, MemorySource, streamsOf } from '../p2p/node-helpers.js'
import type { NarInfoOptions, PathSource, ServedNarInfo } from '../../src/store/source.js'
import type { Libp2p } from '@libp2p/interface'

type Node = Libp2p<{ narinfo: NarinfoService, nar: NarService }>

const KiB = 1024
const MiB = 1024 * KiB

/** The store, its narinfo answers held back while `held` is set. */
class HeldSource implements PathSource {
  held: Promise<void> | undefined
  asked = 0
  constructor (readonly store: MemorySource) {}

  async narInfo (hashPart: string, peer: string, options?: NarInfoOptions): Promise<ServedNarInfo> {
    this.asked++
    await this.held
    return await this.store.narInfo(hashPart, peer, options)
  }

  async nar (hashPart: string, narHash: string, offset: number): ReturnType<PathSource['nar']> {
    return await this.store.nar(hashPart, narHash, offset)
  }
}

describe('what the daemon counts as served to peers', function () {
  this.timeout(30_000)
  const nodes: Libp2p[] = []
  let store: MemorySource
  let held: HeldSource
  let traffic: PeerTraffic
  let served: ServedLog
  let lines: LogLines
  let server: Node
  let client: Node

  async function node (source: PathSource, sendStallTimeout?: number): Promise<Node> {
    const started = await loopbackNode({ narinfo: narinfo({ source }), nar: nar({ source, sendStallTimeout }) })
    nodes.push(started)
    return started
  }

  beforeEach(async () => {
    // A store yields a NAR in pieces (the NAR writer's 256 KiB chunks; smaller here).
    store = new MemorySource(64 * KiB)
    held = new HeldSource(store)
    traffic = new PeerTraffic(held)
    lines = new LogLines()
    served = new ServedLog(traffic, lines.logger)
    server = await node(served, 500)
    client = await node(new MemorySource())
    await client.dial(server.getMultiaddrs()[0])
  })

  afterEach(async () => {
    await Promise.all(nodes.splice(0).map(async (n) => { await n.stop() }))
  })

  async function fetchAll (hashPart: string, narHash: string, offset: number, acceptZstd = false): Promise<number> {
    const answer = await client.services.nar.fetch(server.peerId, hashPart, narHash, offset, { acceptZstd })
    assert.equal(answer.status, 'found', JSON.stringify(answer))
    let bytes = 0
    for await (const chunk of (answer as { value: AsyncIterable<Uint8Array> }).value) bytes += chunk.byteLength
    return bytes
  }

  it('counts a NAR streamed whole, raw or as zstd blocks, and one resumed from an offset as its bytes only', async () => {
    const bytes = randomBytes(3 * MiB + 17)
    const { hashPart, narHash } = store.add('whole', bytes)
    assert.equal(await fetchAll(hashPart, narHash, 0), bytes.length)
    // The server counts once its last write left: a moment after the requester has it all.
    await eventually('the NAR\'s bytes counted', () => served.counters.narBytesOut === bytes.length)
    assert.equal(served.counters.narsServed, 1)

    // A peer that got the first MiB elsewhere (or from us, before a failover) asks for the rest.
    assert.equal(await fetchAll(hashPart, narHash, MiB), bytes.length - MiB)
    await eventually('the rest\'s bytes counted', () => served.counters.narBytesOut === 2 * bytes.length - MiB)
    assert.equal(served.counters.narsServed, 1, 'a NAR resumed from an offset is no NAR served')

    // NAR bytes, not the compressed ones on the wire.
    const zeros = new Uint8Array(2 * MiB)
    const compressible = store.add('zeros', zeros)
    assert.equal(await fetchAll(compressible.hashPart, compressible.narHash, 0, true), zeros.length)
    await eventually('the zstd NAR\'s bytes counted', () => served.counters.narBytesOut === 2 * bytes.length - MiB + zeros.length)
    assert.equal(served.counters.narsServed, 2)
    assert.equal(traffic.servedTo(client.peerId.toString()).narBytes, served.counters.narBytesOut)
  })

  it('counts a NAR cut off midway as the bytes that went out, not as served', async () => {
    const bytes = randomBytes(16 * MiB)
    const { hashPart, narHash } = store.add('stalled', bytes)
    // A requester that asks and never reads: its window fills, and the server gives up on it.
    const stream = await client.dialProtocol(server.peerId, NAR_PROTOCOL)
    stream.pause()
    stream.maxReadBufferLength = 64 * MiB
    stream.send(encodeFrame(NarRequest.encode({ hashPart, narHash, offset: 0n, acceptZstd: false })))
    assert.equal(await ending(stream, 10_000), 'reset')
    const header = encodeFrame(NarResponse.encode({ status: NarResponse.Status.FOUND, length: BigInt(bytes.length), encoding: NarResponse.Encoding.IDENTITY }))
    const received = stream.readBufferLength - header.byteLength
    assert.ok(received > 0 && received < bytes.length, `received ${received} bytes`)
    await eventually('the cut counted', () => served.counters.narBytesOut > 0)
    assert.equal(served.counters.narsServed, 0)
    assert.equal(served.counters.narBytesOut, received, 'the bytes counted are the bytes that went out')
    assert.equal(traffic.servedTo(client.peerId.toString()).narBytes, served.counters.narBytesOut)
    // Its "serving" line is at info; so is the line saying it stopped short.
    assert.equal(lines.matching(new RegExp(`info serving ${hashPart} to .* stopped after ${received} of ${bytes.length} bytes`)).length, 1, lines.lines.map(l => l.line).join('\n'))
  })

  it('counts a narinfo and the NAR sent with it once the answer went out, not when it could not', async () => {
    const bytes = randomBytes(10 * KiB)
    const { hashPart } = store.add('small', bytes)
    const peer = client.peerId.toString()

    // The requester gives up before the store answers: the answer has nowhere to go.
    let release = (): void => {}
    held.held = new Promise(resolve => { release = resolve })
    const gaveUp = new AbortController()
    const query = client.services.narinfo.query(server.peerId, hashPart, { maxNarBytes: 64 * KiB, signal: gaveUp.signal })
    await eventually('the store asked', () => held.asked === 1)
    gaveUp.abort()
    assert.equal((await query).status, 'error')
    await eventually('the server\'s stream reset', () => streamsOf(server, client.peerId, NARINFO_PROTOCOL).every(s => s.status !== 'open'))
    held.held = undefined
    release()

    // The next query goes out, after the first answer failed to.
    const answer = await client.services.narinfo.query(server.peerId, hashPart, { maxNarBytes: 64 * KiB })
    assert.equal(answer.status, 'found', JSON.stringify(answer))
    assert.equal((answer as { nar?: Uint8Array }).nar?.byteLength, bytes.length)
    await eventually('the answer counted', () => served.counters.narInfosServed >= 1)
    assert.equal(held.asked, 2)
    assert.deepEqual(
      { narInfos: served.counters.narInfosServed, nars: served.counters.narsServed, bytes: served.counters.narBytesOut },
      { narInfos: 1, nars: 1, bytes: bytes.length })
    assert.deepEqual(traffic.servedTo(peer), { narInfos: 1, refusals: 0, narBytes: bytes.length })
  })
})

describe('PeerTraffic', () => {
  it('keeps the figures of the most recently served peers only, up to its bound', async () => {
    // Any host on the LAN can connect with a new peer ID each time: a figure per peer ID ever
    // seen grew without end.
    const store = new MemorySource()
    store.add('path', randomBytes(100))
    const traffic = new PeerTraffic(store, 3)
    const ask = async (peer: string): Promise<void> => {
      const answer = await traffic.narInfo(hashPartOf('path'), peer)
      if (answer.status === 'found') answer.sent?.(false)
    }
    for (const peer of ['p1', 'p2', 'p3']) await ask(peer)
    await ask('p1') // p2 is now the least recently served
    await ask('p4')
    assert.equal(traffic.servedTo('p2').narInfos, 0, 'the least recently served peer was dropped')
    assert.equal(traffic.servedTo('p1').narInfos, 2)
    assert.equal(traffic.servedTo('p3').narInfos, 1)
    assert.equal(traffic.servedTo('p4').narInfos, 1)
  })
})
