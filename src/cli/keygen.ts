/**
 * `peerix keygen`: a signing key pair in the files `nix-store --generate-binary-cache-key`
 * writes, so either tool's keys work with the other (and with `nix store sign`).
 */
import { access, open, unlink } from 'node:fs/promises'
import { resolve } from 'node:path'
import { Command } from 'commander'
import { formatPublicKey, formatSecretKey, generateSecretKey, publicKeyOf } from '../nix/signing.js'

interface KeygenOptions { name: string, secretKeyFile: string, publicKeyFile: string }

export function keygenCommand (): Command {
  return new Command('keygen')
    .description('create a signing key pair in Nix\'s format (like nix-store --generate-binary-cache-key); prints the public key')
    .requiredOption('--name <name>', 'key name, conventionally the host name plus a number, e.g. host1-1')
    .requiredOption('--secret-key-file <file>', 'where to write the secret key (mode 0600; must not exist)')
    .requiredOption('--public-key-file <file>', 'where to write the public key (must not exist)')
    .action(async (opts: KeygenOptions) => { await keygen(opts) })
}

async function keygen ({ name, secretKeyFile, publicKeyFile }: KeygenOptions): Promise<void> {
  if (resolve(secretKeyFile) === resolve(publicKeyFile)) {
    throw new Error(`the secret and public key files are the same file: ${secretKeyFile}`)
  }
  const sk = generateSecretKey(name)
  // Check both first so a refusal never leaves half a key pair behind.
  for (const file of [secretKeyFile, publicKeyFile]) await refuseExisting(file)

  await writeNew(secretKeyFile, formatSecretKey(sk), 0o600)
  try {
    await writeNew(publicKeyFile, formatPublicKey(publicKeyOf(sk)), 0o644)
  } catch (err) {
    await unlink(secretKeyFile)
    throw err
  }
  process.stdout.write(`${formatPublicKey(publicKeyOf(sk))}\n`)
}

async function refuseExisting (file: string): Promise<void> {
  const exists = await access(file).then(() => true, () => false)
  if (exists) throw new Error(`refusing to overwrite existing key file ${file}`)
}

/** Creates `file` (failing if it appeared meanwhile) with `mode` regardless of the umask. */
async function writeNew (file: string, contents: string, mode: number): Promise<void> {
  const handle = await open(file, 'wx', mode).catch((err: NodeJS.ErrnoException) => {
    throw new Error(err.code === 'EEXIST' ? `refusing to overwrite existing key file ${file}` : `cannot create key file ${file}: ${err.message}`)
  })
  try {
    await handle.chmod(mode)
    await handle.writeFile(contents)
  } finally {
    await handle.close()
  }
}
