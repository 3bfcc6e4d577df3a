/**
 * The narinfos of a path's references, asked of the peers before Nix asks for them. Nix walks
 * a closure one narinfo at a time (a `nix copy` of 600 small paths had 0.7–0.8 narinfo
 * requests in flight on average, `bench/closure-timeline.ts 600 --leaf-bytes 4000-64000`),
 * so every round trip to a peer adds to the copy's time, while an answer from the shim's cache
 * costs a fraction of one. Each narinfo given to Nix names the paths Nix will want next: its
 * references. Those, and theirs in turn, are looked up a few at a time and kept in the shim's
 * narinfo cache, where Nix's requests find them or join the lookup still running.
 *
 * Only paths Nix may ask for are read: not those already in this host's store (Nix, which
 * substitutes into it, does not ask for them), not those no peer's summary may hold, not those
 * cached or being looked up. How far ahead of Nix this runs is bounded, and an answer Nix has
 * not asked for by the time the cache drops it no longer counts against that bound.
 */
import type { NarInfo } from '../nix/narinfo.js'
import { HASH_PART_LENGTH } from '../nix/store-path.js'
import { NARINFO_CACHE_MS } from './narinfo-cache.js'

/** Lookups running at once; Nix's own requests queue behind them at the peer. */
export const READ_AHEAD_CONCURRENCY = 4
/** Narinfos read ahead that Nix has not asked for yet; past this, reading pauses. */
export const READ_AHEAD_MAX_AHEAD = 1024
/** Hash parts waiting to be read; references beyond this are not queued. */
export const READ_AHEAD_MAX_QUEUED = 8192

export interface ReadAheadLimits {
  concurrency: number
  maxAhead: number
  maxQueued: number
  /** How long an answer read ahead waits for Nix (the narinfo cache's lifetime). */
  ttlMs: number
  /**
   * How long Nix may ask nothing before the references still queued are dropped: Nix that
   * was killed, or whose copy failed, is not followed through the rest of its closure.
   */
  idleMs: number
}

/** Looks up a narinfo and caches it for Nix; undefined when no peer has it. */
export type ReadNarInfo = (hashPart: string) => Promise<NarInfo | undefined>

export class NarInfoReadAhead {
  /** Hash parts to read, in the order their referrers were answered. */
  readonly #queue = new Set<string>()
  /** Hash parts read (or being read) that Nix has not asked for, with when; oldest first. */
  readonly #ahead = new Map<string, number>()
  readonly #read: ReadNarInfo
  readonly #wanted: (hashPart: string) => boolean
  readonly #limits: ReadAheadLimits
  #running = 0
  #stopped = false
  /** When Nix last asked for a narinfo. */
  #lastAsked = Date.now()

  /** `wanted` says whether Nix may still ask for a path (not local, on a peer, not cached). */
  constructor (read: ReadNarInfo, wanted: (hashPart: string) => boolean, limits: Partial<ReadAheadLimits> = {}) {
    this.#read = read
    this.#wanted = wanted
    this.#limits = {
      concurrency: limits.concurrency ?? READ_AHEAD_CONCURRENCY,
      maxAhead: limits.maxAhead ?? READ_AHEAD_MAX_AHEAD,
      maxQueued: limits.maxQueued ?? READ_AHEAD_MAX_QUEUED,
      ttlMs: limits.ttlMs ?? NARINFO_CACHE_MS,
      idleMs: limits.idleMs ?? NARINFO_CACHE_MS
    }
  }

  /** `info` was answered: the narinfos of its references are read next. */
  follow (info: NarInfo): void {
    if (this.#stopped) return
    for (const ref of info.references) {
      if (this.#queue.size >= this.#limits.maxQueued) break
      const hashPart = ref.slice(0, HASH_PART_LENGTH)
      if (!this.#ahead.has(hashPart)) this.#queue.add(hashPart)
    }
    this.#pump()
  }

  /** Nix asked for `hashPart`: true when it had been read ahead (or is being read). */
  asked (hashPart: string): boolean {
    // A request after a long pause is a new walk: not a reason to go on with the old one.
    this.#dropIfIdle()
    this.#lastAsked = Date.now()
    // Nix's own request looks it up now, if it was still waiting here.
    this.#queue.delete(hashPart)
    if (!this.#ahead.delete(hashPart)) return false
    this.#pump()
    return true
  }

  /** Narinfos read ahead that Nix has not asked for yet. */
  get ahead (): number {
    return this.#ahead.size
  }

  /** Reads nothing more; lookups running finish into the cache. */
  stop (): void {
    this.#stopped = true
    this.#queue.clear()
    this.#ahead.clear()
  }

  #pump (): void {
    this.#dropIfIdle()
    this.#dropStale()
    const { concurrency, maxAhead } = this.#limits
    for (const hashPart of this.#queue) {
      if (this.#stopped || this.#running >= concurrency || this.#ahead.size >= maxAhead) return
      this.#queue.delete(hashPart)
      if (this.#wanted(hashPart)) this.#start(hashPart)
    }
  }

  #start (hashPart: string): void {
    this.#running += 1
    this.#ahead.set(hashPart, Date.now())
    this.#read(hashPart)
      .then((info) => {
        if (info === undefined) this.#ahead.delete(hashPart)
        else this.follow(info)
      }, () => {
        // A failed lookup only means Nix's request asks the peers itself.
        this.#ahead.delete(hashPart)
      })
      .finally(() => {
        this.#running -= 1
        this.#pump()
      })
  }

  #dropIfIdle (): void {
    if (Date.now() - this.#lastAsked > this.#limits.idleMs) this.#queue.clear()
  }

  /** Forgets answers Nix did not ask for while the cache kept them. */
  #dropStale (): void {
    const oldest = Date.now() - this.#limits.ttlMs
    for (const [hashPart, at] of this.#ahead) {
      if (at > oldest) return
      this.#ahead.delete(hashPart)
    }
  }
}
