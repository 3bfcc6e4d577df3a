import '../../src/polyfill.js'
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { formatSha256Nix32 } from '../../src/nix/hash.js'
import { formatNarInfo } from '../../src/nix/narinfo.js'
import { toNix32 } from '../../src/nix/nix32.js'
import { narinfo, NARINFO_PROTOCOL } from '../../src/p2p/narinfo/index.js'
import { NarinfoRequest, NarinfoResponse } from '../../src/p2p/narinfo/pb/message.js'
import { encodeFrame } from '../../src/p2p/wire/frame.js'
import { StreamReader } from '../../src/p2p/wire/stream-reader.js'
import { ending, eventually, loopbackNode, MemorySource, streamsOf } from './node-helpers.js'
import type { NarinfoService, NarinfoServiceInit } from '../../src/p2p/narinfo/index.js'
import type { NarInfo } from '../../src/nix/narinfo.js'
import type { Libp2p, PeerId, Stream } from '@libp2p/interface'

type Node = Libp2p<{ narinfo: NarinfoService }>

function hashPartOf (label: string): string {
  return toNix32(createHash('sha256').update(label).digest().subarray(0, 20))
}

function infoFor (label: string): NarInfo {
  const hashPart = hashPartOf(label)
  return {
    storePath: `/nix/store/${hashPart}-${label}`,
    url: `nar/${hashPart}.nar`,
    compression: 'none',
    narHash: formatSha256Nix32(createHash('sha256').update(`nar of ${label}`).digest()),
    narSize: 1234,
    references: [],
    sigs: []
  }
}

/** The narinfo streams `node` has open to `peer` right now. */
function narinfoStreams (node: Libp2p, peer: PeerId): Stream[] {
  return streamsOf(node, peer, NARINFO_PROTOCOL)
}

