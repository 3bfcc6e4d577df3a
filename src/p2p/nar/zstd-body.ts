/**
 * The body of a FOUND answer with encoding ZSTD (protocols/peerix-nar-1.md, "Encodings"): a
 * sequence of blocks, each in a frame of its own (uvarint length, then the block) and holding
 * 1 to MAX_BLOCK_BYTES bytes of the NAR, either as one independent zstd frame or stored as
 * is. The body ends with the block that completes the announced length: it delimits itself.
 */
import { Uint8ArrayList } from 'uint8arraylist'
import { FormatError } from '../../nix/errors.js'
import { varintLength } from '../wire/frame.js'
import { MAX_BLOCK_BYTES } from './constants.js'
import type { ZstdCodec } from './compression.js'

export const BLOCK_STORED = 0
export const BLOCK_ZSTD = 1

/** The largest block frame body: a kind byte, a size (uvarint) and MAX_BLOCK_BYTES. */
export const MAX_BLOCK_FRAME_BYTES = 1 + varintLength(MAX_BLOCK_BYTES) + MAX_BLOCK_BYTES

/**
 * After a block that zstd did not shrink (compressed files, random data) the next blocks are
 * stored without trying: 1, then 2, 4 … up to this many (16 MiB); a block that shrinks ends
 * the back-off. zstd level 1 spends as long on a block it cannot shrink as on one it can
 * (random data: 94–155 MiB/s), so an incompressible NAR costs about 1/64 of that.
 */
export const MAX_BACKOFF_BLOCKS = 64

/**
 * Turns a NAR's bytes into blocks, one encoder per body. Blocks are cut at MAX_BLOCK_BYTES
 * whatever the sizes of the writes: the NAR writer's small pieces (headers, small files) would
 * otherwise make small blocks, each costing a compression context (measured: 72–78 MiB/s
 * instead of 92–103 on loopback with a 3 KiB block after every 256 KiB).
 */
export class ZstdBodyEncoder {
  readonly #zstd: ZstdCodec
  readonly #held = new Uint8ArrayList()
  #skip = 0
  #backoff = 1
  /** Bytes of the blocks produced so far, frame prefixes included: what goes on the wire. */
  wireBytes = 0
  /** NAR bytes in the blocks produced so far (what is held for the next block is not). */
  narBytes = 0

  constructor (zstd: ZstdCodec) {
    this.#zstd = zstd
  }

  /** The blocks `data` completes; what does not fill a block waits for more, or for end(). */
  encode (data: Uint8ArrayList | Uint8Array): Uint8ArrayList {
    this.#held.append(data)
    const blocks = new Uint8ArrayList()
    while (this.#held.byteLength >= MAX_BLOCK_BYTES) {
      blocks.append(this.#block(this.#held.subarray(0, MAX_BLOCK_BYTES)))
      this.#held.consume(MAX_BLOCK_BYTES)
    }
    return blocks
  }

  /** The last block, of what is still held (nothing when the body ended on a block boundary). */
  end (): Uint8ArrayList {
    const blocks = new Uint8ArrayList()
    if (this.#held.byteLength > 0) blocks.append(this.#block(this.#held.subarray()))
    this.#held.consume(this.#held.byteLength)
    return blocks
  }

  #block (content: Uint8Array): Uint8ArrayList {
    const block = this.#encodeBlock(content)
    this.wireBytes += block.byteLength
    this.narBytes += content.byteLength
    return block
  }

  #encodeBlock (content: Uint8Array): Uint8ArrayList {
    if (this.#skip === 0) {
      const frame = this.#zstd.compress(content)
      if (frame.byteLength < content.byteLength) {
        this.#backoff = 1
        const size = encodeUvarint(content.byteLength)
        return new Uint8ArrayList(encodeUvarint(1 + size.byteLength + frame.byteLength), Uint8Array.of(BLOCK_ZSTD), size, frame)
      }
      this.#skip = this.#backoff
      this.#backoff = Math.min(this.#backoff * 2, MAX_BACKOFF_BLOCKS)
    } else {
      this.#skip -= 1
    }
    return new Uint8ArrayList(encodeUvarint(1 + content.byteLength), Uint8Array.of(BLOCK_STORED), content)
  }
}

/**
 * The NAR bytes of a compressed body of `length` bytes, block by block, from `readFrame`
 * (which must refuse frames above its limit). Throws a FormatError naming the first block that
 * breaks the rules: an unknown kind, a size of 0 or above MAX_BLOCK_BYTES, more bytes than
 * the body has left, a zstd frame that is corrupt or does not hold exactly its size.
 * `onWire` hears the size of each block frame as read.
 */
export async function * decodeZstdBody (
  readFrame: (maxLength: number) => Promise<Uint8Array>,
  length: number,
  zstd: ZstdCodec,
  onWire: (bytes: number) => void = () => {}
): AsyncGenerator<Uint8Array> {
  let produced = 0
  while (produced < length) {
    const block = await readFrame(MAX_BLOCK_FRAME_BYTES)
    onWire(varintLength(block.byteLength) + block.byteLength)
    let content: Uint8Array
    try {
      content = decodeBlock(block, length - produced, zstd)
    } catch (err) {
      throw new FormatError(`compressed NAR body: block at byte ${produced} of ${length}: ${(err as Error).message}`)
    }
    produced += content.byteLength
    yield content
  }
}

function decodeBlock (block: Uint8Array, remaining: number, zstd: ZstdCodec): Uint8Array {
  if (block.byteLength === 0) throw new FormatError('empty block')
  const kind = block[0]
  if (kind === BLOCK_STORED) {
    checkSize(block.byteLength - 1, remaining)
    return block.subarray(1)
  }
  if (kind === BLOCK_ZSTD) {
    const { value: size, bytes } = decodeUvarint(block, 1, MAX_BLOCK_BYTES)
    checkSize(size, remaining)
    return zstd.decompress(block.subarray(1 + bytes), size)
  }
  throw new FormatError(`unknown block kind ${kind}`)
}

function checkSize (size: number, remaining: number): void {
  if (size === 0) throw new FormatError('a block of 0 bytes')
  if (size > MAX_BLOCK_BYTES) throw new FormatError(`a block of ${size} bytes, above the limit of ${MAX_BLOCK_BYTES}`)
  if (size > remaining) throw new FormatError(`a block of ${size} bytes where ${remaining} are left of the announced length`)
}

export function encodeUvarint (value: number): Uint8Array {
  const out = new Uint8Array(varintLength(value))
  for (let i = 0; i < out.byteLength; i++) {
    out[i] = (value % 0x80) | (i < out.byteLength - 1 ? 0x80 : 0)
    value = Math.floor(value / 0x80)
  }
  return out
}

/** A minimal uvarint at `at` of at most `max`; throws before reading past what `max` needs. */
function decodeUvarint (bytes: Uint8Array, at: number, max: number): { value: number, bytes: number } {
  let value = 0
  for (let i = 0; i < varintLength(max); i++) {
    if (at + i >= bytes.byteLength) throw new FormatError('the block ends inside its size')
    const byte = bytes[at + i]
    value += (byte & 0x7f) * 2 ** (7 * i)
    if ((byte & 0x80) === 0) {
      if (byte === 0 && i > 0) throw new FormatError('block size is not minimally encoded')
      if (value > max) throw new FormatError(`a block of ${value} bytes, above the limit of ${max}`)
      return { value, bytes: i + 1 }
    }
  }
  throw new FormatError(`block size announces more than the limit of ${max} bytes`)
}
