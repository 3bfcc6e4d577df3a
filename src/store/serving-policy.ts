/**
 * Which of this host's paths a peer may have. Safe by default: a path is public when it
 * carries a signature by a public cache's key (it came from a cache such as cache.nixos.org,
 * so anyone could download it anyway); a host's signature, ours or a peer's, does not count. What exists only here (built locally,
 * with generated configuration and perhaps secrets in it) goes only to peers named as trusted.
 * The deny list wins over everything.
 */
import { fingerprint, type TrustedKeys } from '../nix/signing.js'
import { parseStorePath } from '../nix/store-path.js'
import { globToRegExp } from './glob.js'
import type { PathInfo } from './path-info.js'

export type ServeMode = 'trusted' | 'all'
export const SERVE_MODES: readonly ServeMode[] = ['trusted', 'all']

/**
 * Store names NixOS gives to generated configuration, where secrets end up: the system
 * closure and its activation script, /etc, systemd units (Environment= lines), users and
 * groups (password hashes), Wi-Fi configuration (PSKs), and anything named like a secret.
 */
export const DEFAULT_SERVE_DENY: readonly string[] = [
  'nixos-system-*', 'etc', 'etc-*', 'unit-*', 'system-units', 'user-units', 'users-groups.json',
  'wpa_supplicant*', '*secret*', '*password*', '*.key', '*.pem'
]

export type Decision = { allowed: true } | { allowed: false, reason: string }

export interface ServingPolicyOptions {
  mode: ServeMode
  deny: readonly string[]
  /** Peers (peer ID strings) that may also have paths that exist only here. */
  trustedPeers: readonly string[]
  /** Keys whose signature makes a path public: public caches' (never a host's). */
  publicKeys: TrustedKeys
}

export class ServingPolicy {
  private readonly deny: Array<{ glob: string, re: RegExp }>
  private readonly trustedPeers: Set<string>

  constructor (private readonly opts: ServingPolicyOptions) {
    this.deny = opts.deny.map(glob => ({ glob, re: globToRegExp(glob) }))
    this.trustedPeers = new Set(opts.trustedPeers)
  }

  decide (info: PathInfo, peer: string): Decision {
    const { name } = parseStorePath(info.storePath)
    // A derivation carries its output's environment, secrets and all: `etc.drv` is `etc`'s.
    const names = name.endsWith('.drv') ? [name, name.slice(0, -'.drv'.length)] : [name]
    const denied = this.deny.find(d => names.some(n => d.re.test(n)))
    if (denied !== undefined) return { allowed: false, reason: `name matches --serve-deny ${denied.glob}` }
    if (this.opts.mode === 'all' || this.trustedPeers.has(peer)) return { allowed: true }
    const fp = fingerprint(info.storePath, info.narHash, info.narSize, info.references)
    if (this.opts.publicKeys.verify(fp, info.sigs) !== undefined) return { allowed: true }
    return { allowed: false, reason: `only this host has it (no public cache signed it), for its --trusted-peer peers; ${peer} is not one (--trusted-peer ${peer} on this host would let it have it)` }
  }
}
