/**
 * protocols/peerix-narinfo-1.md and protocols/peerix-nar-1.md against a real peerix node, both
 * ways: a requester written from the spec text alone (test/p2p/spec-wire.ts: hand-written
 * protobuf, frames and zstd blocks over a raw libp2p stream) asks a peerix node, and a
 * responder written the same way answers a peerix node's requests. What the specs show byte by
 * byte is checked byte by byte. Where another implementation could be written from the spec
 * and still fail against peerix, one of the two is wrong: these tests say which.
 */
import '../../src/polyfill.js'
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { formatSha256Nix32 } from '../../src/nix/hash.js'
import { wasmZstd } from '../../src/p2p/nar/compression.js'
import { NarRequest, NarResponse } from '../../src/p2p/nar/pb/message.js'
import { NarinfoRequest } from '../../src/p2p/narinfo/pb/message.js'
import { encodeFrame } from '../../src/p2p/wire/frame.js'
import { hashPartOf, Nodes } from './node-helpers.js'
import {
  BLOCK_MAX_NAR_BYTES, bytesField, bytesOf, encodeBlock, frame, has, parseMessage, RawReader,
  readZstdBody, stringOf, uvarint, varintField, varintOf, type BlockCodec
} from './spec-wire.js'
import type { NarInfo } from '../../src/nix/narinfo.js'
import type { PeerixNode } from '../../src/p2p/node.js'
import type { NarBytes, NarInfoOptions, PathSource, Served, ServedNarInfo } from '../../src/store/source.js'
import type { Libp2p, Stream } from '@libp2p/interface'

const NARINFO = '/peerix/narinfo/1'
const NAR = '/peerix/nar/1'
const KiB = 1024
const MiB = 1024 * KiB

/** Limits as the specs state them. */
const NARINFO_REQUEST_MAX = 256
const narinfoResponseMax = (maxNarBytes: number): number => MiB + 4 * KiB + Math.min(maxNarBytes, 64 * KiB)
const NAR_REQUEST_MAX = 512
const NAR_HEADER_MAX = 4 * KiB

/** The spec's example hash part. */
const EXAMPLE_HASH = 'p4pclmv1gyja5kzc26npqpia1qqxrf0l'
/** The spec's example NarHash: sha256: and 52 × `1`. */
const EXAMPLE_NAR_HASH = `sha256:${'1'.repeat(52)}`

/** Status values of both protocols. */
const FOUND = 1n
const ABSENT = 2n
const REFUSED = 3n
const ERROR = 4n

const narHashOf = (bytes: Uint8Array): string => formatSha256Nix32(createHash('sha256').update(bytes).digest())

/** Text that zstd shrinks, `n` bytes of it. */
function compressible (n: number): Buffer {
  const line = Buffer.from('/nix/store/p4pclmv1gyja5kzc26npqpia1qqxrf0l-ruby-2.7.3/lib/ruby/2.7.0/net/http.rb\n')
  return Buffer.concat(Array.from({ length: Math.ceil(n / line.length) }, () => line)).subarray(0, n)
}

/** A store in memory that answers as LocalStore does: REFUSED by hash part, ABSENT past NarSize. */
class SpecSource implements PathSource {
  readonly paths = new Map<string, { info: NarInfo, nar: Buffer }>()
  readonly refused = new Map<string, string>()
  /** Paths whose lookup never ends: the responder waits on its store. */
  readonly hanging = new Set<string>()
  /** Paths whose lookup fails, with an internal message no peer may see. */
  readonly failing = new Set<string>()
  /** Paths whose NAR the store gets wrong: what it announces, and the bytes (or the failure) it yields. */
  readonly faulty = new Map<string, () => NarBytes>()

  add (label: string, nar: Buffer, hashPart = hashPartOf(label)): { hashPart: string, narHash: string } {
    const narHash = narHashOf(nar)
    this.paths.set(hashPart, { info: { storePath: `/nix/store/${hashPart}-${label}`, url: `nar/${hashPart}.nar`, compression: 'none', narHash, narSize: nar.length, references: [], sigs: [] }, nar })
    return { hashPart, narHash }
  }

  async narInfo (hashPart: string, _peer: string, options: NarInfoOptions = {}): Promise<ServedNarInfo> {
    if (this.hanging.has(hashPart)) return await new Promise(() => {})
    if (this.failing.has(hashPart)) throw new Error('SQLITE_BUSY: database is locked at /secret/db.sqlite')
    const reason = this.refused.get(hashPart)
    if (reason !== undefined) return { status: 'refused', reason }
    const path = this.paths.get(hashPart)
    if (path === undefined) return { status: 'absent' }
    if (options.narUpTo === undefined || path.info.narSize > options.narUpTo) return { status: 'found', value: path.info }
    return { status: 'found', value: path.info, nar: pieces(path.nar) }
  }

  async nar (hashPart: string, narHash: string, offset: number): Promise<Served<NarBytes>> {
    if (this.hanging.has(hashPart)) return await new Promise(() => {})
    if (this.failing.has(hashPart)) throw new Error('SQLITE_BUSY: database is locked at /secret/db.sqlite')
    const faulty = this.faulty.get(hashPart)
    if (faulty !== undefined) return { status: 'found', value: faulty() }
    const reason = this.refused.get(hashPart)
    if (reason !== undefined) return { status: 'refused', reason }
    const path = this.paths.get(hashPart)
    if (path === undefined || path.info.narHash !== narHash || offset > path.nar.length) return { status: 'absent' }
    return { status: 'found', value: pieces(path.nar.subarray(offset)) }
  }
}

