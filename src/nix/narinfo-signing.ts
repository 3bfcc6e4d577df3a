/** Signing and checking narinfos: the fingerprint Nix signs, built from a narinfo's fields. */
import type { NarInfo } from './narinfo.js'
import { fingerprint, sign, type SecretKey, type TrustedKeys } from './signing.js'
import { STORE_DIR } from './store-path.js'

/**
 * Nix's `ValidPathInfo::fingerprint`: references become full store paths in sorted order (Nix
 * keeps them in a sorted set), whatever order the narinfo lists them in.
 */
export function narInfoFingerprint (info: NarInfo): string {
  const references = [...info.references].sort().map(ref => `${STORE_DIR}/${ref}`)
  return fingerprint(info.storePath, info.narHash, info.narSize, references)
}

/** A copy of `info` carrying our signature, in place of any older one by a key of the same name. */
export function signNarInfo (info: NarInfo, sk: SecretKey): NarInfo {
  const others = info.sigs.filter(sig => !sig.startsWith(`${sk.name}:`))
  return { ...info, sigs: [...others, sign(sk, narInfoFingerprint(info))] }
}

/** The name of a trusted key that validly signed `info`, or undefined. */
export function verifyNarInfo (info: NarInfo, trusted: TrustedKeys): string | undefined {
  return trusted.verify(narInfoFingerprint(info), info.sigs)
}
