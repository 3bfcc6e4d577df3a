/**
 * Small NARs fetched as soon as their narinfo is answered (or kept when they came in the
 * narinfo's answer), so that Nix's request for the NAR is answered from memory. Nix asks for
 * the narinfos of a whole closure before it asks for the first NAR, and for a small path the
 * round trip to a peer and back (two more processes to wake) costs more than its bytes: through the shim a 4–64 kB NAR took 3.9–4.6 ms to its
 * response headers against 1.6–1.8 ms from a static cache (`bench/closure-timeline.ts 290
 * --leaf-bytes 4000-64000`). Large NARs are not prefetched: their bytes cost more than the
 * round trip, and holding them would cost memory. What is prefetched is verified like any
 * download (downloadNar), kept within a byte budget and for a limited time, and handed out once.
 */

/** NARs up to this size are prefetched. */
export const PREFETCH_MAX_NAR_BYTES = 64 * 1024
/** Prefetched NARs held at once, in bytes (taken or expired ones make room). */
export const PREFETCH_BUDGET_BYTES = 8 * 1024 * 1024
/** Prefetches running at once; NARs offered meanwhile wait their turn. */
export const PREFETCH_CONCURRENCY = 4
/** NARs waiting for a prefetch slot or for room in the budget; more offers are dropped. */
export const PREFETCH_MAX_QUEUED = 4096
/** A prefetched NAR Nix has not asked for within this long is dropped. */
export const PREFETCH_TTL_MS = 120_000

/** Fetches a whole NAR, verified; throws when it cannot. */
export type FetchNar = (hashPart: string, narHash: string, narSize: number, signal: AbortSignal) => Promise<Uint8Array>

interface Offer {
  hashPart: string
  narHash: string
  narSize: number
  /** Past this, Nix has not asked for it in time: it is not fetched. */
  expires: number
}

interface Entry {
  narSize: number
  /** The NAR's bytes, or undefined when the prefetch failed. */
  bytes: Promise<Uint8Array | undefined>
  settled: boolean
  expires: number
}

export interface PrefetchLimits {
  maxNarBytes: number
  budgetBytes: number
  concurrency: number
  maxQueued: number
  ttlMs: number
}

export class NarPrefetcher {
  /** By `<hashPart>-<narHash>`, oldest first. */
  readonly #entries = new Map<string, Entry>()
  /** Offers waiting for a slot or for room, by the same key, oldest first. */
  readonly #queue = new Map<string, Offer>()
  readonly #fetch: FetchNar
  readonly #limits: PrefetchLimits
  readonly #stop = new AbortController()
  #heldBytes = 0
  #running = 0

