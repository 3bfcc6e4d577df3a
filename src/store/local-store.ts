/**
 * This host's Nix store as peerix serves it: metadata from Nix's database, NARs written on
 * the fly from the files under `<storeRoot>/nix/store`, narinfos signed with our key. A
 * chroot store (`storeRoot` other than `/`) keeps saying `/nix/store` in its paths.
 */
import { lstatSync } from 'node:fs'
import { join } from 'node:path'
import { FormatError } from '../nix/errors.js'
import { toNarHash } from '../nix/hash.js'
import { DEFAULT_CHUNK_SIZE, narStream } from '../nix/nar.js'
import { isWellFormedSig, type NarInfo } from '../nix/narinfo.js'
import { fingerprint, sign, type SecretKey } from '../nix/signing.js'
import { STORE_DIR } from '../nix/store-path.js'
import { NixDb } from './db.js'
import { formatNarUrl } from './nar-url.js'
import type { PathInfo } from './path-info.js'
import type { ServingPolicy } from './serving-policy.js'
import type { NarBytes, NarInfoOptions, PathSource, Served, ServedNarInfo } from './source.js'

export interface LocalStoreOptions {
  /** The directory holding `nix/store` and `nix/var/nix`; `/` for the system store. */
  storeRoot?: string
  /** When set, every narinfo served carries our signature besides the store's own. */
  signingKey?: SecretKey
  /** Which paths each peer may have; without one, every valid path goes to every peer. */
  policy?: Pick<ServingPolicy, 'decide'>
  /** An open database to share (the caller closes it); by default the store opens its own. */
  db?: NixDb
}

const ABSENT = { status: 'absent' } as const
/**
 * Signing costs about 1 ms, most of a narinfo answer, and Nix asks for the same narinfo
 * several times during one copy; signatures are deterministic, so recent ones are kept.
 */
const SIGNATURE_CACHE_SIZE = 4096

export class LocalStore implements PathSource {
  private constructor (
    readonly storeRoot: string,
    private readonly db: NixDb,
    private readonly signingKey: SecretKey | undefined,
    private readonly policy: Pick<ServingPolicy, 'decide'> | undefined,
    private readonly ownsDb: boolean
  ) {}

  private readonly signatures = new Map<string, string>()

  /** Opens the store's database read-only; throws NixDbError when it cannot be read. */
  static open (opts: LocalStoreOptions = {}): LocalStore {
    const storeRoot = opts.storeRoot ?? '/'
    return new LocalStore(storeRoot, opts.db ?? NixDb.open(storeRoot), opts.signingKey, opts.policy, opts.db === undefined)
  }

  /** What the database knows about the path with this hash part (FormatError if malformed). */
  info (hashPart: string): PathInfo | undefined {
    return this.db.byHashPart(hashPart)
  }

  async narInfo (hashPart: string, peer: string, options: NarInfoOptions = {}): Promise<ServedNarInfo> {
    const info = await this.servable(hashPart)
    if (info === undefined) return ABSENT
    const refused = this.refusal(info, peer)
    if (refused !== undefined) return refused
    const value = this.toNarInfo(hashPart, info)
    return options.narUpTo !== undefined && info.narSize <= options.narUpTo
      ? { status: 'found', value, nar: this.narBytes(hashPart, info, 0) }
      : { status: 'found', value }
  }

  async nar (hashPart: string, narHash: string, offset: number, peer: string, signal?: AbortSignal): Promise<Served<NarBytes>> {
    const wanted = toNarHash(narHash)
    if (!Number.isSafeInteger(offset) || offset < 0) throw new FormatError(`invalid NAR offset ${offset}: expected a non-negative integer`)
    const info = await this.servable(hashPart)
    // A different NarHash means the requester's narinfo is stale: these are not the bytes it wants.
    if (info === undefined || info.narHash !== wanted) return ABSENT
    // Refused before the offset is looked at: a peer refused the path learns nothing of it,
    // not even its NarSize (by trying offsets until "refused" turns to "absent").
    const refused = this.refusal(info, peer)
    if (refused !== undefined) return refused
    if (offset > info.narSize) return ABSENT
    return { status: 'found', value: this.narBytes(hashPart, info, offset, signal) }
  }

  close (): void {
    if (this.ownsDb) this.db.close()
  }

