/**
 * The NarHash and NarSize of a NAR, computed as its bytes stream by, so a NAR is never held
 * whole to be checked or described.
 */
import { createHash, type Hash } from 'node:crypto'
import { formatSha256Nix32 } from './hash.js'

export interface NarDigest {
  /** `sha256:<nix32>`, as in narinfo files and signature fingerprints. */
  narHash: string
  narSize: number
}

export class NarHasher {
  private readonly hash: Hash = createHash('sha256')
  private bytes = 0
  private done = false

  update (chunk: Uint8Array): void {
    if (this.done) throw new Error('NarHasher.update() called after digest()')
    this.hash.update(chunk)
    this.bytes += chunk.length
  }

  /** Bytes hashed so far. */
  get size (): number {
    return this.bytes
  }

  /** Finishes the hash; the hasher takes no more bytes after this. */
  digest (): NarDigest {
    if (this.done) throw new Error('NarHasher.digest() called twice')
    this.done = true
    return { narHash: formatSha256Nix32(this.hash.digest()), narSize: this.bytes }
  }
}

/** Hashes a whole NAR stream. */
export async function hashNar (chunks: AsyncIterable<Uint8Array>): Promise<NarDigest> {
  const hasher = new NarHasher()
  for await (const chunk of chunks) hasher.update(chunk)
  return hasher.digest()
}

/** Passes chunks through unchanged, feeding each to `hasher` on the way. */
export async function * hashing (chunks: AsyncIterable<Uint8Array>, hasher: NarHasher): AsyncGenerator<Uint8Array> {
  for await (const chunk of chunks) {
    hasher.update(chunk)
    yield chunk
  }
}
