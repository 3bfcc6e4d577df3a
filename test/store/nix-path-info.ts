/** What the real Nix says about store paths: `nix path-info --json --sigs`, the reference the tests compare to. */
import type { NixEnv } from '../helpers/nix.js'

export interface NixPathInfoJson {
  path: string
  narHash: string
  narSize: number
  references: string[]
  deriver?: string
  signatures?: string[]
  ca?: string
  ultimate?: boolean
  registrationTime: number
}

/**
 * Path info of `path` (and its closure when `recursive`) in the chroot store at `root`. A
 * `.drv` is asked about itself (`--derivation`), not about the outputs it would build.
 */
export async function nixPathInfo (nix: NixEnv, root: string, path: string, recursive = true): Promise<NixPathInfoJson[]> {
  const flags = [...(recursive ? ['-r'] : []), ...(path.endsWith('.drv') ? ['--derivation'] : [])]
  const { stdout } = await nix.run('nix', ['path-info', '--json', '--sigs', ...flags, '--store', root, path])
  return JSON.parse(stdout) as NixPathInfoJson[]
}
