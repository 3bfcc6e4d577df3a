/**
 * SHA-256 hashes in the forms Nix writes them: `sha256:<nix32>` (narinfo, signatures),
 * `sha256:<base16>` (the SQLite database) and SRI `sha256-<base64>` (nix path-info --json).
 */
import { FormatError } from './errors.js'
import { fromNix32, nix32Length, toNix32 } from './nix32.js'

export const SHA256_BYTES = 32

/** Parses any of Nix's forms of a SHA-256 hash to its 32-byte digest. */
export function parseSha256 (text: string): Uint8Array {
  let body: string
  let sri = false
  if (text.startsWith('sha256:')) body = text.slice(7)
  else if (text.startsWith('sha256-')) { body = text.slice(7); sri = true }
  else throw new FormatError(`invalid hash ${JSON.stringify(text)}: expected sha256:… or sha256-…`)

  if (!sri && body.length === nix32Length(SHA256_BYTES)) return fromNix32(body)
  // Nix reads upper-case base16 as well, though it only ever writes lower case.
  if (!sri && body.length === 64 && /^[0-9a-fA-F]+$/.test(body)) return Uint8Array.from(Buffer.from(body, 'hex'))
  if (body.length === 44 && /^[A-Za-z0-9+/]{43}=$/.test(body)) {
    const digest = Buffer.from(body, 'base64')
    if (digest.length === SHA256_BYTES) return Uint8Array.from(digest)
  }
  throw new FormatError(`invalid sha256 hash ${JSON.stringify(text)}`)
}

/** `sha256:<nix32>`, the form of NarHash in narinfo files and signature fingerprints. */
export function formatSha256Nix32 (digest: Uint8Array): string {
  return `sha256:${toNix32(digest)}`
}

/** `sha256-<base64>`, the SRI form. */
export function formatSha256Sri (digest: Uint8Array): string {
  return `sha256-${Buffer.from(digest).toString('base64')}`
}

/** `sha256:<base16>`, the form in Nix's database. */
export function formatSha256Base16 (digest: Uint8Array): string {
  return `sha256:${Buffer.from(digest).toString('hex')}`
}

/** Normalises any accepted form to `sha256:<nix32>`. */
export function toNarHash (text: string): string {
  return formatSha256Nix32(parseSha256(text))
}
