/**
 * Just enough of nix.conf to find the keys nix-daemon trusts, so that by default peerix accepts
 * exactly the signatures Nix itself would. `include` directives are not followed.
 */
export function trustedKeysFromNixConf (text: string): string[] {
  let keys: string[] = []
  const extra: string[] = []
  for (const raw of text.split('\n')) {
    const line = raw.replace(/#.*$/, '').trim()
    const m = /^(extra-)?trusted-public-keys\s*=\s*(.*)$/.exec(line)
    if (m == null) continue
    const values = m[2].split(/\s+/).filter(k => k !== '')
    if (m[1] != null) extra.push(...values)
    else keys = values
  }
  return [...keys, ...extra]
}
