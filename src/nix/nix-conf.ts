/**
 * Just enough of nix.conf to find the keys nix-daemon trusts, so that by default peerix accepts
 * exactly the signatures Nix itself would. `include` directives are not followed.
 */

/** What Nix trusts when nix.conf does not set trusted-public-keys: its built-in default. */
export const NIX_DEFAULT_TRUSTED_PUBLIC_KEYS: readonly string[] = ['cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=']

/**
 * The value of `trusted-public-keys` after `text`, read as Nix reads it: line by line from
 * Nix's default, a plain setting replacing the keys so far and an `extra-` one adding to them;
 * `binary-cache-public-keys` is the same setting's old name.
 */
export function trustedKeysFromNixConf (text: string): string[] {
  let keys = [...NIX_DEFAULT_TRUSTED_PUBLIC_KEYS]
  for (const raw of text.split('\n')) {
    const line = raw.replace(/#.*$/, '').trim()
    const m = /^(extra-)?(?:trusted|binary-cache)-public-keys\s*=\s*(.*)$/.exec(line)
    if (m == null) continue
    const values = m[2].split(/\s+/).filter(k => k !== '')
    keys = m[1] != null ? [...keys, ...values] : values
  }
  return keys
}
