/**
 * What Nix's database knows about one valid store path, in the forms peerix passes on:
 * NarHash as `sha256:<nix32>` (narinfo and signature form), references and deriver as full
 * store paths.
 */
export interface PathInfo {
  /** Full store path, `/nix/store/<hash>-<name>`. */
  storePath: string
  /** `sha256:<nix32>` of the path's NAR serialisation. */
  narHash: string
  narSize: number
  /** Full store paths this path refers to, sorted (may include itself). */
  references: string[]
  /** Full store path of the derivation that built it, when Nix recorded one. */
  deriver?: string
  /** Signatures the store holds for the path, `keyname:base64`. */
  sigs: string[]
  /** Content-address assertion, e.g. `fixed:r:sha256:…`. */
  ca?: string
  /** Built (or added) on this host rather than substituted: trusted without signatures. */
  ultimate: boolean
  /** When the path became valid here, in Unix seconds. */
  registrationTime: number
}
