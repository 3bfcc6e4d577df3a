import '../../src/polyfill.js'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import { nar, NAR_PROTOCOL } from '../../src/p2p/nar/index.js'
import { NarRequest, NarResponse } from '../../src/p2p/nar/pb/message.js'
import { encodeFrame } from '../../src/p2p/wire/frame.js'
import { StreamReader } from '../../src/p2p/wire/stream-reader.js'
import { ending, eventually, hashPartOf, loopbackNode, MemorySource, narHashOf, streamsOf } from './node-helpers.js'
import type { NarService, NarServiceInit, NarStream } from '../../src/p2p/nar/index.js'
import type { Answer } from '../../src/p2p/peer-client.js'
import type { Libp2p, PeerId, Stream } from '@libp2p/interface'

type Node = Libp2p<{ nar: NarService }>

const MiB = 1024 * 1024

function found (answer: Answer<NarStream>): NarStream {
  assert.equal(answer.status, 'found', JSON.stringify(answer))
  return (answer as { value: NarStream }).value
}

async function collect (stream: NarStream): Promise<Buffer> {
  const chunks: Uint8Array[] = []
  for await (const chunk of stream) chunks.push(chunk)
  return Buffer.concat(chunks)
}

/** The NAR streams `node` has open to `peer` right now. */
function narStreams (node: Libp2p, peer: PeerId): Stream[] {
  return streamsOf(node, peer, NAR_PROTOCOL)
}

