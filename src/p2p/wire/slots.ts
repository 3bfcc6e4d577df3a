/**
 * A fixed number of slots per key (a peer), handed out first come, first served. Why: a
 * responder resets the streams of a protocol beyond its per-connection limit, and the
 * requester then sees the exchange fail at byte 0; a request that waits for a slot instead
 * proceeds once one of the peer's other exchanges ends.
 */

/** A taken slot. `release` gives it to the next waiter, or frees it; calling it again does nothing. */
export interface Slot {
  release: () => void
}

export interface TakeOptions {
  /** Leaves the queue at once when aborted: `take` rejects with the signal's reason. */
  signal?: AbortSignal
  /**
   * Called synchronously, from within `take`, when every slot is taken and the request joins
   * the queue: `granted` resolves when it has its slot (rejects when aborted or cancelled).
   */
  onQueued?: (granted: Promise<void>) => void
}

interface Waiter {
  grant: (slot: Slot) => void
  fail: (err: unknown) => void
}

export class Slots {
  readonly limit: number
  /** Slots taken per key; a key with none taken and none waiting is dropped. */
  readonly #taken = new Map<string, number>()
  readonly #queues = new Map<string, Waiter[]>()

  constructor (limit: number) {
    if (!(Number.isSafeInteger(limit) && limit > 0)) throw new RangeError(`a slot limit must be a positive integer, not ${limit}`)
    this.limit = limit
  }

  /** Slots of `key` in use now. */
  taken (key: string): number {
    return this.#taken.get(key) ?? 0
  }

  /** Requests of `key` waiting for a slot. */
  waiting (key: string): number {
    return this.#queues.get(key)?.length ?? 0
  }

  /** A slot of `key`: at once when one is free and nobody waits, else in turn. */
  async take (key: string, options: TakeOptions = {}): Promise<Slot> {
    const { signal } = options
    if (signal?.aborted === true) throw abortReason(signal)
    const taken = this.taken(key)
    if (taken < this.limit && this.waiting(key) === 0) {
      this.#taken.set(key, taken + 1)
      return this.#slot(key)
    }
    const granted = new Promise<Slot>((resolve, reject) => {
      const queue = this.#queues.get(key) ?? []
      this.#queues.set(key, queue)
      const leave = (): void => {
        const at = queue.indexOf(waiter)
        if (at >= 0) queue.splice(at, 1)
        if (queue.length === 0 && this.#queues.get(key) === queue) this.#queues.delete(key)
      }
      const onAbort = (): void => {
        leave()
        reject(abortReason(signal as AbortSignal))
      }
      const waiter: Waiter = {
        grant: (slot) => {
          signal?.removeEventListener('abort', onAbort)
          resolve(slot)
        },
        fail: (err) => {
          signal?.removeEventListener('abort', onAbort)
          leave()
          reject(err)
        }
      }
      queue.push(waiter)
      signal?.addEventListener('abort', onAbort, { once: true })
    })
    if (options.onQueued !== undefined) {
      const report = granted.then(() => {})
      report.catch(() => {})
      options.onQueued(report)
    }
    return await granted
  }

  /** Fails every waiting request with `reason` (the service stops); taken slots stay taken. */
  cancelWaiting (reason: Error): void {
    for (const queue of [...this.#queues.values()]) {
      for (const waiter of [...queue]) waiter.fail(reason)
    }
  }

  #slot (key: string): Slot {
    let released = false
    return {
      release: () => {
        if (released) return
        released = true
        this.#handOn(key)
      }
    }
  }

  /** A slot of `key` came free: the first waiter gets it, so nobody can overtake the queue. */
  #handOn (key: string): void {
    const queue = this.#queues.get(key)
    const next = queue?.shift()
    if (queue?.length === 0) this.#queues.delete(key)
    if (next !== undefined) {
      next.grant(this.#slot(key))
      return
    }
    const taken = this.taken(key) - 1
    if (taken > 0) this.#taken.set(key, taken)
    else this.#taken.delete(key)
  }
}

function abortReason (signal: AbortSignal): unknown {
  return signal.reason ?? new Error('aborted')
}
