/**
 * The peerix wire as protocols/*.md describe it, written from the spec text alone, for the
 * tests that hold a real peerix node to the specs (spec-conformance.test.ts,
 * spec-index-conformance.test.ts): unsigned varints, protobuf fields by number and wire
 * type, frames, a reader of a stream's raw bytes, the zstd block body of /peerix/nar/1 and the
 * Golomb–Rice key sets and summary keys of /peerix/index/1. Nothing here comes from src/p2p:
 * no generated protobuf code, no StreamReader, no frame or key-set codec; only zstd itself (a
 * library) is peerix's.
 */
import type { Stream } from '@libp2p/interface'

// ---------------------------------------------------------------------------------------------
// Unsigned varints and protobuf fields

/** An unsigned varint: 7 bits per byte, least significant group first, minimal. */
export function uvarint (value: number | bigint): Buffer {
  let v = BigInt(value)
  if (v < 0n) throw new RangeError('negative varint')
  const out: number[] = []
  while (v >= 0x80n) {
    out.push(Number(v & 0x7fn) | 0x80)
    v >>= 7n
  }
  out.push(Number(v))
  return Buffer.from(out)
}

/** A uvarint at `at` of `bytes`: its value and the offset after it; throws when it is cut off. */
export function readUvarint (bytes: Uint8Array, at: number): { value: bigint, next: number } {
  let value = 0n
  for (let i = 0; i < 10; i++) {
    if (at + i >= bytes.length) throw new Error('varint cut off')
    const byte = bytes[at + i]
    value |= BigInt(byte & 0x7f) << BigInt(7 * i)
    if ((byte & 0x80) === 0) return { value, next: at + i + 1 }
  }
  throw new Error('varint longer than 10 bytes')
}

/** A varint field (wire type 0). proto3 leaves a field at its default (0) out: so do callers. */
export function varintField (field: number, value: number | bigint | boolean): Buffer {
  return Buffer.concat([uvarint(field << 3), uvarint(typeof value === 'boolean' ? (value ? 1 : 0) : value)])
}

/** A length-delimited field (wire type 2): a string as UTF-8, bytes, or an embedded message. */
export function bytesField (field: number, value: string | Uint8Array): Buffer {
  const bytes = typeof value === 'string' ? Buffer.from(value, 'utf8') : value
  return Buffer.concat([uvarint((field << 3) | 2), uvarint(bytes.length), bytes])
}

export interface PbField {
  field: number
  wireType: number
  /** Wire type 0. */
  varint?: bigint
  /** Wire type 2 (and the raw 8 or 4 bytes of types 1 and 5). */
  bytes?: Buffer
}

/** A protobuf message as its fields in wire order; throws on anything that is not protobuf. */
export function parseMessage (body: Uint8Array): PbField[] {
  const fields: PbField[] = []
  let at = 0
  while (at < body.length) {
    const tag = readUvarint(body, at)
    at = tag.next
    const field = Number(tag.value >> 3n)
    const wireType = Number(tag.value & 7n)
    if (field === 0) throw new Error('field number 0')
    if (wireType === 0) {
      const v = readUvarint(body, at)
      fields.push({ field, wireType, varint: v.value })
      at = v.next
    } else if (wireType === 2) {
      const len = readUvarint(body, at)
      const end = len.next + Number(len.value)
      if (end > body.length) throw new Error('length-delimited field cut off')
      fields.push({ field, wireType, bytes: Buffer.from(body.subarray(len.next, end)) })
      at = end
    } else if (wireType === 1 || wireType === 5) {
      const end = at + (wireType === 1 ? 8 : 4)
      if (end > body.length) throw new Error('fixed field cut off')
      fields.push({ field, wireType, bytes: Buffer.from(body.subarray(at, end)) })
      at = end
    } else {
      throw new Error(`wire type ${wireType}`)
    }
  }
  return fields
}

/** The field numbered `field` (proto3: the last one wins), checked to be of `wireType`. */
function last (fields: PbField[], field: number, wireType: number): PbField | undefined {
  const found = fields.filter(f => f.field === field)
  const chosen = found[found.length - 1]
  if (chosen !== undefined && chosen.wireType !== wireType) throw new Error(`field ${field} has wire type ${chosen.wireType}, expected ${wireType}`)
  return chosen
}