describe('/peerix/narinfo/1 r1: several queries per stream', function () {
  this.timeout(20_000)
  const nodes: Libp2p[] = []
  let source: MemorySource
  let server: Node
  let client: Node

  async function started (init: Partial<NarinfoServiceInit> = {}): Promise<Node> {
    const node = await loopbackNode({ narinfo: narinfo({ source: new MemorySource(), ...init }) })
    nodes.push(node)
    return node
  }

  /**
   * A node whose narinfo handler the test writes; `answer` gets each request's hash part and
   * the stream, and says what to send. Counts the streams it was given.
   */
  async function responder (answer: (hashPart: string, stream: Stream, exchange: number) => Promise<'next' | 'stop'>): Promise<{ node: Libp2p, streams: () => number }> {
    const node = await loopbackNode()
    nodes.push(node)
    let streams = 0
    await node.handle(NARINFO_PROTOCOL, async (stream) => {
      streams++
      const reader = new StreamReader(stream)
      try {
        for (let exchange = 0; ; exchange++) {
          const { hashPart } = NarinfoRequest.decode(await reader.readFrame(256, { signal: AbortSignal.timeout(5_000) }))
          if (await answer(hashPart, stream, exchange) === 'stop') return
        }
      } catch (err) {
        stream.abort(err as Error)
      } finally {
        reader.dispose()
      }
    })
    await client.dial(node.getMultiaddrs()[0])
    return { node, streams: () => streams }
  }

  const absent = encodeFrame(NarinfoResponse.encode({ status: NarinfoResponse.Status.ABSENT }))

  beforeEach(async () => {
    source = new MemorySource()
    for (const label of ['a', 'b', 'c']) source.infos.set(hashPartOf(label), infoFor(label))
    server = await started({ source })
    client = await started()
    await client.dial(server.getMultiaddrs()[0])
  })

  afterEach(async () => {
    await Promise.all(nodes.splice(0).map(async (node) => { await node.stop() }))
  })

  it('asks queries one after another on one stream, each with its right answer', async () => {
    const seen = new Set<string>()
    for (const label of ['a', 'b', 'nothing', 'c', 'a']) {
      const answer = await client.services.narinfo.query(server.peerId, hashPartOf(label))
      if (label === 'nothing') assert.deepEqual(answer, { status: 'absent' })
      else assert.deepEqual(answer, { status: 'found', value: formatNarInfo(infoFor(label)) })
      for (const stream of narinfoStreams(client, server.peerId)) seen.add(stream.id)
    }
    assert.equal(seen.size, 1, 'one stream carried all five queries')
    assert.equal(narinfoStreams(client, server.peerId).length, 1, 'and it stays open for the next')
  })

  it('opens more streams for concurrent queries, and reuses them afterwards', async () => {
    const labels = ['a', 'b', 'c', 'x', 'y', 'z']
    const ask = async (): Promise<void> => {
      const answers = await Promise.all(labels.map(async label => await client.services.narinfo.query(server.peerId, hashPartOf(label))))
      answers.forEach((answer, i) => {
        if (i < 3) assert.deepEqual(answer, { status: 'found', value: formatNarInfo(infoFor(labels[i])) })
        else assert.deepEqual(answer, { status: 'absent' })
      })
    }
    await ask()
    const first = new Set(narinfoStreams(client, server.peerId).map(s => s.id))
    assert.ok(first.size > 1 && first.size <= labels.length, `${first.size} streams for ${labels.length} concurrent queries`)
    await ask()
    const second = new Set(narinfoStreams(client, server.peerId).map(s => s.id))
    assert.ok([...second].every(id => first.has(id)), 'the second round opened no new stream')
  })

  it('answers an r0 requester (one request, then close write) and closes the stream cleanly', async () => {
    const stream = await client.dialProtocol(server.peerId, NARINFO_PROTOCOL)
    const reader = new StreamReader(stream)
    try {
      stream.send(encodeFrame(NarinfoRequest.encode({ hashPart: hashPartOf('b') })))
      await stream.close()
      const response = NarinfoResponse.decode(await reader.readFrame(64 * 1024, { idleTimeout: 5_000 }))
      assert.equal(response.status, NarinfoResponse.Status.FOUND)
      assert.equal(response.narinfo, formatNarInfo(infoFor('b')))
      assert.equal(await ending(stream, 5_000), 'closed')
    } finally {
      reader.dispose()
    }
  })

  it('asks again on a fresh stream when the responder reset the reused one before answering', async () => {
    const { node, streams } = await responder(async (_hashPart, stream, exchange) => {
      if (exchange > 0) throw new Error('one answer per stream, and a reset for the next request')
      stream.send(absent)
      return 'next'
    })
    for (let i = 0; i < 3; i++) {
      assert.deepEqual(await client.services.narinfo.query(node.peerId, hashPartOf('x')), { status: 'absent' }, `query ${i}`)
    }
    assert.equal(streams(), 3)
  })

  it('asks again on a fresh stream when the responder closed the idle one (an r0 responder)', async () => {
    const { node, streams } = await responder(async (_hashPart, stream) => {
      stream.send(absent)
      await stream.close()
      return 'stop'
    })
    for (let i = 0; i < 3; i++) {
      assert.deepEqual(await client.services.narinfo.query(node.peerId, hashPartOf('x')), { status: 'absent' }, `query ${i}`)
    }
    assert.equal(streams(), 3)
  })

  it('still answers after the responder reset an idle pooled stream', async () => {
    assert.equal((await client.services.narinfo.query(server.peerId, hashPartOf('a'))).status, 'found')
    const [served] = narinfoStreams(server, client.peerId)
    served.abort(new Error('the test resets it'))
    assert.equal((await client.services.narinfo.query(server.peerId, hashPartOf('b'))).status, 'found')
  })

  it('has the responder close a stream cleanly when no next request comes within its keep-alive', async () => {
    const brief = await started({ source, keepAlive: 300 })
    await client.dial(brief.getMultiaddrs()[0])
    assert.equal((await client.services.narinfo.query(brief.peerId, hashPartOf('a'))).status, 'found')
    const [pooled] = narinfoStreams(client, brief.peerId)
    const start = Date.now()
    assert.equal(await ending(pooled, 5_000), 'closed')
    assert.ok(Date.now() - start >= 200, `closed after ${Date.now() - start} ms, keep-alive 300 ms`)
    assert.equal((await client.services.narinfo.query(brief.peerId, hashPartOf('b'))).status, 'found')
  })

  it('has the requester close an idle stream after its own idle timeout', async () => {
    const brief = await started({ idleStreamTimeout: 300 })
    await brief.dial(server.getMultiaddrs()[0])
    assert.equal((await brief.services.narinfo.query(server.peerId, hashPartOf('a'))).status, 'found')
    const [pooled] = narinfoStreams(brief, server.peerId)
    assert.equal(await ending(pooled, 5_000), 'closed')
    await eventually('the responder let go of the stream', () => narinfoStreams(server, brief.peerId).length === 0, 5_000)
  })

  it('resets a stream on which the responder sent more than its answer, and asks the next query on a fresh one', async () => {
    const { node, streams } = await responder(async (_hashPart, stream) => {
      stream.send(absent)
      stream.send(absent)
      return 'next'
    })
    assert.deepEqual(await client.services.narinfo.query(node.peerId, hashPartOf('x')), { status: 'absent' })
    await eventually('the stream with the extra frame is gone', () => narinfoStreams(client, node.peerId).length === 0, 5_000)
    assert.deepEqual(await client.services.narinfo.query(node.peerId, hashPartOf('y')), { status: 'absent' })
    assert.equal(streams(), 2)
  })
})
