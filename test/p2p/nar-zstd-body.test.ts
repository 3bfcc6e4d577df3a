/**
 * The zstd block stream of /peerix/nar/1 bodies (src/p2p/nar/zstd-body.ts, compression.ts):
 * round trips of a real NAR, stored blocks for what does not shrink, and every malformed block
 * a peer could send (bombs, oversize, truncated, garbage) rejected with a FormatError that
 * names it, never a crash or an allocation of what the block claims.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import fc from 'fast-check'
import { compress } from '@bokuweb/zstd-wasm'
import { Uint8ArrayList } from 'uint8arraylist'
import { FormatError } from '../../src/nix/errors.js'
import { narStream } from '../../src/nix/nar.js'
import { frameContentSize, loadZstd, nodeZstd, wasmZstd, type ZstdCodec } from '../../src/p2p/nar/compression.js'
import { MAX_BLOCK_BYTES } from '../../src/p2p/nar/constants.js'
import { BLOCK_STORED, BLOCK_ZSTD, decodeZstdBody, encodeUvarint, MAX_BACKOFF_BLOCKS, MAX_BLOCK_FRAME_BYTES, ZstdBodyEncoder } from '../../src/p2p/nar/zstd-body.js'

const KiB = 1024

/** Frames read from a byte buffer like StreamReader.readFrame: bounded, and failing at the end. */
function frameReader (bytes: Uint8Array): (maxLength: number) => Promise<Uint8Array> {
  let at = 0
  return async (maxLength) => {
    let length = 0
    let shift = 0
    for (;;) {
      if (at >= bytes.byteLength) throw new FormatError('the stream ended before a frame')
      const byte = bytes[at++]
      length += (byte & 0x7f) * 2 ** shift
      shift += 7
      if ((byte & 0x80) === 0) break
    }
    if (length > maxLength) throw new FormatError(`frame of ${length} bytes exceeds the limit of ${maxLength} bytes`)
    if (at + length > bytes.byteLength) throw new FormatError('the stream ended inside a frame')
    const frame = bytes.subarray(at, at + length)
    at += length
    return frame
  }
}

function frame (...parts: Uint8Array[]): Uint8Array {
  const body = Buffer.concat(parts)
  return Buffer.concat([encodeUvarint(body.byteLength), body])
}

async function decodeAll (body: Uint8Array, length: number, zstd: ZstdCodec): Promise<{ bytes: Buffer, wire: number }> {
  const chunks: Uint8Array[] = []
  let wire = 0
  for await (const chunk of decodeZstdBody(frameReader(body), length, zstd, (n) => { wire += n })) chunks.push(chunk)
  return { bytes: Buffer.concat(chunks), wire }
}

async function rejection (body: Uint8Array, length: number, zstd: ZstdCodec): Promise<FormatError> {
  try {
    await decodeAll(body, length, zstd)
  } catch (err) {
    assert.ok(err instanceof FormatError, `not a FormatError: ${String(err)}`)
    return err
  }
  throw new Error('the body decoded without an error')
}

/** Encodes `data` as the responder does: gathered pieces of `piece` bytes, one encoder per body. */
function encodeBody (zstd: ZstdCodec, data: Uint8Array, piece = 256 * KiB): { body: Buffer, encoder: ZstdBodyEncoder } {
  const encoder = new ZstdBodyEncoder(zstd)
  const parts: Uint8Array[] = []
  for (let at = 0; at < data.byteLength; at += piece) {
    parts.push(encoder.encode(new Uint8ArrayList(data.subarray(at, at + piece))).subarray())
  }
  parts.push(encoder.end().subarray())
  return { body: Buffer.concat(parts), encoder }
}

/** Counts the codec's compress calls. */
function counting (zstd: ZstdCodec): ZstdCodec & { calls: number } {
  const codec = { name: zstd.name, calls: 0, compress: (c: Uint8Array) => { codec.calls += 1; return zstd.compress(c) }, decompress: zstd.decompress }
  return codec
}

/** A NAR of real files: this checkout's sources. */
async function sourcesNar (): Promise<Buffer> {
  const chunks: Uint8Array[] = []
  for await (const chunk of narStream(fileURLToPath(new URL('../../src', import.meta.url)))) chunks.push(chunk)
  return Buffer.concat(chunks)
}

/** Each codec a peer may use; Node's own only where this Node has zstd (CI runs Node 22 too). */
const CODECS: Array<{ name: ZstdCodec['name'], load: () => Promise<ZstdCodec | undefined> }> = [
  { name: 'node', load: async () => nodeZstd() },
  { name: 'wasm', load: wasmZstd }
]

