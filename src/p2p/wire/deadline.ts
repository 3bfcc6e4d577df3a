/** Time limits for one exchange with a peer, combined with the caller's own signal. */
import { setMaxListeners } from '@libp2p/interface'
import { describe } from './describe.js'

/** Thrown into a signal whose time ran out, like AbortSignal.timeout's TimeoutError. */
export class TimeLimitExpired extends Error {
  override name = 'TimeoutError'
}

export interface TimeLimit {
  signal: AbortSignal
  /** True once the time ran out (not when the caller aborted). */
  readonly expired: boolean
  /** Stops the timer and lets go of the caller's signal: call once the wait is over. */
  clear: () => void
}

/**
 * A signal that aborts after `ms` or when `caller` aborts, and can be cleared when the wait
 * ends early. AbortSignal.timeout cannot be: its timer and signal stay in the heap until the
 * time runs out, seconds after the exchange they guarded. A daemon answering hundreds of
 * narinfos a second kept thousands alive, promoted out of the young generation, and every
 * scavenge copied them (measured with --trace-gc-nvp on the shim: ~100 KB survived each
 * scavenge). AbortSignal.any adds weak references the collector must process as well.
 */
export function timeLimit (ms: number, caller?: AbortSignal): TimeLimit {
  const controller = new AbortController()
  let expired = false
  const onCallerAbort = (): void => { controller.abort(caller?.reason) }
  const timer = setTimeout(() => {
    expired = true
    controller.abort(new TimeLimitExpired(`no answer within ${ms} ms`))
  }, ms)
  timer.unref()
  if (caller?.aborted === true) onCallerAbort()
  else caller?.addEventListener('abort', onCallerAbort, { once: true })
  return {
    signal: controller.signal,
    get expired () { return expired },
    clear: () => {
      clearTimeout(timer)
      caller?.removeEventListener('abort', onCallerAbort)
    }
  }
}

export interface Deadline {
  signal: AbortSignal
  /** Why the exchange failed, naming our time limit when it is what expired. */
  explain: (err: unknown) => string
  /** Ends the time limit: call once the exchange is over. */
  clear: () => void
}

export function deadline (timeout: number, caller?: AbortSignal): Deadline {
  const limit = timeLimit(timeout, caller)
  // libp2p adds a listener per dial step; the default limit of 10 would only warn
  setMaxListeners(Infinity, limit.signal)
  return {
    signal: limit.signal,
    clear: limit.clear,
    explain: (err) => {
      if (caller?.aborted === true) return 'cancelled by the caller'
      if (limit.expired) return `no answer within ${timeout} ms`
      return describe(err)
    }
  }
}
