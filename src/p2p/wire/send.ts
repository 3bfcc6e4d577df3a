/** Writing to a libp2p stream with back-pressure and a bound on how long the peer may stall. */
import { TimeoutError } from '@libp2p/interface'
import type { Stream } from '@libp2p/interface'
import type { Uint8ArrayList } from 'uint8arraylist'

/**
 * Queues `data` on the stream; when the muxer says its window is full, waits until the peer
 * has read enough, for at most `stallTimeout` ms (a peer that stops reading cannot hold our
 * handler forever).
 */
export async function send (stream: Stream, data: Uint8Array | Uint8ArrayList, stallTimeout: number): Promise<void> {
  if (stream.send(data)) return
  const timer = AbortSignal.timeout(stallTimeout)
  try {
    await stream.onDrain({ signal: timer })
  } catch (err) {
    if (timer.aborted) throw new TimeoutError(`the peer read nothing for ${stallTimeout} ms`)
    throw err
  }
}
