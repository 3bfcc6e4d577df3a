/**
 * The NAR URL peerix writes into narinfos. Nix caches narinfos for up to 30 days, so the URL
 * must stay valid across restarts and peer changes: it names what the bytes are (the store
 * hash part and the NarHash), never which peer holds them, and any peer can answer it.
 */
import { NIX32_ALPHABET } from '../nix/nix32.js'
import { formatSha256Nix32, parseSha256 } from '../nix/hash.js'

const NIX32 = `[${NIX32_ALPHABET}]`
const NAR_URL = new RegExp(`^/?nar/(${NIX32}{32})-(${NIX32}{52})\\.nar$`)

/** `nar/<hashPart>-<nix32 NarHash>.nar`, relative to the cache root. */
export function formatNarUrl (hashPart: string, narHash: string): string {
  return `nar/${hashPart}-${formatSha256Nix32(parseSha256(narHash)).slice('sha256:'.length)}.nar`
}

/**
 * Reads back a URL path made by formatNarUrl (`nar/…` or `/nar/…`); undefined for anything
 * else, including query strings, extra path segments and hashes that do not decode.
 */
export function parseNarUrl (urlPath: string): { hashPart: string, narHash: string } | undefined {
  const m = NAR_URL.exec(urlPath)
  if (m == null) return undefined
  try {
    return { hashPart: m[1], narHash: formatSha256Nix32(parseSha256(`sha256:${m[2]}`)) }
  } catch {
    return undefined
  }
}
