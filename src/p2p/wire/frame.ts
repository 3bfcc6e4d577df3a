/**
 * The frames both peerix protocols exchange: an unsigned varint (protobuf/multiformats
 * encoding, minimal) holding the byte length of what follows, then that many bytes. Every
 * reader passes its own limit, so a length field can never make us allocate more than that.
 */

/** Bytes needed to write `value` as an unsigned varint. */
export function varintLength (value: number): number {
  let bytes = 1
  while (value >= 0x80) {
    value = Math.floor(value / 0x80)
    bytes++
  }
  return bytes
}

/** `body` prefixed with its length as an unsigned varint. */
export function encodeFrame (body: Uint8Array): Uint8Array {
  const prefix = varintLength(body.byteLength)
  const out = new Uint8Array(prefix + body.byteLength)
  let value = body.byteLength
  let i = 0
  while (value >= 0x80) {
    out[i++] = (value & 0x7f) | 0x80
    value = Math.floor(value / 0x80)
  }
  out[i] = value
  out.set(body, prefix)
  return out
}
