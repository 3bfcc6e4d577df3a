/**
 * Just enough of nix.conf to find the keys nix-daemon trusts, so that by default peerix accepts
 * exactly the signatures Nix itself would: the file, and the files it includes.
 */
import { dirname, resolve } from 'node:path'

/** What Nix trusts when nix.conf does not set trusted-public-keys: its built-in default. */
export const NIX_DEFAULT_TRUSTED_PUBLIC_KEYS: readonly string[] = ['cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=']

/** Files included within included files, at most: deeper is a loop (Nix itself recurses until its stack runs out). */
export const MAX_INCLUDE_DEPTH = 16

/** A file's text; undefined when it does not exist; throws when it exists but cannot be read. */
export type ReadConf = (file: string) => Promise<string | undefined>

/**
 * The value of `trusted-public-keys` after `text`, read as Nix reads it: line by line from
 * Nix's default, a plain setting replacing the keys so far and an `extra-` one adding to them;
 * `binary-cache-public-keys` is the same setting's old name. `include` lines are not followed
 * here: nixConfLines puts the included files' lines in their place.
 */
export function trustedKeysFromNixConf (text: string): string[] {
  return trustedKeysFromLines(text.split('\n'))
}

export function trustedKeysFromLines (lines: readonly string[]): string[] {
  let keys = [...NIX_DEFAULT_TRUSTED_PUBLIC_KEYS]
  for (const raw of lines) {
    const line = withoutComment(raw)
    const m = /^(extra-)?(?:trusted|binary-cache)-public-keys\s*=\s*(.*)$/.exec(line)
    if (m == null) continue
    const values = m[2].split(/\s+/).filter(k => k !== '')
    keys = m[1] != null ? [...keys, ...values] : values
  }
  return keys
}

/**
 * The lines of nix.conf `file` in the order Nix applies them (undefined when it does not
 * exist): each `include F` and `!include F` replaced by F's lines, F relative to the directory
 * of the file that names it. As for Nix, an `include` of a missing file is an error, an
 * `!include` of one is skipped, and an included file that exists but cannot be read is skipped.
 */
export async function nixConfLines (file: string, read: ReadConf): Promise<string[] | undefined> {
  const text = await read(file)
  return text === undefined ? undefined : await expand(file, text, read, 0)
}

async function expand (file: string, text: string, read: ReadConf, depth: number): Promise<string[]> {
  const lines: string[] = []
  for (const raw of text.split('\n')) {
    const include = /^(!?)include\s+(\S+)$/.exec(withoutComment(raw))
    if (include === null) {
      lines.push(raw)
      continue
    }
    const [, optional, name] = include
    const included = resolve(dirname(file), name)
    if (depth + 1 > MAX_INCLUDE_DEPTH) throw new Error(`${included}, included from ${file}: includes nested deeper than ${MAX_INCLUDE_DEPTH} (a loop?)`)
    let inner: string | undefined
    try {
      inner = await read(included)
    } catch {
      continue
    }
    if (inner === undefined) {
      if (optional === '') throw new Error(`${included}, included from ${file}, does not exist`)
      continue
    }
    lines.push(...await expand(included, inner, read, depth + 1))
  }
  return lines
}

function withoutComment (line: string): string {
  return line.replace(/#.*$/, '').trim()
}
