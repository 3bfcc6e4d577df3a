/**
 * Nix's base-32: the alphabet omits e, o, u and t, and the digits are written from the last
 * 5-bit group to the first, so a nix32 string is not RFC 4648 base32 read backwards.
 */
import { FormatError } from './errors.js'

export const NIX32_ALPHABET = '0123456789abcdfghijklmnpqrsvwxyz'

const DIGIT_OF = new Int8Array(128).fill(-1)
for (let i = 0; i < NIX32_ALPHABET.length; i++) DIGIT_OF[NIX32_ALPHABET.charCodeAt(i)] = i

/** Length of the nix32 form of `byteLength` bytes. */
export function nix32Length (byteLength: number): number {
  return Math.ceil(byteLength * 8 / 5)
}

export function toNix32 (bytes: Uint8Array): string {
  const len = nix32Length(bytes.length)
  let out = ''
  for (let n = len - 1; n >= 0; n--) {
    const b = n * 5
    const i = b >> 3
    const j = b & 7
    const c = (bytes[i] >> j) | (i + 1 < bytes.length ? bytes[i + 1] << (8 - j) : 0)
    out += NIX32_ALPHABET[c & 0x1f]
  }
  return out
}

/** Decodes nix32; rejects characters outside the alphabet and bits beyond the last byte. */
export function fromNix32 (text: string): Uint8Array {
  const size = Math.floor(text.length * 5 / 8)
  if (nix32Length(size) !== text.length) throw new FormatError(`invalid nix32 length ${text.length}`)
  const out = new Uint8Array(size)
  for (let n = 0; n < text.length; n++) {
    const code = text.charCodeAt(text.length - n - 1)
    const digit = code < 128 ? DIGIT_OF[code] : -1
    if (digit < 0) throw new FormatError(`invalid nix32 character ${JSON.stringify(text[text.length - n - 1])} in ${JSON.stringify(text)}`)
    const b = n * 5
    const i = b >> 3
    const j = b & 7
    out[i] |= (digit << j) & 0xff
    const carry = digit >> (8 - j)
    if (i + 1 < size) out[i + 1] |= carry
    else if (carry !== 0) throw new FormatError(`invalid nix32 ${JSON.stringify(text)}: bits beyond the last byte`)
  }
  return out
}

/** True when `text` is nix32 of exactly `byteLength` bytes. */
export function isNix32 (text: string, byteLength: number): boolean {
  if (text.length !== nix32Length(byteLength)) return false
  try { fromNix32(text); return true } catch { return false }
}
