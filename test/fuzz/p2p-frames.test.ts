/**
 * The frame decoders of /peerix/narinfo/1 and /peerix/nar/1 fed arbitrary bytes over real
 * libp2p streams (fixed seed), in both directions: a real peerix node answering requests that
 * are garbage, truncated, oversized or announce huge lengths; and a peerix node's client reading
 * responses that are. The node stays up and answers the next valid request, every rejection is
 * an ERROR or an error answer with a message, and a length field never makes anyone wait for
 * or buffer what it announces.
 */
import '../../src/polyfill.js'
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import fc from 'fast-check'
import { formatSha256Nix32 } from '../../src/nix/hash.js'
import { toNix32 } from '../../src/nix/nix32.js'
import { NAR_PROTOCOL } from '../../src/p2p/nar/index.js'
import { NarRequest, NarResponse } from '../../src/p2p/nar/pb/message.js'
import { NARINFO_PROTOCOL } from '../../src/p2p/narinfo/index.js'
import { NarinfoRequest, NarinfoResponse } from '../../src/p2p/narinfo/pb/message.js'
import { encodeFrame } from '../../src/p2p/wire/frame.js'
import { StreamReader } from '../../src/p2p/wire/stream-reader.js'
import { MemorySource, Nodes } from '../p2p/node-helpers.js'
import type { PeerixNode } from '../../src/p2p/node.js'
import type { Libp2p, Stream } from '@libp2p/interface'

const SEED = 5005
const RUNS = 250

const hashPartOf = (label: string): string => toNix32(createHash('sha256').update(label).digest().subarray(0, 20))
const NAR = Uint8Array.from(createHash('sha512').update('nar').digest())
const NAR_HASH = formatSha256Nix32(createHash('sha256').update(NAR).digest())
const KNOWN = hashPartOf('known')

function varintBytes (n: bigint): Uint8Array {
  const out: number[] = []
  do { out.push(Number(n & 0x7fn) | (n >= 0x80n ? 0x80 : 0)); n >>= 7n } while (n > 0n)
  return Uint8Array.from(out)
}

/**
 * A response message written by hand, so that it can carry what protons will not encode (a
 * status outside the enum): field 1 the status, field 2 `second` (wire type 2 = bytes, 0 =
 * varint), field 3 the message.
 */
function protobuf (status: number, secondWireType: 0 | 2, second: Uint8Array, message: string): Uint8Array {
  const text = Buffer.from(message)
  return Uint8Array.from([
    0x08, ...varintBytes(BigInt(status)),
    0x10 | secondWireType, ...(secondWireType === 2 ? varintBytes(BigInt(second.length)) : []), ...second,
    0x1a, ...varintBytes(BigInt(text.length)), ...text
  ])
}

/** A varint as bytes, possibly longer than any limit (up to 2^70), possibly not minimal. */
const varint = fc.oneof(
  fc.bigInt({ min: 0n, max: (1n << 70n) }).map(varintBytes),
  fc.uint8Array({ minLength: 1, maxLength: 12 }).map(b => Uint8Array.from([...b].map((x, i) => i < b.length - 1 ? x | 0x80 : x)))
)

/** Bytes a peer might send instead of a frame: random, a varint then random, or a protobuf with odd fields. */
function frames (valid: fc.Arbitrary<Uint8Array>): fc.Arbitrary<Uint8Array> {
  return fc.oneof(
    fc.uint8Array({ maxLength: 600 }),
    fc.tuple(varint, fc.uint8Array({ maxLength: 300 })).map(([v, body]) => Uint8Array.from([...v, ...body])),
    fc.uint8Array({ maxLength: 300 }).map(body => encodeFrame(body)),
    valid.map(body => encodeFrame(body)),
    fc.tuple(valid, fc.nat()).map(([body, cut]) => encodeFrame(body).subarray(0, cut % (body.length + 2)))
  )
}

const hashLike = fc.oneof(fc.constant(KNOWN), fc.string({ maxLength: 40 }), fc.stringMatching(/^[0-9a-z]{32}$/))
const narinfoRequest = fc.record({ hashPart: hashLike }).map(r => NarinfoRequest.encode(r))
const narRequest = fc.record({
  hashPart: hashLike,
  narHash: fc.oneof(fc.constant(NAR_HASH), fc.string({ maxLength: 80 })),
  offset: fc.oneof(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), fc.bigInt({ min: 0n, max: 200n }))
}).map(r => NarRequest.encode(r))

