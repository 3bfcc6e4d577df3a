/**
 * zstd on /peerix/nar/1 between real libp2p nodes: negotiated per request (accept_zstd, then
 * the FOUND header's encoding), byte-for-byte equal NARs in fewer wire bytes, and peers that
 * predate the fields (either side) still get and give plain NARs; a compressed body ends at its
 * last block, so the stream carries the next fetch. A responder that sends zstd
 * nobody asked for, or a bomb, fails the download with a clear error.
 */
import '../../src/polyfill.js'
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import { compress } from '@bokuweb/zstd-wasm'
import { formatSha256Nix32 } from '../../src/nix/hash.js'
import { narStream } from '../../src/nix/nar.js'
import { toNix32 } from '../../src/nix/nix32.js'
import { nar, NAR_PROTOCOL } from '../../src/p2p/nar/index.js'
import { NarRequest, NarResponse } from '../../src/p2p/nar/pb/message.js'
import { BLOCK_ZSTD, encodeUvarint } from '../../src/p2p/nar/zstd-body.js'
import { encodeFrame } from '../../src/p2p/wire/frame.js'
import { StreamReader } from '../../src/p2p/wire/stream-reader.js'
import { LogLines, loopbackNode } from './node-helpers.js'
import type { FetchOptions, NarService, NarServiceInit, NarStream } from '../../src/p2p/nar/index.js'
import type { Answer } from '../../src/p2p/peer-client.js'
import type { NarBytes, PathSource, Served } from '../../src/store/source.js'
import type { Libp2p, Stream } from '@libp2p/interface'

type Node = Libp2p<{ nar: NarService }>

const hashPartOf = (label: string): string => toNix32(createHash('sha256').update(label).digest().subarray(0, 20))
const narHashOf = (bytes: Uint8Array): string => formatSha256Nix32(createHash('sha256').update(bytes).digest())

/** NARs in memory, yielded in 64 KiB pieces like the NAR writer's. */
class BytesSource implements PathSource {
  readonly nars = new Map<string, Uint8Array>()

  add (label: string, bytes: Uint8Array): { hashPart: string, narHash: string } {
    this.nars.set(hashPartOf(label), bytes)
    return { hashPart: hashPartOf(label), narHash: narHashOf(bytes) }
  }

  async narInfo (): Promise<Served<never>> {
    return { status: 'absent' }
  }