  /** The refusal when the serving policy keeps this path from `peer`; the one place it decides. */
  private refusal (info: PathInfo, peer: string): Served<never> | undefined {
    const decision = this.policy?.decide(info, peer)
    return decision === undefined || decision.allowed ? undefined : { status: 'refused', reason: decision.reason }
  }

  /**
   * The path's metadata when the database lists it and its files are really there. The check
   * is synchronous on purpose: one lstat of a local path takes microseconds, while the async
   * one waits for libuv's thread pool, which a NAR being read from disk keeps busy — that put
   * milliseconds on narinfo answers during transfers.
   */
  private async servable (hashPart: string): Promise<PathInfo | undefined> {
    const info = this.info(hashPart)
    if (info === undefined) return undefined
    try {
      lstatSync(this.onDisk(info))
      return info
    } catch {
      return undefined
    }
  }

  /** The path's NAR from `offset`, written from its files as it is read. */
  private narBytes (hashPart: string, info: PathInfo, offset: number, signal?: AbortSignal): NarBytes {
    const length = info.narSize - offset
    // A NAR smaller than the writer's chunk goes out as one chunk of its own size, not a copy
    // out of a 256 KiB buffer allocated for it.
    const chunkSize = Math.max(1, Math.min(DEFAULT_CHUNK_SIZE, length))
    const stillValid = (): boolean => this.info(hashPart)?.narHash === info.narHash
    return { length, stream: exactly(length, info.storePath, stillValid, narStream(this.onDisk(info), { offset, signal, chunkSize })) }
  }

  private onDisk (info: PathInfo): string {
    return join(this.storeRoot, info.storePath)
  }

  private toNarInfo (hashPart: string, info: PathInfo): NarInfo {
    const key = this.signingKey
    // A store signature under our key name (an earlier `nix store sign`) is replaced, not repeated.
    // A signature Nix could not check is left out: Nix would fail the path for it.
    const stored = info.sigs.filter(isWellFormedSig)
    const sigs = key === undefined
      ? stored
      : [...stored.filter(s => !s.startsWith(`${key.name}:`)), this.sign(key, info)]
    return {
      storePath: info.storePath,
      url: formatNarUrl(hashPart, info.narHash),
      compression: 'none',
      narHash: info.narHash,
      narSize: info.narSize,
      references: info.references.map(baseName),
      ...(info.deriver !== undefined && { deriver: baseName(info.deriver) }),
      sigs,
      ...(info.ca !== undefined && { ca: info.ca })
    }
  }

  private sign (key: SecretKey, info: PathInfo): string {
    const text = fingerprint(info.storePath, info.narHash, info.narSize, info.references)
    let sig = this.signatures.get(text)
    if (sig === undefined) {
      sig = sign(key, text)
      if (this.signatures.size >= SIGNATURE_CACHE_SIZE) this.signatures.delete(this.signatures.keys().next().value as string)
      this.signatures.set(text, sig)
    }
    return sig
  }
}

function baseName (storePath: string): string {
  return storePath.slice(STORE_DIR.length + 1)
}

/**
 * Passes the NAR through, failing if it is not exactly `length` bytes: the files changed
 * under us or the database is wrong, and the receiver must not take a short or long NAR.
 *
 * The last chunk is held back until the database, asked again once every byte was read, still
 * gives the path the NarHash it had when the NAR was announced (`stillValid`). A path Nix
 * collected and rebuilt while its files were being read (a build whose output differs each
 * time, in files of the same sizes) gives a NAR of the right length with bytes of both builds:
 * ended as if whole, the requester would find a wrong NarHash and hold it against this host,
 * and against any peer it resumed the download from. Failed instead, it is an ordinary failed
 * transfer. (While the database has that NarHash, every file read was the path's: unchanged,
 * or rebuilt to the same bytes.)
 */
async function * exactly (length: number, storePath: string, stillValid: () => boolean, chunks: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  let sent = 0
  let held: Uint8Array | undefined
  for await (const chunk of chunks) {
    sent += chunk.length
    if (sent > length) throw new Error(`the NAR of ${storePath} is longer than the ${length} bytes its NarSize leaves`)
    if (held !== undefined) yield held
    held = chunk
  }
  if (sent !== length) throw new Error(`the NAR of ${storePath} ended after ${sent} of ${length} bytes`)
  if (!stillValid()) throw new Error(`${storePath} was collected or rebuilt while its NAR was read`)
  if (held !== undefined) yield held
}