/** Everything the remote sent until it closed or reset (bounded: more than `max` is a failure). */
async function drain (stream: Stream, max: number, ms: number): Promise<Uint8Array> {
  const reader = new StreamReader(stream)
  const chunks: Uint8Array[] = []
  let total = 0
  try {
    for await (const chunk of reader.readBody(Number.MAX_SAFE_INTEGER, { idleTimeout: ms })) {
      chunks.push(chunk)
      total += chunk.byteLength
      assert.ok(total <= max, `the node sent more than ${max} bytes to garbage`)
    }
  } catch (err) {
    // a reset after the answer is how a responder ends a malformed exchange; silence is not
    if (/sent nothing/.test((err as Error).message)) throw err
  } finally {
    reader.dispose()
  }
  return Uint8Array.from(Buffer.concat(chunks))
}

/** The first frame of `bytes` (the response header), or undefined when there is none. */
function firstFrame (bytes: Uint8Array): Uint8Array | undefined {
  let length = 0
  for (let i = 0; i < Math.min(bytes.length, 5); i++) {
    length += (bytes[i] & 0x7f) * 2 ** (7 * i)
    if ((bytes[i] & 0x80) === 0) return bytes.length >= i + 1 + length ? bytes.subarray(i + 1, i + 1 + length) : undefined
  }
  return undefined
}