/** A varint field's value, 0 when left out. */
export function varintOf (fields: PbField[], field: number): bigint {
  return last(fields, field, 0)?.varint ?? 0n
}

/** A length-delimited field's bytes, empty when left out. */
export function bytesOf (fields: PbField[], field: number): Buffer {
  return last(fields, field, 2)?.bytes ?? Buffer.alloc(0)
}

/** A string field, '' when left out. */
export function stringOf (fields: PbField[], field: number): string {
  return bytesOf(fields, field).toString('utf8')
}

/** Whether the message carries field `field` at all. */
export function has (fields: PbField[], field: number): boolean {
  return fields.some(f => f.field === field)
}

// ---------------------------------------------------------------------------------------------
// Frames and a stream's raw bytes

/** A frame: the body's length as an unsigned varint, then the body. */
export function frame (body: Uint8Array): Buffer {
  return Buffer.concat([uvarint(body.length), body])
}

/**
 * A stream's incoming bytes, read as the specs describe them: so many bytes, a frame under a
 * limit, and how the stream ended. Listens from construction on; never pauses the stream.
 */
export class RawReader {
  #buffer = Buffer.alloc(0)
  #remoteEnded: boolean
  #closeError?: Error
  #closed = false
  #wake?: () => void

  constructor (readonly stream: Stream) {
    this.#remoteEnded = stream.remoteWriteStatus === 'closed'
    stream.addEventListener('message', (evt) => {
      const data = evt.data instanceof Uint8Array ? evt.data : evt.data.subarray()
      this.#buffer = Buffer.concat([this.#buffer, data])
      this.#notify()
    })
    stream.addEventListener('remoteCloseWrite', () => { this.#remoteEnded = true; this.#notify() })
    stream.addEventListener('close', (evt) => {
      this.#closed = true
      if (evt.error != null) this.#closeError = evt.error
      this.#notify()
    })
  }

  /** Bytes received and not read yet. */
  get buffered (): number {
    return this.#buffer.length
  }

  /** Exactly `n` bytes; throws when the stream ends or is reset first, or after `timeoutMs`. */
  async bytes (n: number, timeoutMs = 10_000): Promise<Buffer> {
    const deadline = Date.now() + timeoutMs
    while (this.#buffer.length < n) {
      if (this.#closeError !== undefined) throw new Error(`the stream was reset: ${this.#closeError.message}`)
      if (this.#remoteEnded || this.#closed) throw new Error(`the stream ended after ${this.#buffer.length} of ${n} bytes`)
      await this.#next(deadline - Date.now())
    }
    const out = this.#buffer.subarray(0, n)
    this.#buffer = this.#buffer.subarray(n)
    return Buffer.from(out)
  }

  /** The body of the next frame; throws when its length is above `max` (before reading it). */
  async frame (max: number, timeoutMs = 10_000): Promise<Buffer> {
    let length = 0n
    for (let i = 0; ; i++) {
      if (i === 10) throw new Error('frame length prefix too long')
      const [byte] = await this.bytes(1, timeoutMs)
      length |= BigInt(byte & 0x7f) << BigInt(7 * i)
      if ((byte & 0x80) === 0) break
    }
    if (length > BigInt(max)) throw new Error(`frame of ${length} bytes above the limit of ${max}`)
    return await this.bytes(Number(length), timeoutMs)
  }

  /**
   * How the remote side ended: 'closed' when it closed its writing side cleanly with nothing
   * unread, 'reset' when the stream was reset. Throws after `timeoutMs`, or when bytes are
   * left unread (the peer sent more than expected).
   */
  async end (timeoutMs = 10_000): Promise<'closed' | 'reset'> {
    const deadline = Date.now() + timeoutMs
    while (true) {
      if (this.#closeError !== undefined || this.stream.status === 'reset' || this.stream.status === 'aborted') return 'reset'
      if (this.#buffer.length > 0) throw new Error(`${this.#buffer.length} bytes more than expected arrived`)
      if (this.#remoteEnded || this.#closed) return 'closed'
      await this.#next(deadline - Date.now())
    }
  }

  /**
   * Waits for the next byte: true once one is here, false when the remote closed its writing
   * side first (a requester done with the stream). Throws on a reset or after `timeoutMs`.
   */
  async more (timeoutMs = 30_000): Promise<boolean> {
    const deadline = Date.now() + timeoutMs
    while (this.#buffer.length === 0) {
      if (this.#closeError !== undefined) throw new Error(`the stream was reset: ${this.#closeError.message}`)
      if (this.#remoteEnded || this.#closed) return false
      await this.#next(deadline - Date.now())
    }
    return true
  }

  /** True when nothing arrives (and the stream does not end) for `ms`. */
  async quietFor (ms: number): Promise<boolean> {
    const before = this.#buffer.length
    await new Promise(resolve => setTimeout(resolve, ms))
    return this.#buffer.length === before && !this.#remoteEnded && !this.#closed
  }

  #notify (): void {
    const wake = this.#wake
    this.#wake = undefined
    wake?.()
  }

  async #next (timeoutMs: number): Promise<void> {
    if (timeoutMs <= 0) throw new Error('timed out waiting for the peer')
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => { this.#wake = undefined; reject(new Error('timed out waiting for the peer')) }, timeoutMs)
      this.#wake = () => { clearTimeout(timer); resolve() }
    })
  }
}

// ---------------------------------------------------------------------------------------------
// /peerix/nar/1 zstd bodies ("Encodings")

export const BLOCK_MAX_NAR_BYTES = 262_144
export const BLOCK_MAX_FRAME_BYTES = 262_148

/** Frame_Content_Size of a zstd frame header (RFC 8878 3.1.1.1), undefined when not stated. */
export function zstdContentSize (frame: Uint8Array): number | undefined {
  if (frame.length < 5) throw new Error('not a zstd frame header')
  const buf = Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength)
  if (buf.readUInt32LE(0) !== 0xfd2fb528) throw new Error('no zstd magic number')
  const descriptor = buf[4]
  const fcsFlag = descriptor >> 6
  const singleSegment = (descriptor >> 5) & 1
  const didFlag = descriptor & 3
  const didBytes = [0, 1, 2, 4][didFlag]
  const fcsBytes = fcsFlag === 0 ? singleSegment : [1, 2, 4, 8][fcsFlag]
  if (fcsBytes === 0) return undefined
  const at = 5 + (singleSegment === 1 ? 0 : 1) + didBytes
  if (buf.length < at + fcsBytes) throw new Error('zstd header cut off')
  if (fcsBytes === 1) return buf[at]
  if (fcsBytes === 2) return buf.readUInt16LE(at) + 256
  if (fcsBytes === 4) return buf.readUInt32LE(at)
  return Number(buf.readBigUInt64LE(at))
}

export interface BlockCodec {
  compress: (content: Uint8Array) => Uint8Array
  /** `frame`'s content, never more than `size` bytes. */
  decompress: (frame: Uint8Array, size: number) => Uint8Array
}

/** One block frame of a ZSTD body: stored (kind 0) or one zstd frame (kind 1). */
export function encodeBlock (content: Uint8Array, zstd?: BlockCodec): Buffer {
  if (content.length < 1 || content.length > BLOCK_MAX_NAR_BYTES) throw new RangeError('block size')
  if (zstd !== undefined) {
    const compressed = zstd.compress(content)
    return frame(Buffer.concat([Buffer.of(1), uvarint(content.length), compressed]))
  }
  return frame(Buffer.concat([Buffer.of(0), content]))
}

export interface DecodedBlock { kind: number, frameBytes: number, content: Buffer }

/**
 * Reads the blocks of a ZSTD body of `length` NAR bytes, checking every rule of the spec
 * before decompressing anything; throws naming the rule a block breaks.
 */
export async function readZstdBody (reader: RawReader, length: number, zstd: BlockCodec): Promise<DecodedBlock[]> {
  const blocks: DecodedBlock[] = []
  let produced = 0
  while (produced < length) {
    const body = await reader.frame(BLOCK_MAX_FRAME_BYTES)
    if (body.length === 0) throw new Error('empty block')
    const kind = body[0]
    let content: Buffer
    if (kind === 0) {
      content = body.subarray(1)
      checkBlockSize(content.length, length - produced)
    } else if (kind === 1) {
      const size = readUvarint(body, 1)
      if (size.next - 1 > 1 && body[size.next - 1] === 0) throw new Error('size not minimal')
      const n = Number(size.value)
      checkBlockSize(n, length - produced)
      const zframe = body.subarray(size.next)
      if (zstdContentSize(zframe) !== n) throw new Error('zstd frame does not state the block size')
      content = Buffer.from(zstd.decompress(zframe, n))
      if (content.length !== n) throw new Error('zstd frame does not hold its size')
    } else {
      throw new Error(`block kind ${kind}`)
    }
    blocks.push({ kind, frameBytes: uvarint(body.length).length + body.length, content })
    produced += content.length
  }
  return blocks
}

function checkBlockSize (size: number, remaining: number): void {
  if (size < 1 || size > BLOCK_MAX_NAR_BYTES) throw new Error(`block of ${size} NAR bytes`)
  if (size > remaining) throw new Error(`block of ${size} NAR bytes, ${remaining} left`)
}

// ---------------------------------------------------------------------------------------------
// /peerix/index/1: summary keys and Golomb–Rice key sets

const NIX32 = '0123456789abcdfghijklmnpqrsvwxyz'

/**
 * The summary key of a hash part: its 32 nix32 characters decoded as Nix decodes them (the
 * last character holds the lowest 5 bits of byte 0 and up) to 20 bytes, bytes 0–3 big-endian.
 */
export function specSummaryKey (hashPart: string): number {
  if (hashPart.length !== 32) throw new Error('not a hash part')
  const bytes = new Uint8Array(20)
  for (let n = 0; n < 32; n++) {
    const digit = NIX32.indexOf(hashPart[31 - n])
    if (digit < 0) throw new Error('not nix32')
    const b = n * 5
    const i = b >> 3
    const j = b & 7
    bytes[i] |= (digit << j) & 0xff
    if (i + 1 < 20) bytes[i + 1] |= digit >> (8 - j)
  }
  return Buffer.from(bytes).readUInt32BE(0)
}

/** The Rice parameter a sender picks: floor(log2(2^32 / count)), within 0 to 31. */
export function specRiceBits (count: number): number {
  if (count === 0) return 0
  let k = 0
  // the largest k with 2^k <= 2^32 / count, i.e. count * 2^k <= 2^32, without floating point
  while (k < 31 && BigInt(count) << BigInt(k + 1) <= 1n << 32n) k++
  return k
}

/** A KeySet's data: per key its gap as `gap >> k` ones, a zero, the low k bits; zero-padded. */
export function specEncodeKeys (keys: number[], riceBits: number): Buffer {
  const bits: number[] = []
  let previous = 0
  for (const key of keys) {
    const gap = key - previous
    previous = key
    const quotient = Math.floor(gap / 2 ** riceBits)
    for (let i = 0; i < quotient; i++) bits.push(1)
    bits.push(0)
    for (let i = riceBits - 1; i >= 0; i--) bits.push(Math.floor(gap / 2 ** i) % 2)
  }
  const out = Buffer.alloc(Math.ceil(bits.length / 8))
  bits.forEach((bit, i) => { if (bit === 1) out[i >> 3] |= 0x80 >> (i & 7) })
  return out
}

/**
 * The keys of a KeySet, rejecting what the spec says a decoder rejects: count above `maxCount`,
 * rice_bits above 31, a unary run of 2^(32 − rice_bits) or more, a repeated key, a key of 2^32
 * or more, data ending inside a key, more than the padding after the last key, non-zero padding.
 */
export function specDecodeKeys (count: number, riceBits: number, data: Uint8Array, maxCount = 1_000_000): number[] {
  if (count > maxCount) throw new Error('count above the bound')
  if (riceBits > 31) throw new Error('rice_bits above 31')
  const total = data.length * 8
  let at = 0
  const bit = (): number => {
    if (at >= total) throw new Error('data ends inside a key')
    const value = (data[at >> 3] >> (7 - (at & 7))) & 1
    at++
    return value
  }
  const keys: number[] = []
  let previous = 0
  for (let i = 0; i < count; i++) {
    let quotient = 0
    while (bit() === 1) {
      quotient++
      if (quotient >= 2 ** (32 - riceBits)) throw new Error('unary run too long')
    }
    let remainder = 0
    for (let b = 0; b < riceBits; b++) remainder = remainder * 2 + bit()
    const gap = quotient * 2 ** riceBits + remainder
    if (i > 0 && gap === 0) throw new Error('repeated key')
    const key = previous + gap
    if (key >= 2 ** 32) throw new Error('key of 2^32 or more')
    keys.push(key)
    previous = key
  }
  if (total - at >= 8) throw new Error('more than the padding after the last key')
  while (at < total) if (bit() !== 0) throw new Error('non-zero padding')
  return keys
}
