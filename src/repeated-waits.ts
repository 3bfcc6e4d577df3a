/**
 * Many waits one after another, each under the same time limit and the same abort signal,
 * with one timer and one abort listener for all of them. A NAR body is ~30,000 waits per GiB
 * (one per piece the stream delivers), and a timer, an abort listener and their removal per
 * wait were a few per cent of the shim's CPU while a NAR streamed (bench/profile-nar.ts).
 * The timer is armed by a wait when none is pending and, when it fires, re-armed for what is
 * left of the wait then in progress, if any: time between waits does not count.
 */
export class RepeatedWaits {
  readonly #limitMs: number | undefined
  readonly #signal: AbortSignal | undefined
  readonly #expired: (limitMs: number) => Error
  #timer: NodeJS.Timeout | undefined
  /** When the wait in progress began (performance.now()). */
  #since = 0
  /** Rejects the wait in progress; undefined when none is. */
  #reject: ((err: unknown) => void) | undefined

  /** `limitMs` undefined: no time limit. `expired` makes the error of a wait that ran out. */
  constructor (limitMs: number | undefined, signal: AbortSignal | undefined, expired: (limitMs: number) => Error) {
    this.#limitMs = limitMs
    this.#signal = signal
    this.#expired = expired
    signal?.addEventListener('abort', this.#onAbort, { once: true })
  }

  /**
   * A wait begun at `since`: `start` gets the callbacks that end it; it also ends with the
   * limit's error or the abort reason. `start` runs even when the signal has aborted already,
   * so that whatever it waits on is handled.
   */
  async wait<T> (start: (resolve: (value: T) => void, reject: (err: unknown) => void) => void, since = performance.now()): Promise<T> {
    return await new Promise<T>((resolve, reject) => {
      const fail = (err: unknown): void => { reject(err) }
      const settled = (): void => { if (this.#reject === fail) this.#reject = undefined }
      start(value => { settled(); resolve(value) }, err => { settled(); reject(err) })
      if (this.#signal?.aborted === true) { reject(abortReason(this.#signal)); return }
      this.#reject = fail
      this.#since = since
      if (this.#timer === undefined && this.#limitMs !== undefined) this.#timer = setTimeout(this.#onTimer, this.#limitMs)
    })
  }

  dispose (): void {
    clearTimeout(this.#timer)
    this.#timer = undefined
    this.#reject = undefined
    this.#signal?.removeEventListener('abort', this.#onAbort)
  }

  readonly #onTimer = (): void => {
    this.#timer = undefined
    const limitMs = this.#limitMs ?? 0
    if (this.#reject === undefined) return
    const left = this.#since + limitMs - performance.now()
    if (left > 0) { this.#timer = setTimeout(this.#onTimer, left); return }
    this.#fail(this.#expired(limitMs))
  }

  readonly #onAbort = (): void => {
    if (this.#signal !== undefined) this.#fail(abortReason(this.#signal))
  }

  #fail (err: unknown): void {
    const reject = this.#reject
    this.#reject = undefined
    reject?.(err)
  }
}

function abortReason (signal: AbortSignal): unknown {
  return signal.reason ?? new Error('aborted')
}