describe('fuzz: /peerix/narinfo/1 and /peerix/nar/1 frame decoders over real libp2p streams (fixed seed)', function () {
  this.timeout(180_000)
  const nodes = new Nodes()
  let server: PeerixNode
  let asker: PeerixNode
  let raw: Libp2p

  before(async () => {
    const source = new MemorySource()
    source.infos.set(KNOWN, {
      storePath: `/nix/store/${KNOWN}-known`, url: `nar/${KNOWN}.nar`, compression: 'none', narHash: NAR_HASH, narSize: NAR.length, references: [], sigs: []
    })
    source.nars.set(KNOWN, NAR)
    server = await nodes.peerix({ source })
    asker = await nodes.peerix({ narinfoTimeout: 3_000 })
    raw = await nodes.plain()
    await raw.dial(server.getMultiaddrs()[0])
    await asker.dial(server.getMultiaddrs()[0])
  })

  after(async () => { await nodes.stopAll() })

  async function assertServerAnswers (): Promise<void> {
    const info = await asker.services.narinfo.query(server.peerId, KNOWN)
    assert.equal(info.status, 'found', `the node no longer answers: ${JSON.stringify(info)}`)
    const nar = await asker.services.nar.fetch(server.peerId, KNOWN, NAR_HASH, 0)
    assert.equal(nar.status, 'found')
    const got: Uint8Array[] = []
    if (nar.status === 'found') for await (const c of nar.value) got.push(c)
    assert.deepEqual(Uint8Array.from(Buffer.concat(got)), NAR)
  }

  for (const { protocol, request, decode, maxAnswer } of [
    { protocol: NARINFO_PROTOCOL, request: narinfoRequest, decode: (b: Uint8Array) => NarinfoResponse.decode(b), maxAnswer: 64 * 1024 },
    { protocol: NAR_PROTOCOL, request: narRequest, decode: (b: Uint8Array) => NarResponse.decode(b), maxAnswer: 64 * 1024 }
  ]) {
    it(`${protocol}: a real node answers arbitrary request bytes with a status (ERROR with a message for garbage) and keeps serving`, async () => {
      const statuses = new Map<string, number>()
      await fc.assert(fc.asyncProperty(frames(request), async (bytes) => {
        const stream = await raw.dialProtocol(server.peerId, protocol)
        stream.send(bytes)
        await stream.close().catch(() => {})
        const reply = await drain(stream, maxAnswer, 5_000)
        const frame = firstFrame(reply)
        if (frame === undefined) {
          statuses.set('cut', (statuses.get('cut') ?? 0) + 1)
          return
        }
        const response = decode(frame)
        const name = String(response.status)
        statuses.set(name, (statuses.get(name) ?? 0) + 1)
        assert.ok(['FOUND', 'ABSENT', 'ERROR'].includes(name), `status ${name}`)
        if (name === 'ERROR') assert.match(response.message, /^malformed request: .{10,}/)
      }), { seed: SEED, numRuns: RUNS })
      console.log(`      ${RUNS} requests: ${[...statuses].map(([k, v]) => `${k}×${v}`).join(' ')}`)
      assert.ok((statuses.get('ERROR') ?? 0) > RUNS / 4, 'too few malformed requests reached the decoder')
      await assertServerAnswers()
    })
  }

  it('a huge length prefix, then 8 MiB of junk: ERROR before the frame arrives (nothing waits for the announced bytes), and the node keeps serving', async () => {
    for (const protocol of [NARINFO_PROTOCOL, NAR_PROTOCOL]) {
      const stream = await raw.dialProtocol(server.peerId, protocol)
      const reader = new StreamReader(stream)
      const t0 = Date.now()
      stream.send(Uint8Array.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]))
      const answer = NarinfoResponse.decode(await reader.readFrame(4096, { idleTimeout: 5_000 }))
      assert.equal(answer.status, NarinfoResponse.Status.ERROR)
      assert.match(answer.message, /more than the limit of \d+ bytes/)
      assert.ok(Date.now() - t0 < 5_000)
      const junk = new Uint8Array(1024 * 1024)
      for (let i = 0; i < 8 && stream.status === 'open'; i++) stream.send(junk)
      reader.dispose()
      stream.abort(new Error('done'))
    }
    await assertServerAnswers()
  })

  /** A node whose handler for `protocol` answers every stream with the next of `replies`. */
  async function liar (protocol: string, replies: () => Uint8Array | undefined): Promise<Libp2p> {
    const node = await nodes.plain()
    await node.handle(protocol, async (stream) => {
      try {
        const reply = replies()
        if (reply !== undefined) stream.send(reply)
        await stream.close()
      } catch (err) { stream.abort(err as Error) }
    })
    await asker.dial(node.getMultiaddrs()[0])
    return node
  }

  it('a peerix client reads arbitrary narinfo responses as an answer, never a throw', async () => {
    let next: Uint8Array | undefined
    const node = await liar(NARINFO_PROTOCOL, () => next)
    const response = fc.tuple(fc.integer({ min: 0, max: 6 }), fc.string({ maxLength: 200 }), fc.string({ maxLength: 100 }))
      .map(([status, narinfo, message]) => protobuf(status, 2, Buffer.from(narinfo), message))
    const kinds = new Map<string, number>()
    await fc.assert(fc.asyncProperty(frames(response), async (bytes) => {
      next = bytes
      const answer = await asker.services.narinfo.query(node.peerId, KNOWN, { signal: AbortSignal.timeout(5_000) })
      kinds.set(answer.status, (kinds.get(answer.status) ?? 0) + 1)
      if (answer.status === 'error') assert.ok(answer.message.length > 5)
      if (answer.status === 'found') assert.ok(answer.value.length > 0)
    }), { seed: SEED, numRuns: RUNS })
    console.log(`      ${RUNS} responses: ${[...kinds].map(([k, v]) => `${k}×${v}`).join(' ')}`)
    assert.ok((kinds.get('error') ?? 0) > RUNS / 4)
  })

  it('a peerix client reads arbitrary NAR responses as an answer and a body that ends exactly or throws', async () => {
    let next: Uint8Array | undefined
    const node = await liar(NAR_PROTOCOL, () => next)
    const header = fc.tuple(fc.integer({ min: 0, max: 6 }), fc.oneof(fc.bigInt({ min: 0n, max: 64n }), fc.bigInt({ min: 0n, max: (1n << 64n) - 1n })), fc.string({ maxLength: 100 }))
      .map(([status, length, message]) => protobuf(status, 0, varintBytes(length), message))
    const withBody = fc.tuple(header, fc.uint8Array({ maxLength: 100 })).map(([h, body]) => Uint8Array.from([...encodeFrame(h), ...body]))
    const kinds = new Map<string, number>()
    await fc.assert(fc.asyncProperty(fc.oneof(frames(header), withBody), async (bytes) => {
      next = bytes
      const answer = await asker.services.nar.fetch(node.peerId, KNOWN, NAR_HASH, 0, { signal: AbortSignal.timeout(5_000) })
      let kind: string = answer.status
      if (answer.status === 'found') {
        let received = 0
        try {
          for await (const chunk of answer.value) received += chunk.byteLength
          assert.equal(received, answer.value.length, 'the body ended without its announced bytes')
          kind = 'found-complete'
        } catch (err) {
          assert.ok((err as Error).message.length > 5)
          kind = 'found-rejected'
        }
      }
      if (answer.status === 'error') assert.ok(answer.message.length > 5)
      kinds.set(kind, (kinds.get(kind) ?? 0) + 1)
    }), { seed: SEED, numRuns: RUNS })
    console.log(`      ${RUNS} responses: ${[...kinds].map(([k, v]) => `${k}×${v}`).join(' ')}`)
    assert.ok((kinds.get('found-rejected') ?? 0) > 0 && (kinds.get('error') ?? 0) > 0)
  })
})
