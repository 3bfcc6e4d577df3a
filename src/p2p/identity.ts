/**
 * The node's libp2p identity, kept in the state directory so its PeerId survives restarts:
 * peers name it in `--trusted-peer` and `--peer /…/p2p/<id>`, so it must not change.
 */
import { mkdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import { FormatError } from '../nix/errors.js'
import { createOnce } from '../state-file.js'
import { PEER_KEY_FILE } from './constants.js'
import type { PrivateKey } from '@libp2p/interface'

/**
 * The private key in `<stateDir>/peer-key`, created (Ed25519, mode 0600; the directory 0700)
 * on first start. A file that is not a key is an error naming it: replacing it silently would
 * change the PeerId that other hosts trust.
 */
export async function loadOrCreatePrivateKey (stateDir: string): Promise<PrivateKey> {
  const file = join(stateDir, PEER_KEY_FILE)
  const existing = await readKey(file)
  if (existing !== undefined) return existing
  await mkdir(stateDir, { recursive: true, mode: 0o700 })
  const key = await generateKeyPair('Ed25519')
  if (await createOnce(file, privateKeyToProtobuf(key), 0o600)) return key
  const raced = await readKey(file)
  if (raced === undefined) throw new Error(`${file} was created and removed while this daemon started`)
  return raced
}

async function readKey (file: string): Promise<PrivateKey | undefined> {
  let bytes: Uint8Array
  try {
    bytes = await readFile(file)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw err
  }
  try {
    return privateKeyFromProtobuf(bytes)
  } catch (err) {
    throw new FormatError(`${file} is not a libp2p private key (${err instanceof Error ? err.message : String(err)}); move it away to create a new identity`)
  }
}