describe('zstd: the codec this Node uses, and the two reading each other\'s frames', function () {
  it('uses Node\'s own zstd where Node has it, and WebAssembly where it has not', async () => {
    assert.equal((await loadZstd()).name, typeof (await import('node:zlib') as { zstdCompressSync?: unknown }).zstdCompressSync === 'function' ? 'node' : 'wasm')
  })

  it('decodes with either codec what the other encoded', async function () {
    const node = nodeZstd()
    if (node === undefined) this.skip()
    const wasm = await wasmZstd()
    const realNar = await sourcesNar()
    for (const [from, to] of [[node, wasm], [wasm, node]]) {
      const { body } = encodeBody(from, realNar)
      assert.ok(body.byteLength < realNar.byteLength * 0.5)
      assert.ok((await decodeAll(body, realNar.byteLength, to)).bytes.equals(realNar), `${from.name} → ${to.name}`)
    }
  })
})

for (const { name, load } of CODECS) describe(`zstd bodies of /peerix/nar/1 (${name})`, function () {
  let zstd: ZstdCodec
  let realNar: Buffer

  before(async function () {
    const codec = await load()
    if (codec === undefined) this.skip()
    zstd = codec
    realNar = await sourcesNar()
  })

  it('round-trips a real NAR in fewer bytes, whatever the write sizes, in blocks cut at the limit', async () => {
    for (const piece of [100, 64 * KiB, 256 * KiB + 3000, 1024 * KiB + 7]) {
      const { body, encoder } = encodeBody(zstd, realNar, piece)
      assert.equal(encoder.wireBytes, body.byteLength)
      assert.ok(body.byteLength < realNar.byteLength * 0.5, `${body.byteLength} bytes for a NAR of ${realNar.byteLength}`)
      const { bytes, wire } = await decodeAll(body, realNar.byteLength, zstd)
      assert.ok(bytes.equals(realNar), `pieces of ${piece}`)
      assert.equal(wire, body.byteLength)
      const sizes: number[] = []
      for await (const chunk of decodeZstdBody(frameReader(body), realNar.byteLength, zstd)) sizes.push(chunk.byteLength)
      assert.deepEqual(sizes.slice(0, -1), sizes.slice(0, -1).map(() => MAX_BLOCK_BYTES), `pieces of ${piece}`)
    }
  })

  it('round-trips the edge sizes: nothing, 1 byte, one block exactly, one byte more', async () => {
    for (const size of [0, 1, MAX_BLOCK_BYTES, MAX_BLOCK_BYTES + 1]) {
      const data = realNar.subarray(0, size)
      const { body } = encodeBody(zstd, data, 2 * MAX_BLOCK_BYTES)
      assert.ok((await decodeAll(body, size, zstd)).bytes.equals(data), `${size} bytes`)
    }
  })

  it('sends incompressible data as stored blocks, trying zstd less and less often', async () => {
    const blocks = 200
    const random = randomBytes(blocks * MAX_BLOCK_BYTES)
    const codec = counting(zstd)
    const { body } = encodeBody(codec, random)
    // stored: a kind byte and a 3-byte length per block
    assert.equal(body.byteLength, random.byteLength + blocks * 4)
    assert.ok((await decodeAll(body, random.byteLength, zstd)).bytes.equals(random))
    // tries at blocks 0, 2, 5, 10, 19, 36, 69, 134, 199 (back-off 1, 2, 4 … 64, 64)
    assert.equal(codec.calls, 9)
    assert.equal(MAX_BACKOFF_BLOCKS, 64)
  })

  it('compresses again after an incompressible stretch', async () => {
    const compressible = Buffer.concat(Array.from({ length: 8 }, () => realNar))
    const mixed = Buffer.concat([randomBytes(4 * MAX_BLOCK_BYTES), compressible])
    const { body } = encodeBody(zstd, mixed)
    assert.ok(body.byteLength < 4 * MAX_BLOCK_BYTES + compressible.byteLength * 0.6, `${body.byteLength} bytes`)
    assert.ok((await decodeAll(body, mixed.byteLength, zstd)).bytes.equals(mixed))
  })

  it('reads Frame_Content_Size in each of its forms', () => {
    for (const size of [1, 255, 256, 65791, 65792, MAX_BLOCK_BYTES, 5_000_000]) {
      assert.equal(frameContentSize(compress(new Uint8Array(size), 1)), size)
    }
  })

  it('rejects a bomb: a frame of far more than the block declares, without decompressing it', async () => {
    const bomb = compress(new Uint8Array(64 * 1024 * 1024), 1)
    assert.ok(bomb.byteLength < MAX_BLOCK_FRAME_BYTES)
    const err = await rejection(frame(Uint8Array.of(BLOCK_ZSTD), encodeUvarint(1000), bomb), 1000, zstd)
    assert.match(err.message, /block at byte 0 of 1000: zstd frame declares 67108864 content bytes, the block 1000/)
  })

  it('rejects a frame whose header lies about its content size', async () => {
    const honest = compress(realNar.subarray(0, 20_000), 1)
    assert.equal(frameContentSize(honest), 20_000)
    const lying = Uint8Array.from(honest)
    // single-segment, 2-byte Frame_Content_Size right after the descriptor: value + 256
    assert.equal(lying[4] >> 6, 1)
    new DataView(lying.buffer).setUint16(5, 1000 - 256, true)
    const err = await rejection(frame(Uint8Array.of(BLOCK_ZSTD), encodeUvarint(1000), lying), 1000, zstd)
    assert.match(err.message, /zstd frame of \d+ bytes is corrupt or holds more than its 1000 bytes/)
  })

  it('rejects blocks above the size limit, beyond the announced length, or empty', async () => {
    const oversize = frame(Uint8Array.of(BLOCK_STORED), new Uint8Array(MAX_BLOCK_BYTES + 1))
    assert.match((await rejection(oversize, 10 * MAX_BLOCK_BYTES, zstd)).message, /a block of 262145 bytes, above the limit of 262144/)
    const zstdOversize = frame(Uint8Array.of(BLOCK_ZSTD), encodeUvarint(MAX_BLOCK_BYTES + 1), compress(new Uint8Array(MAX_BLOCK_BYTES + 1), 1))
    assert.match((await rejection(zstdOversize, 10 * MAX_BLOCK_BYTES, zstd)).message, /a block of 262145 bytes, above the limit of 262144/)
    const hugeSize = frame(Uint8Array.of(BLOCK_ZSTD), encodeUvarint(2 ** 40))
    assert.match((await rejection(hugeSize, 10 * MAX_BLOCK_BYTES, zstd)).message, /block size announces more than the limit of 262144 bytes/)
    // two blocks of 600 where the body announced 1000
    const stored = frame(Uint8Array.of(BLOCK_STORED), new Uint8Array(600))
    assert.match((await rejection(Buffer.concat([stored, stored]), 1000, zstd)).message, /block at byte 600 of 1000: a block of 600 bytes where 400 are left/)
    assert.match((await rejection(frame(Uint8Array.of(BLOCK_STORED)), 10, zstd)).message, /a block of 0 bytes/)
    assert.match((await rejection(frame(), 10, zstd)).message, /empty block/)
    const tooLong = Buffer.concat([encodeUvarint(MAX_BLOCK_FRAME_BYTES + 1), new Uint8Array(MAX_BLOCK_FRAME_BYTES + 1)])
    assert.match((await rejection(tooLong, 10 * MAX_BLOCK_BYTES, zstd)).message, /exceeds the limit of 262148 bytes/)
  })

  it('rejects truncated bodies and frames, unknown kinds and garbage', async () => {
    const { body } = encodeBody(zstd, realNar)
    assert.match((await rejection(body.subarray(0, body.byteLength - 1), realNar.byteLength, zstd)).message, /ended inside a frame/)
    const first = frameReader(body)
    const block = await first(MAX_BLOCK_FRAME_BYTES)
    assert.equal(block[0], BLOCK_ZSTD)
    const cut = frame(block.subarray(0, block.byteLength - 10))
    assert.match((await rejection(cut, realNar.byteLength, zstd)).message, /block at byte 0 of \d+: zstd frame of \d+ bytes is corrupt/)
    assert.match((await rejection(Buffer.concat([body, frame(Uint8Array.of(7, 1, 2))]), realNar.byteLength + 2, zstd)).message, /unknown block kind 7/)
    assert.match((await rejection(frame(Uint8Array.of(BLOCK_ZSTD, 0x80, 0x00)), 10, zstd)).message, /not minimally encoded/)
    assert.match((await rejection(frame(Uint8Array.of(BLOCK_ZSTD, 10, 1, 2, 3)), 10, zstd)).message, /too short for a header/)
    assert.match((await rejection(frame(Uint8Array.of(BLOCK_ZSTD, 10, 1, 2, 3, 4, 5, 6)), 10, zstd)).message, /does not start with the zstd magic number/)
  })

  it('never crashes on arbitrary blocks: each is decoded within its declared size or refused with a FormatError', async () => {
    const magic = Uint8Array.of(0x28, 0xb5, 0x2f, 0xfd)
    await fc.assert(fc.asyncProperty(
      fc.integer({ min: 1, max: MAX_BLOCK_BYTES }),
      fc.uint8Array({ maxLength: 64 }),
      async (size, garbage) => {
        const body = frame(Uint8Array.of(BLOCK_ZSTD), encodeUvarint(size), magic, garbage)
        try {
          const { bytes } = await decodeAll(body, size, zstd)
          assert.equal(bytes.byteLength, size)
        } catch (err) {
          assert.ok(err instanceof FormatError, String(err))
        }
      }
    ), { seed: 6006, numRuns: 2000 })
  })
})
