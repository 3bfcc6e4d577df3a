/**
 * The Golomb–Rice key-set codec as it was first written, one method call per bit: the
 * reference the word-at-a-time codec in src/p2p/index/golomb.ts must agree with bit for bit
 * (test/p2p/index-summary-codec.test.ts), and the baseline of bench/summary-codec.ts. Only the
 * names and the `riceBits` parameter differ from the original.
 */
import { FormatError } from '../../src/nix/errors.js'
import { riceBitsFor, type EncodedKeySet } from '../../src/p2p/index/golomb.js'

export function encodeKeySetBitByBit (keys: Uint32Array, riceBits = riceBitsFor(keys.length)): EncodedKeySet {
  const writer = new BitWriter(keys.length * (riceBits + 2))
  let previous = 0
  for (let i = 0; i < keys.length; i++) {
    const gap = keys[i] - previous
    previous = keys[i]
    writer.unary(Math.floor(gap / 2 ** riceBits))
    writer.bits(gap % 2 ** riceBits, riceBits)
  }
  return { count: keys.length, riceBits, data: writer.finish() }
}

/**
 * Decodes what a peer sent, checking everything: at most `maxCount` keys, each above the
 * one before and below 2^32, every bit accounted for. A FormatError says what is wrong.
 */
export function decodeKeySetBitByBit (set: EncodedKeySet, maxCount: number): Uint32Array {
  const { count, riceBits, data } = set
  if (!Number.isSafeInteger(count) || count < 0 || count > maxCount) throw new FormatError(`key set of ${count} keys: expected at most ${maxCount}`)
  if (!Number.isInteger(riceBits) || riceBits < 0 || riceBits > 31) throw new FormatError(`key set Rice parameter ${riceBits}: expected 0 to 31`)
  const reader = new BitReader(data)
  const keys = new Uint32Array(count)
  let previous = 0
  for (let i = 0; i < count; i++) {
    const quotient = reader.unary(2 ** (32 - riceBits))
    const key = previous + quotient * 2 ** riceBits + reader.bits(riceBits)
    if (i > 0 && key === previous) throw new FormatError(`key set repeats key ${key} at position ${i}`)
    if (key >= 2 ** 32) throw new FormatError(`key set key ${i} exceeds 32 bits`)
    keys[i] = key
    previous = key
  }
  reader.finish()
  return keys
}

class BitWriter {
  #bytes: Uint8Array<ArrayBuffer>
  #bit = 0

  constructor (expectedBits: number) {
    this.#bytes = new Uint8Array(Math.ceil(expectedBits / 8) + 8)
  }

  unary (ones: number): void {
    for (let i = 0; i < ones; i++) this.#push(1)
    this.#push(0)
  }

  bits (value: number, width: number): void {
    for (let b = width - 1; b >= 0; b--) this.#push(Math.floor(value / 2 ** b) & 1)
  }

  finish (): Uint8Array<ArrayBuffer> {
    return this.#bytes.slice(0, Math.ceil(this.#bit / 8))
  }

  #push (bit: number): void {
    const byte = this.#bit >>> 3
    if (byte === this.#bytes.length) {
      const grown = new Uint8Array(this.#bytes.length * 2)
      grown.set(this.#bytes)
      this.#bytes = grown
    }
    if (bit === 1) this.#bytes[byte] |= 0x80 >>> (this.#bit & 7)
    this.#bit++
  }
}

class BitReader {
  readonly #bytes: Uint8Array
  #bit = 0

  constructor (bytes: Uint8Array) {
    this.#bytes = bytes
  }

  /** A run of one-bits ended by a zero-bit; runs of `limit` or more cannot be a 32-bit gap. */
  unary (limit: number): number {
    let ones = 0
    while (this.#next() === 1) {
      if (++ones >= limit) throw new FormatError('key set gap exceeds 32 bits')
    }
    return ones
  }

  bits (width: number): number {
    let value = 0
    for (let b = 0; b < width; b++) value = value * 2 + this.#next()
    return value
  }

  /** Only zero padding may follow the last key, and less than a byte of it. */
  finish (): void {
    if (Math.ceil(this.#bit / 8) !== this.#bytes.length) throw new FormatError(`key set has ${this.#bytes.length - Math.ceil(this.#bit / 8)} bytes after its last key`)
    while ((this.#bit & 7) !== 0) {
      if (this.#next() !== 0) throw new FormatError('key set padding is not zero')
    }
  }

  #next (): number {
    const byte = this.#bit >>> 3
    if (byte >= this.#bytes.length) throw new FormatError('key set data ends inside a key')
    const bit = (this.#bytes[byte] >>> (7 - (this.#bit & 7))) & 1
    this.#bit++
    return bit
  }
}