  constructor (fetch: FetchNar, limits: Partial<PrefetchLimits> = {}) {
    this.#fetch = fetch
    this.#limits = {
      maxNarBytes: limits.maxNarBytes ?? PREFETCH_MAX_NAR_BYTES,
      budgetBytes: limits.budgetBytes ?? PREFETCH_BUDGET_BYTES,
      concurrency: limits.concurrency ?? PREFETCH_CONCURRENCY,
      maxQueued: limits.maxQueued ?? PREFETCH_MAX_QUEUED,
      ttlMs: limits.ttlMs ?? PREFETCH_TTL_MS
    }
  }

  /**
   * A narinfo for this NAR was given to Nix: fetch the NAR if it is small, now if there is a
   * slot and room, else once there are (a closure's narinfos come faster than its NARs).
   */
  offer (hashPart: string, narHash: string, narSize: number): void {
    this.#dropExpired()
    const key = `${hashPart}-${narHash}`
    if (this.#stop.signal.aborted || narSize > this.#limits.maxNarBytes || this.#entries.has(key) || this.#queue.has(key)) return
    if (this.#queue.size >= this.#limits.maxQueued) return
    this.#queue.set(key, { hashPart, narHash, narSize, expires: Date.now() + this.#limits.ttlMs })
    this.#pump()
  }

  /** The largest NAR that may still be kept (hold): no larger than a prefetch, and room left for it. */
  roomFor (): number {
    if (this.#stop.signal.aborted) return 0
    return Math.max(0, Math.min(this.#limits.maxNarBytes, this.#limits.budgetBytes - this.#heldBytes))
  }

  /**
   * Keeps a verified NAR that came with its narinfo, as if it had been prefetched; false when it
   * is too large, there is no room, or this NAR is held or being fetched already.
   */
  hold (hashPart: string, narHash: string, nar: Uint8Array): boolean {
    this.#dropExpired()
    const key = `${hashPart}-${narHash}`
    const narSize = nar.byteLength
    if (narSize > this.roomFor() || this.#entries.has(key)) return false
    this.#queue.delete(key)
    this.#heldBytes += narSize
    this.#entries.set(key, { narSize, settled: true, expires: Date.now() + this.#limits.ttlMs, bytes: Promise.resolve(nar) })
    return true
  }

  /** Starts queued offers while there are slots and room, in the order they came. */
  #pump (): void {
    const now = Date.now()
    for (const [key, offer] of this.#queue) {
      if (offer.expires <= now) {
        this.#queue.delete(key)
        continue
      }
      if (this.#stop.signal.aborted || this.#running >= this.#limits.concurrency || this.#heldBytes + offer.narSize > this.#limits.budgetBytes) return
      this.#queue.delete(key)
      this.#start(key, offer)
    }
  }

  #start (key: string, { hashPart, narHash, narSize }: Offer): void {
    this.#running += 1
    this.#heldBytes += narSize
    const entry: Entry = { narSize, settled: false, expires: Date.now() + this.#limits.ttlMs, bytes: Promise.resolve(undefined) }
    entry.bytes = this.#fetch(hashPart, narHash, narSize, this.#stop.signal)
      .catch(() => {
        // A failed prefetch only means Nix's own request goes to the peers as usual.
        this.#forget(key, entry)
        return undefined
      })
      .finally(() => {
        this.#running -= 1
        entry.settled = true
        this.#pump()
      })
    this.#entries.set(key, entry)
  }

  /**
   * The NAR's bytes if they were prefetched (waiting for a prefetch still running), handed out
   * once; undefined when there are none, and Nix's request is to be fetched as usual.
   */
  async take (hashPart: string, narHash: string): Promise<Uint8Array | undefined> {
    const key = `${hashPart}-${narHash}`
    this.#queue.delete(key)
    const entry = this.#entries.get(key)
    if (entry === undefined) return undefined
    this.#forget(key, entry)
    this.#pump()
    return await entry.bytes
  }

  /** The size of this NAR if it is held or being fetched (a failed prefetch lets go of it). */
  narSize (hashPart: string, narHash: string): number | undefined {
    return this.#entries.get(`${hashPart}-${narHash}`)?.narSize
  }

  /**
   * The size of this NAR once its bytes are held, waiting for a prefetch still running;
   * undefined when there are none (never prefetched, taken, or the prefetch failed), or once
   * `signal` aborts: Nix that left stops waiting, the prefetch goes on for its next request.
   */
  async ready (hashPart: string, narHash: string, signal?: AbortSignal): Promise<number | undefined> {
    const key = `${hashPart}-${narHash}`
    // Nix asks before its turn came: its request fetches it, not a prefetch later.
    this.#queue.delete(key)
    const entry = this.#entries.get(key)
    if (entry === undefined || await untilAborted(entry.bytes, signal) === undefined) return undefined
    return this.#entries.get(key) === entry ? entry.narSize : undefined
  }

  /** Bytes held or being fetched. */
  get heldBytes (): number {
    return this.#heldBytes
  }

  /** Stops every prefetch and drops what was fetched. */
  stop (): void {
    this.#stop.abort(new Error('the substituter stopped'))
    this.#queue.clear()
    for (const [key, entry] of this.#entries) this.#forget(key, entry)
  }

  #forget (key: string, entry: Entry): void {
    if (this.#entries.get(key) !== entry) return
    this.#entries.delete(key)
    this.#heldBytes -= entry.narSize
  }

  /** Drops settled entries past their time (the oldest come first). */
  #dropExpired (): void {
    const now = Date.now()
    for (const [key, entry] of this.#entries) {
      if (entry.expires > now) break
      if (entry.settled) this.#forget(key, entry)
    }
  }
}

/** `promise`'s value, or undefined as soon as `signal` aborts. */
async function untilAborted<T> (promise: Promise<T>, signal: AbortSignal | undefined): Promise<T | undefined> {
  if (signal === undefined) return await promise
  if (signal.aborted) return undefined
  let onAbort: (() => void) | undefined
  try {
    return await Promise.race([promise, new Promise<undefined>(resolve => { onAbort = () => { resolve(undefined) }; signal.addEventListener('abort', onAbort, { once: true }) })])
  } finally {
    if (onAbort !== undefined) signal.removeEventListener('abort', onAbort)
  }
}