  async nar (hashPart: string, narHash: string, offset: number): Promise<Served<NarBytes>> {
    const bytes = this.nars.get(hashPart)
    if (bytes === undefined || narHashOf(bytes) !== narHash) return { status: 'absent' }
    const rest = bytes.subarray(offset)
    return {
      status: 'found',
      value: {
        length: rest.byteLength,
        stream: (async function * () { for (let at = 0; at < rest.byteLength; at += 65536) yield rest.subarray(at, at + 65536) })()
      }
    }
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

function block (...parts: Uint8Array[]): Uint8Array {
  return encodeFrame(Buffer.concat(parts))
}

describe('/peerix/nar/1 with zstd', function () {
  this.timeout(60_000)
  const nodes: Libp2p[] = []
  let source: BytesSource
  let serverLog: LogLines
  let server: Node
  let client: Node
  let realNar: Buffer

  async function started (init: Partial<NarServiceInit> = {}): Promise<Node> {
    const node = await loopbackNode({ nar: nar({ source: new BytesSource(), ...init }) })
    nodes.push(node)
    return node
  }

  /** A node whose /peerix/nar/1 handler is written by the test: an old peer, or a lying one. */
  async function handwritten (handler: (stream: Stream, request: NarRequest) => Promise<void>): Promise<Libp2p> {
    const node = await loopbackNode()
    nodes.push(node)
    await node.handle(NAR_PROTOCOL, async (stream) => {
      const reader = new StreamReader(stream)
      try {
        await handler(stream, NarRequest.decode(await reader.readFrame(512)))
        await stream.close()
      } catch (err) {
        stream.abort(err as Error)
      } finally {
        reader.dispose()
      }
    })
    await client.dial(node.getMultiaddrs()[0])
    return node
  }

  const header = (length: number, encoding = NarResponse.Encoding.IDENTITY): Uint8Array =>
    encodeFrame(NarResponse.encode({ status: NarResponse.Status.FOUND, length: BigInt(length), encoding }))
  const some = { hashPart: hashPartOf('some'), narHash: narHashOf(Uint8Array.of(1)) }
  const zstd: FetchOptions = { acceptZstd: true }

  before(async () => {
    const chunks: Uint8Array[] = []
    for await (const chunk of narStream(fileURLToPath(new URL('../../src', import.meta.url)))) chunks.push(chunk)
    // a few MiB of real files
    realNar = Buffer.concat(Array.from({ length: 6 }, () => Buffer.concat(chunks)))
  })

  beforeEach(async () => {
    source = new BytesSource()
    serverLog = new LogLines()
    server = await started({ source, log: serverLog.logger })
    client = await started({ idleTimeout: 3_000 })
    await client.dial(server.getMultiaddrs()[0])
  })

  afterEach(async () => {
    await Promise.all(nodes.splice(0).map(async (node) => { await node.stop() }))
  })

  it('sends a compressible NAR as zstd when asked, byte for byte, in fewer wire bytes, from any offset', async () => {
    const { hashPart, narHash } = source.add('real', realNar)
    const whole = found(await client.services.nar.fetch(server.peerId, hashPart, narHash, 0, zstd))
    assert.equal(whole.encoding, 'zstd')
    assert.equal(whole.length, realNar.byteLength)
    assert.ok((await collect(whole)).equals(realNar))
    assert.ok(whole.wireBytes < realNar.byteLength / 2, `${whole.wireBytes} wire bytes for ${realNar.byteLength}`)
    const served = serverLog.matching(new RegExp(`served ${hashPart} from 0 \\(${realNar.byteLength} bytes, ${whole.wireBytes} as zstd blocks\\)`))
    assert.equal(served.length, 1, serverLog.lines.map(l => l.line).join('\n'))

    for (const offset of [1, 300_001, realNar.byteLength - 1, realNar.byteLength]) {
      const rest = found(await client.services.nar.fetch(server.peerId, hashPart, narHash, offset, zstd))
      assert.equal(rest.length, realNar.byteLength - offset)
      assert.ok((await collect(rest)).equals(realNar.subarray(offset)), `from offset ${offset}`)
    }
  })

  it('ends a compressed body at its last block: the stream carries the next fetches, compressed or not', async () => {
    const real = source.add('real', realNar)
    const small = source.add('small', realNar.subarray(0, 1000))
    const empty = source.add('empty', new Uint8Array(0))
    const seen = new Set<string>()
    for (const [{ hashPart, narHash }, bytes, options] of [[real, realNar, zstd], [small, realNar.subarray(0, 1000), zstd], [empty, new Uint8Array(0), zstd], [real, realNar, {}]] as const) {
      const body = found(await client.services.nar.fetch(server.peerId, hashPart, narHash, 0, options))
      assert.equal(body.encoding, options.acceptZstd === true ? 'zstd' : 'identity')
      assert.ok((await collect(body)).equals(bytes))
      for (const connection of client.getConnections(server.peerId)) {
        for (const stream of connection.streams) if (stream.protocol === NAR_PROTOCOL) seen.add(stream.id)
      }
    }
    assert.equal(seen.size, 1, 'one stream carried every fetch')
  })

  it('sends the NAR as it is to a request that does not accept zstd', async () => {
    const { hashPart, narHash } = source.add('real', realNar)
    const plain = found(await client.services.nar.fetch(server.peerId, hashPart, narHash, 0))
    assert.equal(plain.encoding, 'identity')
    assert.ok((await collect(plain)).equals(realNar))
    assert.equal(plain.wireBytes, realNar.byteLength)
  })

  it('answers a requester that predates accept_zstd (a request of fields 1-3 only) with raw bytes', async () => {
    const { hashPart, narHash } = source.add('real', realNar)
    const request = NarRequest.encode({ hashPart, narHash, offset: 5n })
    // what an old peer writes: no field 4 at all
    assert.equal(request.byteLength, 2 + 32 + 2 + 59 + 2)
    const stream = await client.dial(server.getMultiaddrs()[0]).then(async (c) => await c.newStream(NAR_PROTOCOL))
    const reader = new StreamReader(stream, { highWaterMark: 64 * 1024 * 1024 })
    try {
      stream.send(encodeFrame(request))
      await stream.close()
      const answer = NarResponse.decode(await reader.readFrame(4096))
      assert.equal(answer.status, NarResponse.Status.FOUND)
      assert.equal(answer.encoding, NarResponse.Encoding.IDENTITY)
      const chunks: Uint8Array[] = []
      for await (const chunk of reader.readBody(Number(answer.length))) chunks.push(chunk)
      assert.ok(Buffer.concat(chunks).equals(realNar.subarray(5)))
    } finally {
      reader.dispose()
    }
  })

  it('takes raw bytes from a responder that predates the encoding field, though it asked for zstd', async () => {
    const bytes = realNar.subarray(0, 1_000_000)
    const old = await handwritten(async (stream, request) => {
      assert.equal(request.acceptZstd, true)
      stream.send(encodeFrame(NarResponse.encode({ status: NarResponse.Status.FOUND, length: BigInt(bytes.byteLength) })))
      stream.send(bytes)
    })
    const body = found(await client.services.nar.fetch(old.peerId, some.hashPart, some.narHash, 0, zstd))
    assert.equal(body.encoding, 'identity')
    assert.ok((await collect(body)).equals(bytes))
  })

  it('does not compress when the responder is set not to', async () => {
    const quiet = await started({ source, compress: false })
    await client.dial(quiet.getMultiaddrs()[0])
    const { hashPart, narHash } = source.add('real', realNar)
    const body = found(await client.services.nar.fetch(quiet.peerId, hashPart, narHash, 0, zstd))
    assert.equal(body.encoding, 'identity')
    assert.ok((await collect(body)).equals(realNar))
  })

  it('costs incompressible NARs next to nothing on the wire', async () => {
    const random = randomBytes(3 * 1024 * 1024 + 17)
    const { hashPart, narHash } = source.add('random', random)
    const body = found(await client.services.nar.fetch(server.peerId, hashPart, narHash, 0, zstd))
    assert.equal(body.encoding, 'zstd')
    assert.ok((await collect(body)).equals(random))
    assert.ok(body.wireBytes <= random.byteLength + 4 * 13, `${body.wireBytes} wire bytes for ${random.byteLength}`)
  })

  it('refuses a zstd body it did not ask for', async () => {
    const liar = await handwritten(async (stream) => {
      stream.send(header(10, NarResponse.Encoding.ZSTD))
      stream.send(block(Uint8Array.of(0), new Uint8Array(10)))
    })
    const answer = await client.services.nar.fetch(liar.peerId, some.hashPart, some.narHash, 0)
    assert.deepEqual(answer, { status: 'error', message: 'malformed response: a zstd body that was not asked for' })
  })

  it('fails the download on a bomb, a block past the length, or bytes after the last block', async () => {
    const bomb = compress(new Uint8Array(64 * 1024 * 1024), 1)
    const bomber = await handwritten(async (stream) => {
      stream.send(header(1000, NarResponse.Encoding.ZSTD))
      stream.send(block(Uint8Array.of(BLOCK_ZSTD), encodeUvarint(1000), bomb))
    })
    const bombed = await failure(found(await client.services.nar.fetch(bomber.peerId, some.hashPart, some.narHash, 0, zstd)))
    assert.match(bombed.message, /compressed NAR body: block at byte 0 of 1000: zstd frame declares 67108864 content bytes, the block 1000/)

    const overlong = await handwritten(async (stream) => {
      stream.send(header(1000, NarResponse.Encoding.ZSTD))
      stream.send(block(Uint8Array.of(0), new Uint8Array(999)))
      stream.send(block(Uint8Array.of(0), new Uint8Array(2)))
    })
    const past = await failure(found(await client.services.nar.fetch(overlong.peerId, some.hashPart, some.narHash, 0, zstd)))
    assert.match(past.message, /block at byte 999 of 1000: a block of 2 bytes where 1 are left/)

    const trailing = await handwritten(async (stream) => {
      // in one write, so that the extra byte has arrived when the last block is decoded
      stream.send(Buffer.concat([header(1000, NarResponse.Encoding.ZSTD), block(Uint8Array.of(0), new Uint8Array(1000)), Uint8Array.of(1)]))
    })
    const after = await failure(found(await client.services.nar.fetch(trailing.peerId, some.hashPart, some.narHash, 0, zstd)))
    assert.match(after.message, /the peer sent more than the 1000 bytes it announced/)

    // and the client node is fine: the next download works
    const { hashPart, narHash } = source.add('real', realNar)
    assert.ok((await collect(found(await client.services.nar.fetch(server.peerId, hashPart, narHash, 0, zstd)))).equals(realNar))
  })
})
