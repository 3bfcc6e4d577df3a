import '../../src/polyfill.js'
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import { formatSha256Nix32 } from '../../src/nix/hash.js'
import { toNix32 } from '../../src/nix/nix32.js'
import { nar, NAR_PROTOCOL } from '../../src/p2p/nar/index.js'
import { NarRequest, NarResponse } from '../../src/p2p/nar/pb/message.js'
import { encodeFrame } from '../../src/p2p/wire/frame.js'
import { send } from '../../src/p2p/wire/send.js'
import { StreamReader } from '../../src/p2p/wire/stream-reader.js'
import { loopbackNode } from './node-helpers.js'
import type { NarService, NarServiceInit, NarStream } from '../../src/p2p/nar/index.js'
import type { Answer } from '../../src/p2p/peer-client.js'
import type { NarBytes, PathSource, Served } from '../../src/store/source.js'
import type { Libp2p, Stream } from '@libp2p/interface'

type Node = Libp2p<{ nar: NarService }>

const MiB = 1024 * 1024

function hashPartOf (label: string): string {
  return toNix32(createHash('sha256').update(label).digest().subarray(0, 20))
}

function narHashOf (bytes: Uint8Array): string {
  return formatSha256Nix32(createHash('sha256').update(bytes).digest())
}

/** One request the fixture store saw, with what became of the stream it gave out. */
interface Served1 { hashPart: string, offset: number, peer: string, signal?: AbortSignal, produced: number, finished: boolean }

/**
 * A store of NARs held in memory, yielded in 64 KiB pieces with a few tiny ones in between
 * (as a NAR writer yields headers and file contents); `lazy` NARs are generated as read.
 */
class FixtureSource implements PathSource {
  readonly requests: Served1[] = []
  readonly nars = new Map<string, Uint8Array>()
  readonly lazy = new Map<string, number>()
  readonly refused = new Map<string, string>()
  readonly hanging = new Set<string>()

  add (label: string, bytes: Uint8Array): { hashPart: string, narHash: string } {
    this.nars.set(hashPartOf(label), bytes)
    return { hashPart: hashPartOf(label), narHash: narHashOf(bytes) }
  }

  async narInfo (): Promise<Served<never>> {
    return { status: 'absent' }
  }

  async nar (hashPart: string, narHash: string, offset: number, peer: string, signal?: AbortSignal): Promise<Served<NarBytes>> {
    if (this.hanging.has(hashPart)) return await new Promise(() => {})
    const reason = this.refused.get(hashPart)
    if (reason !== undefined) return { status: 'refused', reason }
    const record: Served1 = { hashPart, offset, peer, signal, produced: 0, finished: false }
    const lazySize = this.lazy.get(hashPart)
    if (lazySize !== undefined) {
      this.requests.push(record)
      return { status: 'found', value: { length: lazySize - offset, stream: pieces(record, lazySize - offset, () => new Uint8Array(64 * 1024)) } }
    }
    const bytes = this.nars.get(hashPart)
    if (bytes === undefined || narHashOf(bytes) !== narHash) return { status: 'absent' }
    this.requests.push(record)
    let at = offset
    const next = (size: number): Uint8Array => { const piece = bytes.subarray(at, at + size); at += piece.byteLength; return piece }
    return { status: 'found', value: { length: bytes.byteLength - offset, stream: pieces(record, bytes.byteLength - offset, next) } }
  }
}

async function * pieces (record: Served1, length: number, next: (size: number) => Uint8Array): AsyncGenerator<Uint8Array> {
  try {
    let i = 0
    while (record.produced < length) {
      const piece = next(Math.min(i++ % 4 === 0 ? 8 : 64 * 1024, length - record.produced)).subarray(0, length - record.produced)
      record.produced += piece.byteLength
      yield piece
      await new Promise(resolve => setImmediate(resolve))
    }
  } finally {
    record.finished = true
  }
}

async function collect (stream: NarStream): Promise<Buffer> {
  const chunks: Uint8Array[] = []
  for await (const chunk of stream) chunks.push(chunk)
  return Buffer.concat(chunks)
}

async function failure (stream: NarStream): Promise<Error> {
  try {
    await collect(stream)
  } catch (err) {
    return err as Error
  }
  throw new Error('the NAR stream ended without an error')
}

function found (answer: Answer<NarStream>): NarStream {
  assert.equal(answer.status, 'found', JSON.stringify(answer))
  return (answer as { value: NarStream }).value
}