/** Bytes as a store yields them: in pieces of 64 KiB, as the NAR writer does. */
function pieces (bytes: Buffer): NarBytes {
  return {
    length: bytes.length,
    stream: (async function * () {
      for (let at = 0; at < bytes.length; at += 64 * KiB) yield bytes.subarray(at, at + 64 * KiB)
    })()
  }
}

/** A NarinfoRequest as the spec writes it: hash_part, and max_nar_bytes when not 0. */
function narinfoRequest (hashPart: string, maxNarBytes = 0): Buffer {
  return frame(Buffer.concat([bytesField(1, hashPart), ...(maxNarBytes > 0 ? [varintField(2, maxNarBytes)] : [])]))
}

/** A NarRequest as the spec writes it: fields left out at their defaults. */
function narRequest (hashPart: string, narHash: string, offset: number | bigint = 0, acceptZstd = false): Buffer {
  return frame(Buffer.concat([
    bytesField(1, hashPart),
    bytesField(2, narHash),
    ...(BigInt(offset) > 0n ? [varintField(3, offset)] : []),
    ...(acceptZstd ? [varintField(4, true)] : [])
  ]))
}

/** zstd itself, for the blocks (a library: the block framing around it is the spec's, in spec-wire.ts). */
async function zstdCodec (): Promise<BlockCodec> {
  const codec = await wasmZstd()
  return { compress: codec.compress, decompress: codec.decompress }
}