describe('/peerix/nar/1 r1: several NARs per stream', function () {
  this.timeout(30_000)
  const nodes: Libp2p[] = []
  let source: MemorySource
  let server: Node
  let client: Node

  async function started (init: Partial<NarServiceInit> = {}): Promise<Node> {
    const node = await loopbackNode({ nar: nar({ source: new MemorySource(), ...init }) })
    nodes.push(node)
    return node
  }

  /** A node whose NAR handler answers each request of a stream with `respond`; counts the streams. */
  async function responder (respond: (stream: Stream) => Promise<'next' | 'stop'>): Promise<{ node: Libp2p, streams: () => number }> {
    const node = await loopbackNode()
    nodes.push(node)
    let streams = 0
    await node.handle(NAR_PROTOCOL, async (stream) => {
      streams++
      const reader = new StreamReader(stream)
      try {
        do NarRequest.decode(await reader.readFrame(512, { signal: AbortSignal.timeout(5_000) }))
        while (await respond(stream) === 'next')
      } catch (err) {
        stream.abort(err as Error)
      } finally {
        reader.dispose()
      }
    })
    await client.dial(node.getMultiaddrs()[0])
    return { node, streams: () => streams }
  }

  const header = (length: number): Uint8Array => encodeFrame(NarResponse.encode({ status: NarResponse.Status.FOUND, length: BigInt(length) }))
  const some = { hashPart: hashPartOf('some'), narHash: narHashOf(Uint8Array.from([1])) }

  beforeEach(async () => {
    source = new MemorySource()
    server = await started({ source })
    client = await started({ idleTimeout: 3_000 })
    await client.dial(server.getMultiaddrs()[0])
  })

  afterEach(async () => {
    await Promise.all(nodes.splice(0).map(async (node) => { await node.stop() }))
  })

  it('queues fetches beyond the peer\'s stream limit, without their wait counting against the header timeout, and drops an aborted one from the queue', async () => {
    const limited = await started({ maxStreamsPerPeer: 2, timeout: 300 })
    await limited.dial(server.getMultiaddrs()[0])
    const nars = Array.from({ length: 5 }, (_, i) => randomBytes(MiB + i))
    const asked = nars.map((bytes, i) => source.add(`limit-${i}`, bytes))
    const queued: number[] = []
    const gone = new AbortController()
    const fetches = asked.map(({ hashPart, narHash }, i) => limited.services.nar.fetch(server.peerId, hashPart, narHash, 0, {
      signal: i === 4 ? gone.signal : undefined,
      onQueued: () => { queued.push(i) }
    }))
    assert.deepEqual(queued, [2, 3, 4], 'reported synchronously, from within fetch')
    const first = await Promise.all(fetches.slice(0, 2))
    gone.abort(new Error('Nix hung up'))
    assert.deepEqual(await fetches[4], { status: 'error', message: 'cancelled by the caller' })
    await sleep(500) // longer than the header timeout: the queued fetches still wait, unharmed
    assert.ok(narStreams(limited, server.peerId).length <= 2, 'never more streams than the limit')
    const got = await Promise.all(first.map(async a => await collect(found(a))))
    const later = await Promise.all(fetches.slice(2, 4).map(async a => await collect(found(await a))))
    assert.deepEqual([...got, ...later], nars.slice(0, 4))
    assert.ok(narStreams(limited, server.peerId).length <= 2)
  })

  it('gives up the slot of a body nobody reads nor returns once its stream closes, so the queue moves on', async () => {
    const limited = await started({ maxStreamsPerPeer: 1 })
    await limited.dial(server.getMultiaddrs()[0])
    const [held, next] = [randomBytes(MiB), randomBytes(1000)].map((bytes, i) => ({ bytes, ...source.add(`dropped-${i}`, bytes) }))
    found(await limited.services.nar.fetch(server.peerId, held.hashPart, held.narHash, 0)) // dropped on the floor
    let queued = false
    const fetching = limited.services.nar.fetch(server.peerId, next.hashPart, next.narHash, 0, { onQueued: () => { queued = true } })
    assert.equal(queued, true, 'the one slot is the dropped body\'s')
    // What the peer does to a stream it could not send on within its stall limit.
    for (const stream of narStreams(limited, server.peerId)) stream.abort(new Error('reset by the peer'))
    const answer = await Promise.race([fetching, sleep(2000).then(() => 'still queued' as const)])
    assert.notEqual(answer, 'still queued')
    assert.ok((await collect(found(answer as Answer<NarStream>))).equals(next.bytes))
  })

  it('fetches NARs one after another over one stream, byte for byte', async () => {
    const nars = [randomBytes(3 * MiB + 17), randomBytes(1000), new Uint8Array(0), randomBytes(5 * MiB)]
    const ids = nars.map((bytes, i) => source.add(`p${i}`, bytes))
    const seen = new Set<string>()
    for (const [i, { hashPart, narHash }] of ids.entries()) {
      const body = found(await client.services.nar.fetch(server.peerId, hashPart, narHash, 0))
      assert.ok((await collect(body)).equals(nars[i]), `NAR ${i}`)
      for (const stream of narStreams(client, server.peerId)) seen.add(stream.id)
    }
    assert.deepEqual(await client.services.nar.fetch(server.peerId, hashPartOf('absent'), some.narHash, 0), { status: 'absent' })
    for (const stream of narStreams(client, server.peerId)) seen.add(stream.id)
    assert.equal(seen.size, 1, 'one stream carried every fetch')
  })

  it('reuses the stream when the consumer stops right after the last byte, as the substituter does', async () => {
    const nars = [randomBytes(2 * MiB + 5), randomBytes(300_000), randomBytes(1000)]
    const ids = nars.map((bytes, i) => source.add(`q${i}`, bytes))
    const seen = new Set<string>()
    for (const [i, { hashPart, narHash }] of ids.entries()) {
      const body = found(await client.services.nar.fetch(server.peerId, hashPart, narHash, 0))
      const chunks: Uint8Array[] = []
      let got = 0
      // like src/substituter/nar-download.ts: once NarSize bytes are in, it returns at once
      for await (const chunk of body) {
        chunks.push(chunk)
        got += chunk.byteLength
        if (got === body.length) break
      }
      assert.ok(Buffer.concat(chunks).equals(nars[i]), `NAR ${i}`)
      for (const stream of narStreams(client, server.peerId)) seen.add(stream.id)
    }
    assert.equal(seen.size, 1, 'one stream carried every fetch')
  })

  it('resets a stream whose body was abandoned half way, and fetches the next NAR on a fresh one', async () => {
    const big = source.add('big', randomBytes(8 * MiB))
    const small = source.add('small', randomBytes(1000))
    const body = found(await client.services.nar.fetch(server.peerId, big.hashPart, big.narHash, 0))
    const [abandoned] = narStreams(client, server.peerId)
    for await (const chunk of body) { assert.ok(chunk.byteLength > 0); break }
    assert.equal(abandoned.status, 'aborted')
    assert.ok((await collect(found(await client.services.nar.fetch(server.peerId, small.hashPart, small.narHash, 0)))).equals(source.nars.get(small.hashPart) as Uint8Array))
    assert.ok(narStreams(client, server.peerId).every(s => s.id !== abandoned.id))
  })

  it('delivers a body whose exact bytes came in, and resets the stream when the responder then sends more', async () => {
    const { node, streams } = await responder(async (stream) => {
      stream.send(header(1000))
      stream.send(new Uint8Array(1000).fill(7))
      await sleep(100)
      stream.send(Uint8Array.from([1, 2, 3]))
      return 'next'
    })
    const [first] = await Promise.allSettled([collect(found(await client.services.nar.fetch(node.peerId, some.hashPart, some.narHash, 0)))])
    // the extra bytes come 100 ms later, so the body is complete; should they have come with the
    // last ones, the body fails rather than passing them on
    if (first.status === 'fulfilled') assert.ok(first.value.equals(Buffer.alloc(1000, 7)))
    else assert.match((first.reason as Error).message, /more than the 1000 bytes/)
    await eventually('the stream with the extra bytes is reset', () => narStreams(client, node.peerId).length === 0, 5_000)
    assert.equal((await collect(found(await client.services.nar.fetch(node.peerId, some.hashPart, some.narHash, 0)))).byteLength, 1000)
    assert.equal(streams(), 2)
  })

  it('fetches from an r0 responder (one NAR, then close) on a fresh stream each time', async () => {
    const { node, streams } = await responder(async (stream) => {
      stream.send(header(500))
      stream.send(new Uint8Array(500).fill(9))
      await stream.close()
      return 'stop'
    })
    for (let i = 0; i < 3; i++) {
      assert.ok((await collect(found(await client.services.nar.fetch(node.peerId, some.hashPart, some.narHash, 0)))).equals(Buffer.alloc(500, 9)), `fetch ${i}`)
    }
    assert.equal(streams(), 3)
  })

  it('serves an r0 requester (one request, then close write) and closes the stream cleanly after the body', async () => {
    const { hashPart, narHash } = source.add('one', randomBytes(70_000))
    const stream = await client.dialProtocol(server.peerId, NAR_PROTOCOL)
    const reader = new StreamReader(stream)
    try {
      stream.send(encodeFrame(NarRequest.encode({ hashPart, narHash, offset: 0n })))
      await stream.close()
      const response = NarResponse.decode(await reader.readFrame(4096, { idleTimeout: 5_000 }))
      assert.equal(response.status, NarResponse.Status.FOUND)
      const chunks: Uint8Array[] = []
      for await (const chunk of reader.readBody(Number(response.length), { idleTimeout: 5_000 })) chunks.push(chunk)
      assert.ok(Buffer.concat(chunks).equals(source.nars.get(hashPart) as Uint8Array))
      assert.equal(await ending(stream, 5_000), 'closed')
    } finally {
      reader.dispose()
    }
  })

  it('has the responder close an idle stream cleanly after its keep-alive', async () => {
    const brief = await started({ source, keepAlive: 300 })
    await client.dial(brief.getMultiaddrs()[0])
    const { hashPart, narHash } = source.add('k', randomBytes(100))
    assert.equal((await collect(found(await client.services.nar.fetch(brief.peerId, hashPart, narHash, 0)))).byteLength, 100)
    const [pooled] = narStreams(client, brief.peerId)
    assert.equal(await ending(pooled, 5_000), 'closed')
    assert.equal((await collect(found(await client.services.nar.fetch(brief.peerId, hashPart, narHash, 0)))).byteLength, 100)
  })
})
