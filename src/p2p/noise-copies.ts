/**
 * Noise messages without a copy of their bytes on the way in or out.
 *
 * @chainsafe/libp2p-noise 17 decrypts a message that arrived in several socket reads (most of a
 * NAR's 64 KiB messages do) by first gathering it into one new buffer, the destination its
 * WebAssembly ChaCha20-Poly1305 would decrypt into; above 1,200 bytes it uses Node's cipher,
 * which ignores that buffer and reads the pieces as they are. `bench/profile-nar.ts 512`: that
 * gathering was 1.2–2.4 % of the shim's samples while a NAR streamed through it, and 0 with
 * this (three runs and two). On the way out,
 * Node's cipher hands back ciphertext and tag, which the library concatenates into one more new
 * buffer per message unless the plaintext came as a list of pieces.
 *
 * The connection encrypter returns its message stream; its `decrypt` and `encrypt` are
 * replaced on the instance with the same loops that pass pieces as pieces. Nonces, keys and the
 * cipher stay the library's (`handshake.encrypt`/`decrypt`). A stream without them (another
 * library version) is left alone.
 */
import { Uint8ArrayList } from 'uint8arraylist'
import { wrapEncrypter } from './wrap-encrypter.js'
import type { ConnectionEncrypter } from '@libp2p/interface'

/** Noise's largest message, and the part of it that is plaintext (the rest is the tag). */
const MAX_MESSAGE = 65535
const TAG_BYTES = 16
export const MAX_NOISE_PLAINTEXT = MAX_MESSAGE - TAG_BYTES
const MAX_PLAINTEXT = MAX_NOISE_PLAINTEXT

type Bytes = Uint8Array | Uint8ArrayList

/** The parts of the library's EncryptedMessageStream used here; plain properties at run time. */
interface NoiseMessageStream {
  handshake?: {
    encrypt?: (plaintext: Bytes) => Bytes
    decrypt?: (ciphertext: Bytes, dst?: Uint8Array) => Bytes
  }
  metrics?: Record<'encryptedPackets' | 'decryptedPackets' | 'decryptErrors', { increment: () => void } | undefined>
  encrypt?: (chunk: Bytes) => Uint8ArrayList
  decrypt?: (chunk: Bytes) => Uint8ArrayList
}

/** `encrypter`, whose secured connections encrypt and decrypt without gathering copies. */
export function noiseWithoutCopies<C, E> (encrypter: (components: C) => ConnectionEncrypter<E>): (components: C) => ConnectionEncrypter<E> {
  return wrapEncrypter(encrypter, { secured: withoutCopies })
}

/** Replaces the stream's encrypt and decrypt; exported for the tests. */
export function withoutCopies<T> (stream: T): T {
  const s = stream as NoiseMessageStream
  const handshake = s.handshake
  const encrypt = handshake?.encrypt
  const decrypt = handshake?.decrypt
  if (typeof encrypt !== 'function' || typeof decrypt !== 'function' || typeof s.encrypt !== 'function' || typeof s.decrypt !== 'function') return stream

  s.encrypt = (chunk) => {
    const output = new Uint8ArrayList()
    for (let i = 0; i < chunk.byteLength; i += MAX_PLAINTEXT) {
      const end = Math.min(i + MAX_PLAINTEXT, chunk.byteLength)
      // as a list, Node's cipher output (ciphertext, then tag) stays in pieces
      const data = encrypt.call(handshake, chunk instanceof Uint8Array ? new Uint8ArrayList(chunk.subarray(i, end)) : chunk.sublist(i, end))
      s.metrics?.encryptedPackets?.increment()
      output.append(lengthPrefix(data.byteLength))
      output.append(data)
    }
    return output
  }

  s.decrypt = (chunk) => {
    const output = new Uint8ArrayList()
    for (let i = 0; i < chunk.byteLength; i += MAX_MESSAGE) {
      const end = Math.min(i + MAX_MESSAGE, chunk.byteLength)
      if (end - TAG_BYTES < i) throw new Error('Invalid chunk')
      // A message in one buffer is decrypted in place, as the library does; a list is read as
      // its pieces (the library gathered them into a new buffer first).
      try {
        const plaintext = chunk instanceof Uint8Array
          ? decrypt.call(handshake, chunk.subarray(i, end), chunk.subarray(i, end - TAG_BYTES))
          : decrypt.call(handshake, chunk.sublist(i, end))
        s.metrics?.decryptedPackets?.increment()
        output.append(plaintext)
      } catch (err) {
        s.metrics?.decryptErrors?.increment()
        throw err
      }
    }
    return output
  }
  return stream
}

function lengthPrefix (length: number): Uint8Array {
  return Uint8Array.of(length >> 8, length & 0xff)
}
