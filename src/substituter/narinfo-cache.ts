/**
 * Verified narinfos kept for a few seconds. Nix asks for the same narinfo several times per
 * path (HEAD, then GET, from `nix copy` and again from the substitution goal); one lookup
 * answers them all, and requests that arrive while a lookup runs share it. The shared lookup
 * is cancelled only when every caller waiting for it has gone.
 */
import type { NarInfo } from '../nix/narinfo.js'

export const NARINFO_CACHE_MS = 10_000
export const NARINFO_CACHE_ENTRIES = 4096

interface Pending {
  result: Promise<NarInfo | undefined>
  controller: AbortController
  waiting: number
}

export class NarInfoCache {
  private readonly entries = new Map<string, { info: NarInfo, expires: number }>()
  private readonly pending = new Map<string, Pending>()

  constructor (private readonly ttlMs = NARINFO_CACHE_MS, private readonly maxEntries = NARINFO_CACHE_ENTRIES) {}

  /**
   * The cached narinfo while it is fresh and `stillValid` says so, else the result of
   * `lookup`, shared with callers asking for the same hash part meanwhile. `lookup` is handed
   * the entry that expired (or is no longer valid), if one was kept: what to fall back on when
   * the peers do not answer. Resolves undefined at once when `signal` aborts.
   */
  async get (hashPart: string, stillValid: (info: NarInfo) => boolean, lookup: (signal: AbortSignal, expired?: NarInfo) => Promise<NarInfo | undefined>, signal?: AbortSignal): Promise<NarInfo | undefined> {
    const entry = this.entries.get(hashPart)
    let expired: NarInfo | undefined
    if (entry !== undefined) {
      if (entry.expires > Date.now() && stillValid(entry.info)) return entry.info
      this.entries.delete(hashPart)
      expired = entry.info
    }
    if (signal?.aborted === true) return undefined
    const pending = this.pending.get(hashPart) ?? this.start(hashPart, async (lookupSignal) => await lookup(lookupSignal, expired))
    pending.waiting++
    let gone = false
    let onAbort = (): void => {}
    const left = new Promise<undefined>((resolve) => {
      onAbort = () => {
        gone = true
        if (--pending.waiting === 0) pending.controller.abort(signal?.reason)
        resolve(undefined)
      }
    })
    signal?.addEventListener('abort', onAbort, { once: true })
    try {
      return await Promise.race([pending.result, left])
    } finally {
      signal?.removeEventListener('abort', onAbort)
      if (!gone) pending.waiting--
    }
  }

  /** Whether a fresh answer for `hashPart` is kept or being looked up. */
  covers (hashPart: string): boolean {
    return (this.entries.get(hashPart)?.expires ?? 0) > Date.now() || this.pending.has(hashPart)
  }

  /** Whether an answer for `hashPart` is kept (fresh or not) or being looked up. */
  has (hashPart: string): boolean {
    return this.entries.has(hashPart) || this.pending.has(hashPart)
  }

  private start (hashPart: string, lookup: (signal: AbortSignal) => Promise<NarInfo | undefined>): Pending {
    const controller = new AbortController()
    const result = lookup(controller.signal).then((info) => {
      if (info !== undefined && this.ttlMs > 0) this.remember(hashPart, info)
      return info
    }).finally(() => { this.pending.delete(hashPart) })
    const pending = { result, controller, waiting: 0 }
    this.pending.set(hashPart, pending)
    return pending
  }

  private remember (hashPart: string, info: NarInfo): void {
    this.entries.set(hashPart, { info, expires: Date.now() + this.ttlMs })
    if (this.entries.size > this.maxEntries) {
      const oldest = this.entries.keys().next().value
      if (oldest !== undefined) this.entries.delete(oldest)
    }
  }
}
