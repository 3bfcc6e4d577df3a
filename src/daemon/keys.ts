/** The daemon's keys: its signing key (created on first start) and the keys it trusts. */
import { lstat, readFile, writeFile, mkdir } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { formatPublicKey, formatSecretKey, generateSecretKey, parsePublicKey, parseSecretKey, publicKeyOf, type PublicKey, type SecretKey } from '../nix/signing.js'
import { NIX_DEFAULT_TRUSTED_PUBLIC_KEYS, nixConfLines, trustedKeysFromLines } from '../nix/nix-conf.js'
import { defaultKeyName } from '../config.js'
import { createOnce } from '../state-file.js'
import type { Logger } from '../log.js'

export const GENERATED_KEY_FILE = 'signing-key'

/**
 * Reads the configured key file, or the one in the state directory, creating that one (0600)
 * on first start. A configured file that is missing is an error: it is never replaced.
 */
export async function loadSigningKey (keyFile: string | undefined, stateDir: string, log: Logger): Promise<SecretKey> {
  const file = keyFile ?? join(stateDir, GENERATED_KEY_FILE)
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || keyFile != null) {
      throw new Error(`cannot read signing key ${file}: ${(err as Error).message}`)
    }
    const key = generateSecretKey(defaultKeyName())
    await mkdir(dirname(file), { recursive: true, mode: 0o700 })
    // Another daemon starting on the same state directory made one first: use that one.
    if (!(await createOnce(file, formatSecretKey(key), 0o600))) return await loadSigningKey(undefined, stateDir, log)
    await writeFile(`${file}.pub`, formatPublicKey(publicKeyOf(key)), { mode: 0o644 })
    log.info(`generated signing key ${file}; public key: ${formatPublicKey(publicKeyOf(key))}`)
    return key
  }
  try {
    return parseSecretKey(text)
  } catch (err) {
    throw new Error(`signing key ${file}: ${(err as Error).message}`)
  }
}

/**
 * The keys Nix trusts by its nix.conf (NIX_CONF_DIR or /etc/nix) and the files it includes,
 * used when none are given: without that file, Nix's default. A key Nix would not take is an
 * error naming the file, and so is a nix.conf that cannot be read.
 */
export async function nixTrustedKeys (env = process.env): Promise<PublicKey[]> {
  const file = join(env.NIX_CONF_DIR ?? '/etc/nix', 'nix.conf')
  let texts: string[]
  try {
    const lines = await nixConfLines(file, async (name) => await readIfExists(name, name !== file))
    texts = lines === undefined ? [...NIX_DEFAULT_TRUSTED_PUBLIC_KEYS] : trustedKeysFromLines(lines)
  } catch (err) {
    throw new Error(`cannot read ${file} for its trusted-public-keys: ${(err as Error).message}`)
  }
  return texts.map(text => {
    try {
      return parsePublicKey(text)
    } catch (err) {
      throw new Error(`${file}, trusted-public-keys: ${(err as Error).message}`)
    }
  })
}

/**
 * A nix.conf file's text; undefined when it does not exist. Nix looks for an included file with
 * lstat, so a symbolic link to nothing (a secret not there yet) exists for it, and is skipped
 * as a file it cannot read rather than failing as a missing include: when `included`, that is
 * an error here too, which nixConfLines skips. A nix.conf that is such a link is read by
 * nobody: Nix's default, as without one.
 */
async function readIfExists (file: string, included: boolean): Promise<string | undefined> {
  try {
    return await readFile(file, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
    if (included && await lstat(file).then(() => true, () => false)) throw err
    return undefined
  }
}

/**
 * The keys whose signature makes a path public (`--public-cache-keys`), without this host's
 * own: a host's signature is on what it built, which is not public for being signed by it.
 * `ignored` says whether the list named it (the daemon warns; /status shows what is used).
 */
export function publicCacheKeys (texts: string[], own: PublicKey): { keys: PublicKey[], ignored: boolean } {
  const all = texts.map(text => parsePublicKey(text))
  const keys = all.filter(k => !Buffer.from(k.key).equals(own.key))
  return { keys, ignored: keys.length < all.length }
}
