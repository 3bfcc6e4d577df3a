/** Time limits for one exchange with a peer, combined with the caller's own signal. */
import { setMaxListeners } from '@libp2p/interface'
import { describe } from './describe.js'

export interface Deadline {
  signal: AbortSignal
  /** Why the exchange failed, naming our time limit when it is what expired. */
  explain: (err: unknown) => string
}

export function deadline (timeout: number, caller?: AbortSignal): Deadline {
  const timer = AbortSignal.timeout(timeout)
  const signal = caller == null ? timer : AbortSignal.any([caller, timer])
  // libp2p adds a listener per dial step; the default limit of 10 would only warn
  setMaxListeners(Infinity, signal)
  return {
    signal,
    explain: (err) => {
      if (caller?.aborted === true) return 'cancelled by the caller'
      if (timer.aborted) return `no answer within ${timeout} ms`
      return describe(err)
    }
  }
}
