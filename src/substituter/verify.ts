/**
 * Whether a peer's narinfo answer may be used: it must parse strictly, be for the path that
 * was asked, and carry a signature by one of the trusted keys. Anything else is dropped, so a
 * fast but untrusted or broken peer can never win a lookup.
 */
import { formatNarUrl } from '../store/nar-url.js'
import { NarHasher } from '../nix/nar-hash.js'
import { parseNarInfo, type NarInfo } from '../nix/narinfo.js'
import { verifyNarInfo } from '../nix/narinfo-signing.js'
import { parseStorePath } from '../nix/store-path.js'
import type { TrustedKeys } from '../nix/signing.js'

export type Checked =
  | { ok: true, info: NarInfo, key: string }
  | { ok: false, reason: string }

/** Checks a peer's narinfo text for `hashPart` against the trusted keys. */
export function checkNarInfo (text: string, hashPart: string, trusted: TrustedKeys): Checked {
  let info: NarInfo
  try {
    info = parseNarInfo(text)
  } catch (err) {
    return { ok: false, reason: `malformed narinfo: ${(err as Error).message}` }
  }
  const got = parseStorePath(info.storePath).hashPart
  if (got !== hashPart) return { ok: false, reason: `narinfo is for ${info.storePath}, not the requested hash ${hashPart}` }
  const key = verifyNarInfo(info, trusted)
  if (key === undefined) return { ok: false, reason: `narinfo for ${info.storePath} has no valid signature by a trusted key` }
  return { ok: true, info, key }
}

/** Why a NAR sent along with a verified narinfo is not that narinfo's NAR; undefined when it is. */
export function checkInlineNar (nar: Uint8Array, info: NarInfo): string | undefined {
  if (nar.byteLength !== info.narSize) return `the NAR sent with the narinfo has ${nar.byteLength} bytes, not NarSize ${info.narSize}`
  const hasher = new NarHasher()
  hasher.update(nar)
  const got = hasher.digest().narHash
  return got === info.narHash ? undefined : `the NAR sent with the narinfo hashes to ${got}, not NarHash ${info.narHash}`
}

/**
 * The narinfo as this host serves it to Nix: the NAR URL names the path and its NarHash (so it
 * stays valid whichever peers come and go), uncompressed, signatures kept for Nix to check.
 */
export function servedNarInfo (info: NarInfo): NarInfo {
  const { fileHash: _fileHash, fileSize: _fileSize, ...rest } = info
  return { ...rest, url: formatNarUrl(parseStorePath(info.storePath).hashPart, info.narHash), compression: 'none' }
}
