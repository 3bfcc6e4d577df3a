/**
 * Nix's binary-cache signing keys and signatures (Ed25519): key files `name:base64(...)` as
 * written by `nix-store --generate-binary-cache-key`, the path fingerprint a signature covers,
 * and `name:base64(sig)` signatures checked against a set of trusted public keys.
 */
import { createHash, createPrivateKey, createPublicKey, sign as cryptoSign, verify as cryptoVerify, type KeyObject } from 'node:crypto'
import * as ed from '@noble/ed25519'
import { FormatError } from './errors.js'
import { toNarHash } from './hash.js'

// noble's synchronous API needs a SHA-512; node:crypto's is native and fast.
ed.hashes.sha512 = (message) => Uint8Array.from(createHash('sha512').update(message).digest())

const SEED_BYTES = 32
const PUBLIC_KEY_BYTES = 32
const SIGNATURE_BYTES = 64

export interface SecretKey {
  name: string
  /** The 32-byte Ed25519 seed (RFC 8032 secret key). */
  seed: Uint8Array
  publicKey: Uint8Array
}

export interface PublicKey {
  name: string
  key: Uint8Array
}

/** Canonical standard base64 only, so that one key has exactly one spelling. */
function decodeBase64 (text: string): Uint8Array | undefined {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text) || text.length % 4 !== 0) return undefined
  const bytes = Buffer.from(text, 'base64')
  if (bytes.toString('base64') !== text) return undefined
  return Uint8Array.from(bytes)
}

function encodeBase64 (bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('base64')
}

/** Splits `name:base64` at the first colon, as Nix does. */
function splitKey (text: string, what: string, shown: string): { name: string, body: string } {
  const colon = text.indexOf(':')
  if (colon < 0) throw new FormatError(`${what} ${shown} has no ':' between the key name and the key`)
  const name = text.slice(0, colon)
  if (name === '') throw new FormatError(`${what} ${shown} has an empty key name`)
  return { name, body: text.slice(colon + 1) }
}

/** A key name Nix can carry in a `name:...` key or signature and a whitespace-separated key list. */
export function checkKeyName (name: string): string {
  if (name === '' || /[:\s]/.test(name)) {
    throw new FormatError(`invalid key name ${JSON.stringify(name)}: it must be non-empty and contain no ':' or whitespace`)
  }
  return name
}

/** Quotes a value for an error message, cut short so that garbage cannot flood a log. */
function quoteShort (text: string): string {
  return JSON.stringify(text.length > 120 ? `${text.slice(0, 120)}…` : text)
}

/** A key file as an editor may leave it: Nix reads it with any line ends after the key. */
function withoutTrailingNewline (text: string): string {
  return text.replace(/[\r\n]+$/, '')
}

/**
 * Parses a secret key file's contents: `name:base64(seed ‖ public key)`. Errors name the key
 * (by its name only) and the problem; the secret itself is never put in a message.
 */
export function parseSecretKey (text: string): SecretKey {
  const { name, body } = splitKey(withoutTrailingNewline(text), 'secret key', '(contents not shown)')
  const shown = quoteShort(name)
  const bytes = decodeBase64(body)
  if (bytes === undefined) throw new FormatError(`secret key ${shown} is not valid base64`)
  if (bytes.length !== SEED_BYTES + PUBLIC_KEY_BYTES) {
    throw new FormatError(`secret key ${shown} is ${bytes.length} bytes, expected ${SEED_BYTES + PUBLIC_KEY_BYTES} (seed and public key)`)
  }
  const seed = bytes.slice(0, SEED_BYTES)
  const publicKey = bytes.slice(SEED_BYTES)
  if (!equalBytes(ed.getPublicKey(seed), publicKey)) {
    throw new FormatError(`secret key ${shown} is corrupt: its public half does not match its seed`)
  }
  return { name, seed, publicKey }
}

/** Parses a public key: `name:base64(32 bytes)`. */
export function parsePublicKey (text: string): PublicKey {
  const trimmed = withoutTrailingNewline(text)
  const shown = quoteShort(trimmed)
  const { name, body } = splitKey(trimmed, 'public key', shown)
  const key = decodeBase64(body)
  if (key === undefined) throw new FormatError(`public key ${shown} is not valid base64`)
  if (key.length !== PUBLIC_KEY_BYTES) throw new FormatError(`public key ${shown} is ${key.length} bytes, expected ${PUBLIC_KEY_BYTES}`)
  return { name, key }
}

/** The secret key file's contents, without a trailing newline (as Nix writes it). */
export function formatSecretKey (sk: SecretKey): string {
  const both = new Uint8Array(SEED_BYTES + PUBLIC_KEY_BYTES)
  both.set(sk.seed, 0)
  both.set(sk.publicKey, SEED_BYTES)
  return `${sk.name}:${encodeBase64(both)}`
}

