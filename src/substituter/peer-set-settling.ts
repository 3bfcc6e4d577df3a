/**
 * The startup grace. A daemon that just started cannot tell "no peer has it" from "the peer
 * that has it has not connected yet", and Nix keeps a narinfo 404 for an hour. So lookups wait
 * until the set of peers has settled (one is connected and the count has not changed for
 * `settleMs`: peers found together connect together) or until `graceMs` after the start.
 */

/** How often the peer count is looked at while the grace lasts. */
const POLL_MS = 50

export class PeerSetSettling {
  readonly #count: () => number
  readonly #ends: number
  readonly #settleMs: number
  readonly #waiters = new Set<() => void>()
  readonly #timer: NodeJS.Timeout
  #seen = 0
  #changedAt = Date.now()
  #over = false

  constructor (count: () => number, graceMs: number, settleMs: number) {
    this.#count = count
    this.#ends = Date.now() + graceMs
    this.#settleMs = settleMs
    // watched from the start, so a peer set that settled before the first request costs it nothing
    this.#timer = setInterval(() => { this.#check() }, POLL_MS)
    this.#timer.unref()
    this.#check()
  }

  /** Resolves once the peers have settled, the grace is over, or `signal` aborts. */
  async settled (signal?: AbortSignal): Promise<void> {
    this.#check()
    if (this.#over || signal?.aborted === true) return
    await new Promise<void>(resolve => {
      const done = (): void => {
        this.#waiters.delete(done)
        signal?.removeEventListener('abort', done)
        resolve()
      }
      this.#waiters.add(done)
      signal?.addEventListener('abort', done, { once: true })
    })
  }

  /** Ends the grace now (the daemon stops). */
  stop (): void {
    this.#finish()
  }

  #check (): void {
    if (this.#over) return
    const now = Date.now()
    const count = this.#count()
    if (count !== this.#seen) {
      this.#seen = count
      this.#changedAt = now
    }
    if (now >= this.#ends || (count > 0 && now - this.#changedAt >= this.#settleMs)) this.#finish()
  }

  #finish (): void {
    this.#over = true
    clearInterval(this.#timer)
    for (const done of [...this.#waiters]) done()
  }
}