async function ending (stream: Stream, within: number): Promise<string> {
  if (stream.status === 'open' || stream.status === 'closing') {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => { reject(new Error(`stream still ${stream.status} after ${within} ms`)) }, within)
      stream.addEventListener('close', () => { clearTimeout(timer); resolve() }, { once: true })
    })
  }
  return stream.status
}

async function until (what: string, within: number, check: () => boolean): Promise<void> {
  const end = Date.now() + within
  while (!check()) {
    if (Date.now() > end) throw new Error(`not within ${within} ms: ${what}`)
    await sleep(20)
  }
}

describe('/peerix/nar/1', function () {
  this.timeout(30_000)
  const nodes: Libp2p[] = []
  let source: FixtureSource
  let server: Node
  let client: Node

  async function started (init: Partial<NarServiceInit> = {}): Promise<Node> {
    const node = await loopbackNode({ nar: nar({ source: new FixtureSource(), ...init }) })
    nodes.push(node)
    return node
  }

  /** A node whose /peerix/nar/1 handler is written by the test. */
  async function liar (handler: (stream: Stream) => Promise<void>): Promise<Libp2p> {
    const node = await loopbackNode()
    nodes.push(node)
    await node.handle(NAR_PROTOCOL, async (stream) => {
      try { await handler(stream) } catch (err) { stream.abort(err as Error) }
    })
    await client.dial(node.getMultiaddrs()[0])
    return node
  }

  const someHash = { hashPart: hashPartOf('liar'), narHash: narHashOf(Uint8Array.from([1])) }
  async function fetchFromLiar (node: Libp2p): Promise<NarStream> {
    return found(await client.services.nar.fetch(node.peerId, someHash.hashPart, someHash.narHash, 0))
  }
  const header = (length: number): Uint8Array => encodeFrame(NarResponse.encode({ status: NarResponse.Status.FOUND, length: BigInt(length) }))

  beforeEach(async () => {
    source = new FixtureSource()
    server = await started({ source })
    client = await started({ idleTimeout: 3_000 })
    await client.dial(server.getMultiaddrs()[0])
  })

  afterEach(async () => {
    await Promise.all(nodes.splice(0).map(async (node) => { await node.stop() }))
  })

  it('streams a NAR of a few MiB whole, and from offsets, byte for byte', async () => {
    const bytes = randomBytes(5 * MiB + 12345)
    const { hashPart, narHash } = source.add('big', bytes)

    const whole = found(await client.services.nar.fetch(server.peerId, hashPart, narHash, 0))
    assert.equal(whole.length, bytes.byteLength)
    assert.ok((await collect(whole)).equals(bytes))

    for (const offset of [1, 1_000_003, bytes.byteLength - 1, bytes.byteLength]) {
      const rest = found(await client.services.nar.fetch(server.peerId, hashPart, narHash, offset))
      assert.equal(rest.length, bytes.byteLength - offset)
      assert.ok((await collect(rest)).equals(bytes.subarray(offset)), `from offset ${offset}`)
    }
    assert.deepEqual(source.requests.map(r => [r.offset, r.peer, r.finished]),
      [0, 1, 1_000_003, bytes.byteLength - 1, bytes.byteLength].map(offset => [offset, client.peerId.toString(), true]))
  })

  it('streams several NARs in parallel over one connection', async () => {
    const files = Array.from({ length: 8 }, (_, i) => randomBytes(MiB + i * 1000))
    const ids = files.map((bytes, i) => source.add(`p${i}`, bytes))
    const bodies = await Promise.all(ids.map(async ({ hashPart, narHash }) =>
      await collect(found(await client.services.nar.fetch(server.peerId, hashPart, narHash, 0)))))
    bodies.forEach((body, i) => { assert.ok(body.equals(files[i]), `NAR ${i}`) })
  })

  it('answers ABSENT for an unknown path or a NarHash that is no longer the path\'s, REFUSED with the reason', async () => {
    const { hashPart } = source.add('changed', randomBytes(100))
    source.refused.set(hashPartOf('private'), 'only for trusted peers')
    assert.deepEqual(await client.services.nar.fetch(server.peerId, hashPart, narHashOf(Uint8Array.from([0])), 0), { status: 'absent' })
    assert.deepEqual(await client.services.nar.fetch(server.peerId, hashPartOf('nothing'), someHash.narHash, 0), { status: 'absent' })
    assert.deepEqual(await client.services.nar.fetch(server.peerId, hashPartOf('private'), someHash.narHash, 0),
      { status: 'refused', reason: 'only for trusted peers' })
  })

  it('sends nothing for a request it cannot make: bad hash part, NarHash form or offset', async () => {
    const cases: Array<[string, string, number, RegExp]> = [
      ['short', someHash.narHash, 0, /invalid store path hash "short"/],
      [someHash.hashPart, 'sha256:' + 'a'.repeat(64), 0, /invalid NarHash/],
      [someHash.hashPart, someHash.narHash, -1, /invalid NAR offset -1/],
      [someHash.hashPart, someHash.narHash, 1.5, /invalid NAR offset 1\.5/]
    ]
    for (const [hashPart, narHash, offset, message] of cases) {
      const answer = await client.services.nar.fetch(server.peerId, hashPart, narHash, offset)
      assert.equal(answer.status, 'error')
      assert.match((answer as { message: string }).message, message)
    }
    assert.equal(source.requests.length, 0)
  })

  it('stops the store\'s stream when the requester stops reading early', async () => {
    source.lazy.set(hashPartOf('huge'), 512 * MiB)
    const body = found(await client.services.nar.fetch(server.peerId, hashPartOf('huge'), someHash.narHash, 0))
    for await (const chunk of body) { assert.ok(chunk.byteLength > 0); break }
    await until('the store\'s stream is finished', 5_000, () => source.requests[0]?.finished)
    assert.equal(source.requests[0].signal?.aborted, true)
    assert.ok(source.requests[0].produced < 64 * MiB, `produced ${source.requests[0].produced} bytes`)
  })

  it('stops the store\'s stream when the requester lets go of the body before reading any of it', async () => {
    source.lazy.set(hashPartOf('huge'), 512 * MiB)
    const body = found(await client.services.nar.fetch(server.peerId, hashPartOf('huge'), someHash.narHash, 0))
    await body[Symbol.asyncIterator]().return?.(undefined)
    await until('the store\'s stream is finished', 5_000, () => source.requests[0]?.finished)
    assert.equal(source.requests[0].signal?.aborted, true)
  })

  it('holds the sender back while the reader is slow, instead of buffering the NAR', async () => {
    source.lazy.set(hashPartOf('huge'), 256 * MiB)
    const body = found(await client.services.nar.fetch(server.peerId, hashPartOf('huge'), someHash.narHash, 0))
    const iterator = body[Symbol.asyncIterator]()
    let consumed = 0
    const readUpTo = async (bytes: number): Promise<void> => {
      while (consumed < bytes) consumed += ((await iterator.next()).value as Uint8Array).byteLength
    }
    // a first pause and catching up, so that the sender has waited for a drain before
    await readUpTo(8 * MiB)
    await sleep(500)
    await readUpTo(48 * MiB)
    await sleep(1_000)
    const ahead = source.requests[0].produced - consumed
    // the reader's high-water mark, the yamux window and the sender's own chunk: tens of MiB at most
    assert.ok(ahead < 32 * MiB, `the store got ${ahead / MiB} MiB ahead of a reader that paused`)
    // and the pause cost nothing: the rest arrives whole
    for (let next = await iterator.next(); next.done !== true; next = await iterator.next()) consumed += next.value.byteLength
    assert.equal(consumed, 256 * MiB)
  })

  it('cuts the NARs it sends when its node stops, so that stopping warns of no listener leak', async () => {
    // libp2p closes a connection with one signal handed to every stream's close, and each
    // stream with bytes queued waited on it: 11 of them made Node warn of a memory leak.
    const warnings: string[] = []
    const onWarning = (warning: Error): void => { warnings.push(`${warning.name}: ${warning.message}`) }
    process.on('warning', onWarning)
    try {
      const bodies = await Promise.all(Array.from({ length: 16 }, async (_, i) => {
        source.lazy.set(hashPartOf(`huge-${i}`), 256 * MiB)
        return found(await client.services.nar.fetch(server.peerId, hashPartOf(`huge-${i}`), someHash.narHash, 0))
      }))
      // Nothing reads them: every stream's window fills and its sender has bytes queued.
      await until('the store is asked for every NAR', 5_000, () => source.requests.length === 16)
      await sleep(500)
      await server.stop()
      await until('every NAR the store gave out is finished', 5_000, () => source.requests.every(r => r.finished))
      await sleep(50) // Node emits a warning on the next tick
      assert.deepEqual(warnings, [])
      for (const body of bodies) await body[Symbol.asyncIterator]().return?.(undefined)
    } finally {
      process.off('warning', onWarning)
    }
  })

  it('holds a paused stream\'s sender back when the connection\'s socket drains for other streams', async () => {
    source.lazy.set(hashPartOf('huge'), 256 * MiB)
    // A requester that asks for a NAR and never reads it: its yamux window stays shut.
    const paused = await client.dialProtocol(server.peerId, NAR_PROTOCOL)
    paused.pause()
    paused.maxReadBufferLength = 1024 * MiB
    paused.send(encodeFrame(NarRequest.encode({ hashPart: hashPartOf('huge'), narHash: someHash.narHash, offset: 0n, acceptZstd: false })))
    await until('the store is asked', 5_000, () => source.requests.some(r => r.hashPart === hashPartOf('huge')))
    // While other streams keep the socket busy, the muxer tells every stream of the connection
    // each time the socket drains (a NAR on another stream did it, between processes, measured
    // by a review: the paused stream's sender queued its whole 64 MiB NAR). Here the muxer's
    // own call stands in for that traffic, 200 times.
    const served = server.getConnections(client.peerId).flatMap(c => c.streams).filter(s => s.protocol === NAR_PROTOCOL)
    assert.equal(served.length, 1)
    for (let i = 0; i < 200; i++) {
      (served[0] as unknown as { onMuxerDrain: () => void }).onMuxerDrain()
      await sleep(2)
    }
    const produced = source.requests.find(r => r.hashPart === hashPartOf('huge'))?.produced ?? 0
    assert.ok(produced < 4 * MiB, `the store got ${(produced / MiB).toFixed(0)} MiB into a NAR whose reader read nothing`)
    paused.abort(new Error('done'))
  })

  describe('a requester that misbehaves', () => {
    it('gets ERROR and a reset for a garbage request, and the server keeps serving', async () => {
      const stream = await client.dialProtocol(server.getMultiaddrs()[0], NAR_PROTOCOL)
      const reader = new StreamReader(stream)
      stream.send(Uint8Array.from([4, 0x0a, 0xff, 0xff, 0xff]))
      const response = NarResponse.decode(await reader.readFrame(4096))
      assert.equal(response.status, NarResponse.Status.ERROR)
      assert.match(response.message, /^malformed request: /)
      assert.equal(await ending(stream, 2_000), 'reset')
      reader.dispose()

      const { hashPart, narHash } = source.add('after', randomBytes(1000))
      assert.equal((await collect(found(await client.services.nar.fetch(server.peerId, hashPart, narHash, 0)))).byteLength, 1000)
    })

    it('gets ERROR for a frame announcing 4 GiB', async () => {
      const stream = await client.dialProtocol(server.getMultiaddrs()[0], NAR_PROTOCOL)
      const reader = new StreamReader(stream)
      stream.send(Uint8Array.from([0xff, 0xff, 0xff, 0xff, 0x0f]))
      const response = NarResponse.decode(await reader.readFrame(4096))
      assert.equal(response.status, NarResponse.Status.ERROR)
      assert.match(response.message, /limit of 512 bytes/)
      assert.equal(await ending(stream, 2_000), 'reset')
      reader.dispose()
    })

    it('is cut off when it never sends a request', async () => {
      const impatient = await started({ source, requestTimeout: 300 })
      const stream = await client.dialProtocol(impatient.getMultiaddrs()[0], NAR_PROTOCOL)
      const start = Date.now()
      assert.equal(await ending(stream, 3_000), 'reset')
      assert.ok(Date.now() - start >= 250)
    })

    it('is given up on when it stops reading, and the store\'s stream is stopped', async () => {
      const patient = await started({ source, sendStallTimeout: 500 })
      await client.dial(patient.getMultiaddrs()[0])
      source.lazy.set(hashPartOf('huge'), 512 * MiB)
      const answer = await client.services.nar.fetch(patient.peerId, hashPartOf('huge'), someHash.narHash, 0)
      found(answer) // and never read
      await until('the server gives up on the stalled reader', 10_000, () => source.requests[0]?.finished)
      assert.equal(source.requests[0].signal?.aborted, true)
    })
  })

  describe('a responder that misbehaves', () => {
    it('gives an error within the timeout when the server never sends a header', async () => {
      source.hanging.add(hashPartOf('slow'))
      const quick = await started({ timeout: 300 })
      await quick.dial(server.getMultiaddrs()[0])
      const answer = await quick.services.nar.fetch(server.peerId, hashPartOf('slow'), someHash.narHash, 0)
      assert.deepEqual(answer, { status: 'error', message: 'no answer within 300 ms' })
    })

    it('fails the body when the peer sends more than it announced', async () => {
      const node = await liar(async (stream) => {
        stream.send(header(1000))
        stream.send(new Uint8Array(1500))
        await stream.close()
      })
      assert.match((await failure(await fetchFromLiar(node))).message, /more than the 1000 bytes it announced/)
    })

    it('never delivers more than an endless NAR announced, and resets the stream so the sender stops', async () => {
      let sender: Stream | undefined
      const node = await liar(async (stream) => {
        sender = stream
        stream.send(header(10 * MiB))
        while (stream.status === 'open') await send(stream, new Uint8Array(64 * 1024), 5_000)
      })
      // r1: the body ends at the announced length without awaiting the stream's end; bytes past
      // it fail the body when they arrived with the last ones, else they reset the idle stream
      let received = 0
      try {
        for await (const chunk of await fetchFromLiar(node)) received += chunk.byteLength
        assert.equal(received, 10 * MiB)
      } catch (err) {
        assert.match((err as Error).message, /more than the 10485760 bytes it announced/)
        assert.ok(received <= 10 * MiB)
      }
      assert.equal(await ending(sender as Stream, 2_000), 'reset')
    })

    it('fails the body when the stream ends short of the announced length', async () => {
      const node = await liar(async (stream) => {
        stream.send(header(1000))
        stream.send(new Uint8Array(500))
        await stream.close()
      })
      assert.match((await failure(await fetchFromLiar(node))).message, /ended after 500 of the 1000 bytes/)
    })

    it('fails the body when the stream is reset midway', async () => {
      const node = await liar(async (stream) => {
        stream.send(header(1000))
        stream.send(new Uint8Array(500))
        await sleep(50)
        stream.abort(new Error('gone'))
      })
      assert.equal((await failure(await fetchFromLiar(node))).name, 'StreamResetError')
    })

    it('fails the body when the sender stalls, after the idle timeout', async () => {
      const node = await liar(async (stream) => {
        stream.send(header(1000))
        stream.send(new Uint8Array(500))
        await sleep(8_000)
      })
      const body = await fetchFromLiar(node)
      const start = Date.now()
      const err = await failure(body)
      assert.match(err.message, /sent nothing for 3000 ms/)
      assert.ok(Date.now() - start < 6_000)
    })

    it('does not fail a body whose bytes keep coming within the idle timeout, however long it takes', async () => {
      // the body's one idle timer fires during these waits and must re-arm for the wait in progress
      const node = await liar(async (stream) => {
        stream.send(header(1000))
        for (let i = 0; i < 4; i++) {
          await sleep(1_100)
          stream.send(new Uint8Array(250))
        }
      })
      const body = await fetchFromLiar(node)
      assert.equal((await collect(body)).byteLength, 1000)
    })

    it('ends the body once the announced bytes are in, without awaiting the end of the stream (r1)', async () => {
      const node = await liar(async (stream) => {
        stream.send(header(1000))
        stream.send(new Uint8Array(1000))
        await sleep(8_000)
      })
      const body = await fetchFromLiar(node)
      const start = Date.now()
      assert.equal((await collect(body)).byteLength, 1000)
      assert.ok(Date.now() - start < 3_000, `the body ended after ${Date.now() - start} ms, the idle timeout is 3000 ms`)
    })

    it('gives an error for a header without a status and for a length beyond 2^53', async () => {
      const replies = [encodeFrame(new Uint8Array(0)), encodeFrame(NarResponse.encode({ status: NarResponse.Status.FOUND, length: 2n ** 60n }))]
      const node = await liar(async (stream) => {
        stream.send(replies.shift() as Uint8Array)
        await stream.close()
      })
      const first = await client.services.nar.fetch(node.peerId, someHash.hashPart, someHash.narHash, 0)
      const second = await client.services.nar.fetch(node.peerId, someHash.hashPart, someHash.narHash, 0)
      assert.deepEqual(first, { status: 'error', message: 'malformed response: no status' })
      assert.equal(second.status, 'error')
      assert.match((second as { message: string }).message, /length 1152921504606846976 is too large/)
    })
  })
})