describe('the specs against a peerix node: a requester and a responder written from protocols/*.md', function () {
  this.timeout(60_000)
  const nodes = new Nodes()

  afterEach(async () => { await nodes.stopAll() })

  /** A peerix node serving `source`, and a stock libp2p node to speak to it by hand. */
  async function peerixAndPlain (source: SpecSource): Promise<{ server: PeerixNode, plain: Libp2p, open: (protocol: string) => Promise<{ stream: Stream, reader: RawReader }> }> {
    const server = await nodes.peerix({ source })
    const plain = await nodes.plain()
    const open = async (protocol: string): Promise<{ stream: Stream, reader: RawReader }> => {
      const stream = await plain.dialProtocol(server.getMultiaddrs()[0], protocol)
      return { stream, reader: new RawReader(stream) }
    }
    return { server, plain, open }
  }

  /** A stock libp2p node answering `protocol` with `serve`, and a peerix node connected to it. */
  async function specResponder (protocol: string, serve: (stream: Stream, reader: RawReader) => Promise<void>): Promise<{ responder: Libp2p, client: PeerixNode, streams: () => number }> {
    const responder = await nodes.plain()
    let streams = 0
    await responder.handle(protocol, async (stream) => {
      streams++
      try {
        await serve(stream, new RawReader(stream))
      } catch (err) {
        stream.abort(err as Error)
      }
    })
    const client = await nodes.peerix()
    await client.dial(responder.getMultiaddrs()[0])
    return { responder, client, streams: () => streams }
  }

  describe('/peerix/narinfo/1: a requester from the spec asks a peerix node', () => {
    it('writes the spec\'s example request byte for byte, gets the spec\'s 3-byte ABSENT, and asks again on the same stream', async () => {
      const request = narinfoRequest(EXAMPLE_HASH)
      assert.equal(request.length, 35)
      assert.deepEqual(request, Buffer.concat([Buffer.of(0x22, 0x0a, 0x20), Buffer.from(EXAMPLE_HASH, 'ascii')]))
      assert.deepEqual(Buffer.from(encodeFrame(NarinfoRequest.encode({ hashPart: EXAMPLE_HASH, maxNarBytes: 0 }))), request, 'peerix writes the same bytes')
      assert.equal(narinfoRequest(EXAMPLE_HASH, 2 ** 32 - 1).length - 1, 40, 'the largest valid request body (r2)')

      const source = new SpecSource()
      const { hashPart } = source.add('hello-2.12', compressible(3000))
      const refused = hashPartOf('built-here')
      source.refused.set(refused, 'built here, served to trusted peers only')
      const { open } = await peerixAndPlain(source)
      const { stream, reader } = await open(NARINFO)

      stream.send(request)
      assert.deepEqual(await reader.bytes(3), Buffer.of(0x02, 0x08, 0x02))
      assert.ok(await reader.quietFor(100), 'nothing after the answer: the stream is idle')

      stream.send(narinfoRequest(hashPart))
      const found = parseMessage(await reader.frame(narinfoResponseMax(0)))
      assert.equal(varintOf(found, 1), FOUND)
      const text = stringOf(found, 2)
      assert.ok(text.endsWith('\n'))
      const lines = text.slice(0, -1).split('\n')
      assert.ok(lines.every(l => /^[A-Za-z]+: /.test(l)), text)
      assert.ok(lines.includes(`StorePath: /nix/store/${hashPart}-hello-2.12`), text)
      assert.ok(lines.includes('NarSize: 3000'), text)
      assert.ok(!has(found, 3) && !has(found, 4), 'no message and no NAR with a FOUND not asking for one')

      stream.send(narinfoRequest(refused))
      const refusal = parseMessage(await reader.frame(narinfoResponseMax(0)))
      assert.equal(varintOf(refusal, 1), REFUSED)
      assert.equal(stringOf(refusal, 3), 'built here, served to trusted peers only')
      assert.ok(!has(refusal, 2))

      await stream.close()
      assert.equal(await reader.end(), 'closed', 'the requester closed its write side: the responder closes the stream')
    })

    it('puts the NAR in the answer only when asked, when NarSize is within max_nar_bytes and 64 KiB (r2)', async () => {
      const source = new SpecSource()
      const small = source.add('small', randomBytes(1000))
      const limit = source.add('exactly-64k', randomBytes(64 * KiB))
      const over = source.add('64k-and-1', randomBytes(64 * KiB + 1))
      const { open } = await peerixAndPlain(source)
      const { stream, reader } = await open(NARINFO)

      const cases: Array<[{ hashPart: string }, number, boolean]> = [
        [small, 0, false], [small, 999, false], [small, 1000, true], [small, 2 ** 32 - 1, true],
        [limit, 64 * KiB - 1, false], [limit, 64 * KiB, true], [limit, 2 ** 32 - 1, true],
        [over, 2 ** 32 - 1, false]
      ]
      for (const [path, max, withNar] of cases) {
        stream.send(narinfoRequest(path.hashPart, max))
        const answer = parseMessage(await reader.frame(narinfoResponseMax(max)))
        assert.equal(varintOf(answer, 1), FOUND)
        assert.ok(stringOf(answer, 2).includes(`StorePath: /nix/store/${path.hashPart}-`))
        const nar = bytesOf(answer, 4)
        const expected = source.paths.get(path.hashPart)?.nar
        if (withNar) assert.deepEqual(nar, expected, `the NAR with max_nar_bytes ${max}`)
        else assert.equal(nar.length, 0, `no NAR of ${expected?.length} bytes with max_nar_bytes ${max}`)
      }
      await stream.close()
      assert.equal(await reader.end(), 'closed')
    })

    it('answers ERROR without the store\'s own message when the store fails, and the stream carries the next question', async () => {
      const source = new SpecSource()
      source.failing.add(EXAMPLE_HASH)
      const { hashPart } = source.add('hello', compressible(100))
      const { open } = await peerixAndPlain(source)
      const { stream, reader } = await open(NARINFO)
      stream.send(narinfoRequest(EXAMPLE_HASH))
      const answer = parseMessage(await reader.frame(narinfoResponseMax(0)))
      assert.equal(varintOf(answer, 1), ERROR)
      assert.ok(stringOf(answer, 3) !== '' && !/secret|SQLITE/.test(stringOf(answer, 3)), stringOf(answer, 3))
      stream.send(narinfoRequest(hashPart))
      assert.equal(varintOf(parseMessage(await reader.frame(narinfoResponseMax(0))), 1), FOUND)
    })

    it('skips unknown request fields, as Versioning promises', async () => {
      const source = new SpecSource()
      const { hashPart } = source.add('hello', compressible(100))
      const { open } = await peerixAndPlain(source)
      const { stream, reader } = await open(NARINFO)
      stream.send(frame(Buffer.concat([varintField(15, 7), bytesField(1, hashPart), bytesField(9, 'a field of r9'), varintField(2, 100), Buffer.of(0x5d, 1, 2, 3, 4)])))
      const answer = parseMessage(await reader.frame(narinfoResponseMax(100)))
      assert.equal(varintOf(answer, 1), FOUND)
      assert.deepEqual(bytesOf(answer, 4), source.paths.get(hashPart)?.nar)
    })

    it('answers a requester of r0 (one request, then its write side closed at once) and closes the stream cleanly', async () => {
      const { open } = await peerixAndPlain(new SpecSource())
      const { stream, reader } = await open(NARINFO)
      stream.send(narinfoRequest(EXAMPLE_HASH))
      await stream.close()
      assert.deepEqual(await reader.bytes(3), Buffer.of(0x02, 0x08, 0x02))
      assert.equal(await reader.end(), 'closed')
    })

    it('closes the stream cleanly, answering nothing, when the requester closes its write side instead of a first request', async () => {
      const { open } = await peerixAndPlain(new SpecSource())
      const { stream, reader } = await open(NARINFO)
      await stream.close()
      assert.equal(await reader.end(), 'closed', 'no ERROR and no reset: the requester was done with the stream')
    })

    it('answers a malformed request with one ERROR "malformed request: …" and a reset of that stream only', async () => {
      const { open } = await peerixAndPlain(new SpecSource())
      const other = await open(NARINFO)
      const malformed: Array<[string, Buffer]> = [
        ['a hash part of 31 characters', narinfoRequest(EXAMPLE_HASH.slice(1))],
        ['a hash part with an e', narinfoRequest(`e${EXAMPLE_HASH.slice(1)}`)],
        ['no hash part', frame(varintField(2, 100))],
        ['a body that is not protobuf', frame(Buffer.of(0xff, 0xff, 0xff))],
        // the limit is 256: the responder refuses at the prefix, without waiting for the body
        ['a frame of 257 bytes', uvarint(257)],
        ['a stream that ends inside the frame', Buffer.concat([uvarint(34), Buffer.from('0a20', 'hex')])]
      ]
      for (const [what, bytes] of malformed) {
        const { stream, reader } = await open(NARINFO)
        stream.send(bytes)
        if (what.startsWith('a stream that ends')) await stream.close()
        const answer = parseMessage(await reader.frame(narinfoResponseMax(0)))
        assert.equal(varintOf(answer, 1), ERROR, what)
        assert.match(stringOf(answer, 3), /^malformed request: ./, what)
        assert.equal(await reader.end(), 'reset', what)
      }
      other.stream.send(narinfoRequest(EXAMPLE_HASH))
      assert.deepEqual(await other.reader.bytes(3), Buffer.of(0x02, 0x08, 0x02), 'the other streams and the connection are unaffected')
    })
  })

  describe('/peerix/narinfo/1: a responder from the spec answers a peerix node', () => {
    /** Answers by table, one request after another on a stream, until the requester closes its side. */
    async function narinfoResponder (replies: Map<string, (maxNarBytes: number) => Buffer[]>): Promise<{ responder: Libp2p, client: PeerixNode, streams: () => number, asked: Array<{ hashPart: string, max: number }> }> {
      const asked: Array<{ hashPart: string, max: number }> = []
      const started = await specResponder(NARINFO, async (stream, reader) => {
        while (await reader.more()) {
          const fields = parseMessage(await reader.frame(NARINFO_REQUEST_MAX))
          const hashPart = stringOf(fields, 1)
          const max = Number(varintOf(fields, 2))
          asked.push({ hashPart, max })
          for (const body of (replies.get(hashPart) ?? (() => [varintField(1, ABSENT)]))(max)) stream.send(frame(body))
        }
        await stream.close()
      })
      return { ...started, asked }
    }

    const narinfoText = (hashPart: string, size: number): string =>
      `StorePath: /nix/store/${hashPart}-x\nURL: nar/${hashPart}.nar\nCompression: none\nNarHash: ${EXAMPLE_NAR_HASH}\nNarSize: ${size}\nReferences: \n`

    it('has its FOUND, inline NAR, ABSENT, REFUSED and ERROR answers read as the spec means them, all on one stream', async () => {
      const found = hashPartOf('found')
      const withNar = hashPartOf('with-nar')
      const refused = hashPartOf('refused')
      const failed = hashPartOf('failed')
      const nar = randomBytes(500)
      const replies = new Map<string, (max: number) => Buffer[]>([
        // with fields of a later revision, which a requester skips (Versioning)
        [found, () => [Buffer.concat([varintField(10, 99), varintField(1, FOUND), bytesField(2, narinfoText(found, 500)), bytesField(9, 'r9')])]],
        [withNar, (max) => [Buffer.concat([varintField(1, FOUND), bytesField(2, narinfoText(withNar, 500)), ...(max >= 500 ? [bytesField(4, nar)] : [])])]],
        [refused, () => [Buffer.concat([varintField(1, REFUSED), bytesField(3, 'not for you')])]],
        [failed, () => [Buffer.concat([varintField(1, ERROR), bytesField(3, 'the store could not answer')])]]
      ])
      const { responder, client, streams, asked } = await narinfoResponder(replies)
      const query = client.services.narinfo.query.bind(client.services.narinfo, responder.peerId)

      assert.deepEqual(await query(found), { status: 'found', value: narinfoText(found, 500) })
      const small = await query(withNar, { maxNarBytes: 64 * KiB })
      assert.equal(small.status, 'found')
      assert.deepEqual(Buffer.from((small as { nar: Uint8Array }).nar), nar)
      assert.deepEqual(await query(withNar), { status: 'found', value: narinfoText(withNar, 500) })
      assert.deepEqual(await query(EXAMPLE_HASH), { status: 'absent' })
      assert.deepEqual(await query(refused), { status: 'refused', reason: 'not for you' })
      const error = await query(failed)
      assert.equal(error.status, 'error')
      assert.match((error as { message: string }).message, /the store could not answer/)
      assert.equal(streams(), 1, 'one question after another on one stream')
      assert.deepEqual(asked.map(a => a.max), [0, 64 * KiB, 0, 0, 0, 0], 'max_nar_bytes only when the caller takes a NAR')
    })

    it('has a FOUND without a narinfo, one with a NAR it did not ask for or larger than asked, and an unknown status taken as malformed', async () => {
      const cases = new Map<string, Buffer>([
        [hashPartOf('empty'), varintField(1, FOUND)],
        [hashPartOf('unasked'), Buffer.concat([varintField(1, FOUND), bytesField(2, narinfoText(hashPartOf('unasked'), 10)), bytesField(4, randomBytes(10))])],
        [hashPartOf('unspecified'), bytesField(2, 'StorePath: x\n')],
        [hashPartOf('status-5'), varintField(1, 5)]
      ])
      const bigger = hashPartOf('bigger')
      const replies = new Map<string, (max: number) => Buffer[]>([...cases].map(([h, body]) => [h, () => [body]]))
      replies.set(bigger, (max) => [Buffer.concat([varintField(1, FOUND), bytesField(2, narinfoText(bigger, max + 1)), bytesField(4, randomBytes(max + 1))])])
      const { responder, client } = await narinfoResponder(replies)
      for (const hashPart of cases.keys()) {
        const answer = await client.services.narinfo.query(responder.peerId, hashPart)
        assert.equal(answer.status, 'error', `${hashPart}: ${JSON.stringify(answer)}`)
      }
      const answer = await client.services.narinfo.query(responder.peerId, bigger, { maxNarBytes: 1000 })
      assert.equal(answer.status, 'error', JSON.stringify(answer))
    })

    it('has a second frame for one request reset the stream, and asks its next question on a fresh one', async () => {
      const twice = hashPartOf('twice')
      const body = Buffer.concat([varintField(1, FOUND), bytesField(2, narinfoText(twice, 1))])
      const { responder, client, streams } = await narinfoResponder(new Map([[twice, () => [body, body]]]))
      await client.services.narinfo.query(responder.peerId, twice)
      await new Promise(resolve => setTimeout(resolve, 50))
      assert.deepEqual(await client.services.narinfo.query(responder.peerId, EXAMPLE_HASH), { status: 'absent' })
      assert.equal(streams(), 2)
    })
  })

  describe('/peerix/nar/1: a requester from the spec asks a peerix node', () => {
    it('writes the spec\'s example request byte for byte and gets the spec\'s FOUND header, then exactly `length` raw bytes; the stream carries more exchanges', async () => {
      const example = narRequest(EXAMPLE_HASH, EXAMPLE_NAR_HASH, 1_000_000)
      assert.equal(example.length, 100)
      assert.deepEqual(example.subarray(0, 3), Buffer.of(0x63, 0x0a, 0x20))
      assert.deepEqual(example.subarray(35, 37), Buffer.of(0x12, 0x3b))
      assert.deepEqual(example.subarray(96), Buffer.of(0x18, 0xc0, 0x84, 0x3d))
      assert.deepEqual(Buffer.from(encodeFrame(NarRequest.encode({ hashPart: EXAMPLE_HASH, narHash: EXAMPLE_NAR_HASH, offset: 1_000_000n, acceptZstd: false }))), example, 'peerix writes the same bytes')
      assert.equal(narRequest(EXAMPLE_HASH, EXAMPLE_NAR_HASH, 2 ** 53 - 1, true).length - 1, 106, 'the largest valid request body')
      assert.deepEqual(Buffer.from(encodeFrame(NarResponse.encode({ status: NarResponse.Status.FOUND, length: 1_234_567n, encoding: NarResponse.Encoding.IDENTITY }))), Buffer.from('06080110' + '87ad4b', 'hex'))

      const source = new SpecSource()
      const bytes = randomBytes(1_234_567)
      const { narHash } = source.add('example', bytes, EXAMPLE_HASH)
      const { open } = await peerixAndPlain(source)
      const { stream, reader } = await open(NAR)

      stream.send(narRequest(EXAMPLE_HASH, narHash))
      assert.deepEqual(await reader.bytes(7), Buffer.from('0608011087ad4b', 'hex'))
      assert.ok((await reader.bytes(1_234_567)).equals(bytes))
      assert.ok(await reader.quietFor(100), 'nothing past `length`: the stream is idle')

      stream.send(narRequest(EXAMPLE_HASH, narHash, 1_000_000))
      const resumed = parseMessage(await reader.frame(NAR_HEADER_MAX))
      assert.equal(varintOf(resumed, 1), FOUND)
      assert.equal(varintOf(resumed, 2), 234_567n)
      assert.ok(!has(resumed, 4), 'IDENTITY is left out')
      assert.ok((await reader.bytes(234_567)).equals(bytes.subarray(1_000_000)))

      stream.send(narRequest(EXAMPLE_HASH, narHash, bytes.length))
      assert.deepEqual(await reader.bytes(3), Buffer.of(0x02, 0x08, 0x01), 'offset NarSize: FOUND, length 0 (left out), and no bytes')

      stream.send(example)
      assert.deepEqual(await reader.bytes(3), Buffer.of(0x02, 0x08, 0x02), 'a NarHash that is not the path\'s: ABSENT')
      assert.ok(await reader.quietFor(100))

      await stream.close()
      assert.equal(await reader.end(), 'closed')
    })

    it('skips unknown request fields, as Versioning promises', async () => {
      const source = new SpecSource()
      const bytes = randomBytes(5000)
      const { hashPart, narHash } = source.add('hello', bytes)
      const { open } = await peerixAndPlain(source)
      const { stream, reader } = await open(NAR)
      stream.send(frame(Buffer.concat([varintField(15, 7), bytesField(1, hashPart), bytesField(9, 'a field of r9'), bytesField(2, narHash), varintField(3, 1000), Buffer.of(0x5d, 1, 2, 3, 4)])))
      const header = parseMessage(await reader.frame(NAR_HEADER_MAX))
      assert.equal(varintOf(header, 1), FOUND)
      assert.ok((await reader.bytes(4000)).equals(bytes.subarray(1000)))
    })

    it('answers ERROR without the store\'s own message when the store fails before the header, and resets a body the store gets wrong', async () => {
      const source = new SpecSource()
      source.failing.add(EXAMPLE_HASH)
      const { hashPart, narHash } = source.add('hello', randomBytes(1000))
      const yielding = (announced: number, bytes: number, fail = false) => () => ({
        length: announced,
        stream: (async function * () {
          for (let at = 0; at < bytes; at += 64 * KiB) yield randomBytes(Math.min(64 * KiB, bytes - at))
          if (fail) throw new Error('EIO: i/o error, read /nix/store/secret')
        })()
      })
      const wrong: Array<[string, number, () => NarBytes]> = [
        ['fewer bytes than announced', 600 * KiB, yielding(600 * KiB, 600 * KiB - 100)],
        ['more bytes than announced', 600 * KiB, yielding(600 * KiB, 600 * KiB + 100)],
        ['a read that fails half way', 600 * KiB, yielding(600 * KiB, 300 * KiB, true)],
        ['fewer bytes, as zstd blocks', 600 * KiB, yielding(600 * KiB, 600 * KiB - 100)]
      ]
      for (const [what, , bytes] of wrong) source.faulty.set(hashPartOf(what), bytes)
      const { open } = await peerixAndPlain(source)

      const { stream, reader } = await open(NAR)
      stream.send(narRequest(EXAMPLE_HASH, EXAMPLE_NAR_HASH))
      const failed = parseMessage(await reader.frame(NAR_HEADER_MAX))
      assert.equal(varintOf(failed, 1), ERROR)
      assert.ok(stringOf(failed, 3) !== '' && !/secret|SQLITE/.test(stringOf(failed, 3)), stringOf(failed, 3))
      stream.send(narRequest(hashPart, narHash))
      assert.equal(varintOf(parseMessage(await reader.frame(NAR_HEADER_MAX)), 1), FOUND, 'the stream carries the next request')
      await reader.bytes(1000)

      const zstd = await zstdCodec()
      for (const [what, announced] of wrong) {
        const { stream, reader } = await open(NAR)
        const zstdBody = what.includes('zstd')
        stream.send(narRequest(hashPartOf(what), EXAMPLE_NAR_HASH, 0, zstdBody))
        const header = parseMessage(await reader.frame(NAR_HEADER_MAX))
        assert.equal(varintOf(header, 1), FOUND, what)
        assert.equal(varintOf(header, 2), BigInt(announced), what)
        // the body never completes: the stream is reset before `length` NAR bytes came
        await assert.rejects(zstdBody ? readZstdBody(reader, announced, zstd) : reader.bytes(announced), /reset/, what)
      }
    })

    it('answers REFUSED with the reason, and ABSENT for an unknown path; offsets up to 2^53 − 1 are requests, not errors', async () => {
      const source = new SpecSource()
      const { hashPart, narHash } = source.add('refused', randomBytes(10))
      source.refused.set(hashPart, 'not for you')
      const { open } = await peerixAndPlain(source)
      const { stream, reader } = await open(NAR)
      stream.send(narRequest(hashPart, narHash))
      const refused = parseMessage(await reader.frame(NAR_HEADER_MAX))
      assert.equal(varintOf(refused, 1), REFUSED)
      assert.equal(stringOf(refused, 3), 'not for you')
      stream.send(narRequest(EXAMPLE_HASH, EXAMPLE_NAR_HASH, 2n ** 53n - 1n))
      assert.deepEqual(await reader.bytes(3), Buffer.of(0x02, 0x08, 0x02))
      // a nix32 SHA-256 whose first character is 1 still fits 256 bits
      stream.send(narRequest(EXAMPLE_HASH, `sha256:1${'z'.repeat(51)}`))
      assert.deepEqual(await reader.bytes(3), Buffer.of(0x02, 0x08, 0x02))
    })

    it('closes the stream cleanly, answering nothing, when the requester closes its write side instead of a first request', async () => {
      const { open } = await peerixAndPlain(new SpecSource())
      const { stream, reader } = await open(NAR)
      await stream.close()
      assert.equal(await reader.end(), 'closed', 'no ERROR and no reset: the requester was done with the stream')
    })

    it('answers a malformed request with one ERROR "malformed request: …" and a reset of that stream only', async () => {
      const { open } = await peerixAndPlain(new SpecSource())
      const other = await open(NAR)
      const malformed: Array<[string, Buffer]> = [
        ['a hash part of 33 characters', narRequest(`${EXAMPLE_HASH}0`, EXAMPLE_NAR_HASH)],
        ['a NarHash without sha256:', narRequest(EXAMPLE_HASH, '1'.repeat(52))],
        ['a NarHash of 51 characters', narRequest(EXAMPLE_HASH, `sha256:${'1'.repeat(51)}`)],
        ['a NarHash in base 16', narRequest(EXAMPLE_HASH, `sha256:${'ab'.repeat(32)}`)],
        // 52 nix32 characters hold 260 bits: Nix refuses a SHA-256 that uses the 4 above 256
        ['a NarHash of more than 256 bits', narRequest(EXAMPLE_HASH, `sha256:${'z'.repeat(52)}`)],
        ['an offset of 2^53', narRequest(EXAMPLE_HASH, EXAMPLE_NAR_HASH, 2n ** 53n)],
        ['a frame of 513 bytes', uvarint(513)]
      ]
      for (const [what, bytes] of malformed) {
        const { stream, reader } = await open(NAR)
        stream.send(bytes)
        const answer = parseMessage(await reader.frame(NAR_HEADER_MAX))
        assert.equal(varintOf(answer, 1), ERROR, what)
        assert.match(stringOf(answer, 3), /^malformed request: ./, what)
        assert.equal(await reader.end(), 'reset', what)
      }
      other.stream.send(narRequest(EXAMPLE_HASH, EXAMPLE_NAR_HASH))
      assert.deepEqual(await other.reader.bytes(3), Buffer.of(0x02, 0x08, 0x02), 'the other streams and the connection are unaffected')
    })

    it('sends zstd blocks by the spec\'s rules when accept_zstd is set: 256 KiB each but the last, stored when zstd does not shrink them', async () => {
      const zstd = await zstdCodec()
      const source = new SpecSource()
      // compressible, then a megabyte that is not, then compressible again: both kinds of block
      const bytes = Buffer.concat([compressible(700 * KiB), randomBytes(MiB), compressible(300 * KiB + 123)])
      const { hashPart, narHash } = source.add('mixed', bytes)
      const { open } = await peerixAndPlain(source)
      const { stream, reader } = await open(NAR)

      for (const offset of [0, 100_000]) {
        stream.send(narRequest(hashPart, narHash, offset, true))
        const header = parseMessage(await reader.frame(NAR_HEADER_MAX))
        assert.equal(varintOf(header, 1), FOUND)
        assert.equal(varintOf(header, 2), BigInt(bytes.length - offset), '`length` counts NAR bytes')
        assert.equal(varintOf(header, 4), 1n, 'encoding ZSTD')
        const blocks = await readZstdBody(reader, bytes.length - offset, zstd)
        assert.ok(Buffer.concat(blocks.map(b => b.content)).equals(bytes.subarray(offset)))
        assert.ok(blocks.slice(0, -1).every(b => b.content.length === BLOCK_MAX_NAR_BYTES), 'cut at 256 KiB')
        assert.ok(blocks.some(b => b.kind === 1) && blocks.some(b => b.kind === 0), blocks.map(b => b.kind).join(''))
        if (offset === 0) {
          // 700 KiB of text, 1 MiB of random bytes, 300 KiB of text in 8 blocks: 0-2 shrink, 3
          // does not (1 stored untried: 4), 5 does not (2 stored untried: 6, and 7 though text)
          assert.equal(blocks.map(b => b.kind).join(''), '11100000', 'the back-off of Encodings')
        }
        assert.ok(await reader.quietFor(100), 'the body ends with the block that completes `length`')
      }

      stream.send(narRequest(hashPart, narHash, bytes.length, true))
      const empty = parseMessage(await reader.frame(NAR_HEADER_MAX))
      assert.equal(varintOf(empty, 1), FOUND)
      assert.equal(varintOf(empty, 2), 0n)
      assert.ok(await reader.quietFor(100), 'no block for length 0')

      stream.send(narRequest(hashPart, narHash, 1_500_000))
      const raw = parseMessage(await reader.frame(NAR_HEADER_MAX))
      assert.ok(!has(raw, 4), 'without accept_zstd: IDENTITY')
      assert.ok((await reader.bytes(bytes.length - 1_500_000)).equals(bytes.subarray(1_500_000)))
      await stream.close()
      assert.equal(await reader.end(), 'closed')
    })
  })

  describe('a requester that writes requests without reading the answers (which it MUST NOT)', () => {
    /**
     * Writes `request` over and over, `perWrite` at a time, as fast as the stream takes them,
     * until the responder takes no more; returns the bytes that left this side.
     */
    async function flood (stream: Stream, request: Buffer, perWrite: number): Promise<number> {
      const burst = Buffer.concat(Array.from({ length: perWrite }, () => request))
      let sent = 0
      let taken = 0
      for (let idle = 0; idle < 5 && sent < 8 * MiB;) {
        sent += burst.length
        if (stream.send(burst)) continue
        await Promise.race([stream.onDrain(), new Promise(resolve => setTimeout(resolve, 200))])
        const nowTaken = sent - stream.writeBufferLength
        idle = nowTaken === taken ? idle + 1 : 0
        taken = nowTaken
      }
      return taken
    }

    for (const [protocol, request] of [
      [NARINFO, narinfoRequest(EXAMPLE_HASH)],
      [NAR, narRequest(EXAMPLE_HASH, EXAMPLE_NAR_HASH)]
    ] as const) {
      it(`cannot make a ${protocol} responder take more than 16 KiB and the stream's first window of them, however it writes them`, async () => {
        const source = new SpecSource()
        source.hanging.add(EXAMPLE_HASH)
        const { server, plain, open } = await peerixAndPlain(source)
        for (const perWrite of [4, 64, 1024]) {
          const { stream } = await open(protocol)
          stream.send(request)
          const taken = await flood(stream, request, perWrite)
          // what left this side sits in the responder's buffers, or is on its way there
          assert.ok(taken < 512 * KiB, `${perWrite} requests a write: the responder took ${taken} bytes of requests it did not read`)
          const served = server.getConnections(plain.peerId).flatMap(c => c.streams).filter(s => s.protocol === protocol && s.status === 'open')
          assert.equal(served.length, 1, 'the responder still holds the stream: libp2p did not reset it for a read buffer past its limit')
          stream.abort(new Error('done'))
          await new Promise(resolve => setTimeout(resolve, 50))
        }
      })
    }
  })

  describe('/peerix/nar/1: a responder from the spec answers a peerix node', () => {
    /** NARs by hash part; `zstdBlock` > 0 answers accept_zstd with blocks of that many NAR bytes, compressed every other one. */
    async function narResponder (nars: Map<string, Buffer>, opts: { zstdBlock?: number, refused?: Set<string> } = {}): Promise<{ responder: Libp2p, client: PeerixNode, streams: () => number }> {
      const zstd = await zstdCodec()
      return await specResponder(NAR, async (stream, reader) => {
        while (await reader.more()) {
          const fields = parseMessage(await reader.frame(NAR_REQUEST_MAX))
          const hashPart = stringOf(fields, 1)
          const offset = Number(varintOf(fields, 3))
          const bytes = nars.get(hashPart)
          if (opts.refused?.has(hashPart) === true) {
            stream.send(frame(Buffer.concat([varintField(1, REFUSED), bytesField(3, 'not for you')])))
          } else if (bytes === undefined || narHashOf(bytes) !== stringOf(fields, 2) || offset > bytes.length) {
            stream.send(frame(varintField(1, ABSENT)))
          } else {
            const body = bytes.subarray(offset)
            const blocks = opts.zstdBlock !== undefined && varintOf(fields, 4) === 1n
            stream.send(frame(Buffer.concat([varintField(1, FOUND), ...(body.length > 0 ? [varintField(2, body.length)] : []), ...(blocks ? [varintField(4, 1)] : [])])))
            if (blocks) {
              for (let at = 0, n = 0; at < body.length; at += opts.zstdBlock ?? 0, n++) stream.send(encodeBlock(body.subarray(at, at + (opts.zstdBlock ?? 0)), n % 2 === 0 ? zstd : undefined))
            } else {
              // raw, in writes of odd sizes: the muxer frames them, the length delimits them
              for (let at = 0; at < body.length; at += 100_003) stream.send(body.subarray(at, at + 100_003))
            }
          }
        }
        await stream.close()
      })
    }

    async function fetched (client: PeerixNode, responder: Libp2p, hashPart: string, bytes: Buffer, offset = 0, acceptZstd = false): Promise<{ body: Buffer, encoding: string }> {
      const answer = await client.services.nar.fetch(responder.peerId, hashPart, narHashOf(bytes), offset, { acceptZstd })
      assert.equal(answer.status, 'found', JSON.stringify(answer))
      const value = (answer as { value: AsyncIterable<Uint8Array> & { encoding: string, length: number } }).value
      assert.equal(value.length, bytes.length - offset)
      const chunks: Uint8Array[] = []
      for await (const chunk of value) chunks.push(chunk)
      return { body: Buffer.concat(chunks), encoding: value.encoding }
    }

    it('has raw bodies from any offset, ABSENT and REFUSED read as the spec means them, one exchange after another on one stream', async () => {
      const bytes = randomBytes(700_000)
      const hashPart = hashPartOf('raw')
      const refused = hashPartOf('refused')
      const { responder, client, streams } = await narResponder(new Map([[hashPart, bytes], [refused, bytes]]), { refused: new Set([refused]) })
      for (const offset of [0, 1, 699_999, 700_000, 123_456]) {
        const { body, encoding } = await fetched(client, responder, hashPart, bytes, offset)
        assert.ok(body.equals(bytes.subarray(offset)), `offset ${offset}`)
        assert.equal(encoding, 'identity')
      }
      assert.deepEqual(await client.services.nar.fetch(responder.peerId, hashPart, EXAMPLE_NAR_HASH, 0), { status: 'absent' })
      assert.deepEqual(await client.services.nar.fetch(responder.peerId, refused, narHashOf(bytes), 0), { status: 'refused', reason: 'not for you' })
      assert.equal(streams(), 1)
    })

    it('has unknown header fields skipped, and an unknown encoding or status taken as malformed', async () => {
      const bytes = randomBytes(1000)
      const cases: Array<[string, Buffer, string]> = [
        ['unknown fields', Buffer.concat([varintField(9, 5), varintField(1, FOUND), varintField(2, 1000), bytesField(10, 'r9')]), 'found'],
        ['encoding 2', Buffer.concat([varintField(1, FOUND), varintField(2, 1000), varintField(4, 2)]), 'error'],
        ['status 5', Buffer.concat([varintField(1, 5), varintField(2, 1000)]), 'error'],
        ['no status', varintField(2, 1000), 'error']
      ]
      const headers = new Map(cases.map(([what, header]) => [hashPartOf(what), header]))
      const { responder, client } = await specResponder(NAR, async (stream, reader) => {
        while (await reader.more()) {
          const header = headers.get(stringOf(parseMessage(await reader.frame(NAR_REQUEST_MAX)), 1)) ?? varintField(1, ABSENT)
          stream.send(frame(header))
          stream.send(bytes)
        }
        await stream.close()
      })
      for (const [what, , status] of cases) {
        const answer = await client.services.nar.fetch(responder.peerId, hashPartOf(what), narHashOf(bytes), 0, { acceptZstd: true })
        assert.equal(answer.status, status, `${what}: ${JSON.stringify(answer)}`)
        if (answer.status !== 'found') continue
        const chunks: Uint8Array[] = []
        for await (const chunk of answer.value) chunks.push(chunk)
        assert.ok(Buffer.concat(chunks).equals(bytes))
      }
    })

    it('has zstd bodies of blocks of any allowed size, stored or compressed, read back exactly', async () => {
      const bytes = Buffer.concat([compressible(900 * KiB), randomBytes(200 * KiB)])
      const hashPart = hashPartOf('zstd')
      for (const block of [1, 1000, 65_537, BLOCK_MAX_NAR_BYTES]) {
        const { responder, client, streams } = await narResponder(new Map([[hashPart, bytes]]), { zstdBlock: block })
        // one byte blocks for a whole NAR would take long: a short tail of it
        const offset = block === 1 ? bytes.length - 3000 : 0
        const zstd = await fetched(client, responder, hashPart, bytes, offset, true)
        assert.ok(zstd.body.equals(bytes.subarray(offset)), `blocks of ${block}`)
        assert.equal(zstd.encoding, 'zstd')
        const raw = await fetched(client, responder, hashPart, bytes, offset, false)
        assert.ok(raw.body.equals(bytes.subarray(offset)))
        assert.equal(raw.encoding, 'identity')
        assert.equal(streams(), 1, 'a zstd body delimits itself: the stream carries the next fetch')
      }
    })
  })
})