/** The public key file's contents, without a trailing newline (as Nix writes it). */
export function formatPublicKey (pk: PublicKey): string {
  return `${pk.name}:${encodeBase64(pk.key)}`
}

/** A fresh key from the system's secure random source. */
export function generateSecretKey (name: string): SecretKey {
  checkKeyName(name)
  const { secretKey, publicKey } = ed.keygen()
  return { name, seed: secretKey, publicKey }
}

export function publicKeyOf (sk: SecretKey): PublicKey {
  return { name: sk.name, key: sk.publicKey }
}

/**
 * What a signature covers (Nix's `fingerprintPath`): `1;<storePath>;<narHash>;<narSize>;<refs>`
 * with the NAR hash as `sha256:<nix32>` and `references` (full store paths) joined by commas
 * in the order given; callers pass them sorted, as Nix does.
 */
export function fingerprint (storePath: string, narHash: string, narSize: number, references: string[]): string {
  return `1;${storePath};${toNarHash(narHash)};${narSize};${references.join(',')}`
}

/** Signs a fingerprint: `name:base64(ed25519 signature)`, the form of a narinfo `Sig:` line. */
export function sign (sk: SecretKey, fingerprintText: string): string {
  const signature = cryptoSign(null, Buffer.from(fingerprintText), signingKeyObject(sk))
  return `${sk.name}:${encodeBase64(signature)}`
}

/*
 * Signing and verifying go through node:crypto (OpenSSL): about 12 times faster than the
 * pure-JS implementation, which matters when a store summary checks 100,000 signatures.
 * @noble/ed25519 stays for key generation and the seed/public-key check.
 */
const signingKeys = new WeakMap<SecretKey, KeyObject>()

function signingKeyObject (sk: SecretKey): KeyObject {
  let key = signingKeys.get(sk)
  if (key === undefined) {
    key = createPrivateKey({ key: { kty: 'OKP', crv: 'Ed25519', d: Buffer.from(sk.seed).toString('base64url'), x: Buffer.from(sk.publicKey).toString('base64url') }, format: 'jwk' })
    signingKeys.set(sk, key)
  }
  return key
}

/**
 * A verification key, or undefined for bytes that are not a point on the curve or are one of
 * small order: OpenSSL accepts a signature by such a key (the identity point's, for any
 * message) that libsodium, which Nix uses, refuses.
 */
function verifyingKeyObject (key: Uint8Array): KeyObject | undefined {
  try {
    if (ed.Point.fromBytes(key).isSmallOrder()) return undefined
    return createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(key).toString('base64url') }, format: 'jwk' })
  } catch {
    return undefined
  }
}

/** The public keys whose signatures make a path acceptable (Nix's `trusted-public-keys`). */
export class TrustedKeys {
  private readonly byName = new Map<string, Array<KeyObject | typeof NO_KEY>>()

  /** Parses a whitespace-separated list of `name:base64` public keys. */
  static parse (text: string): TrustedKeys {
    return new TrustedKeys(text.split(/\s+/).filter(k => k !== '').map(parsePublicKey))
  }

  constructor (keys: PublicKey[]) {
    for (const { name, key } of keys) {
      const same = this.byName.get(name) ?? []
      // A key that is not a usable curve point verifies nothing, but still counts as configured.
      same.push(verifyingKeyObject(key) ?? NO_KEY)
      this.byName.set(name, same)
    }
  }

  get size (): number {
    let n = 0
    for (const keys of this.byName.values()) n += keys.length
    return n
  }

  /**
   * The name of a trusted key that made one of `sigs` over `fingerprintText`, or undefined.
   * Malformed signatures and signatures by unknown keys are skipped, as Nix skips them.
   */
  verify (fingerprintText: string, sigs: string[]): string | undefined {
    const message = new TextEncoder().encode(fingerprintText)
    for (const sig of sigs) {
      const colon = sig.indexOf(':')
      if (colon <= 0) continue
      const name = sig.slice(0, colon)
      const keys = this.byName.get(name)
      if (keys === undefined) continue
      const signature = decodeBase64(sig.slice(colon + 1))
      if (signature?.length !== SIGNATURE_BYTES) continue
      // RFC 8032 rules (not ZIP 215), matching libsodium, which Nix uses.
      if (keys.some(key => verifies(signature, message, key))) return name
    }
    return undefined
  }
}

const NO_KEY = Symbol('not a curve point')

function verifies (signature: Uint8Array, message: Uint8Array, key: KeyObject | typeof NO_KEY): boolean {
  if (key === NO_KEY) return false
  try {
    return cryptoVerify(null, message, key, signature)
  } catch {
    return false
  }
}

function equalBytes (a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((byte, i) => byte === b[i])
}
