/** Writing to a libp2p stream with back-pressure and a bound on how long the peer may stall. */
import { TimeoutError } from '@libp2p/interface'
import type { Stream, StreamCloseEvent } from '@libp2p/interface'
import type { Uint8ArrayList } from 'uint8arraylist'

/**
 * Queues `data` on the stream; when the muxer says its window is full, waits until the peer
 * has read enough, for at most `stallTimeout` ms (a peer that stops reading cannot hold our
 * handler forever).
 */
export async function send (stream: Stream, data: Uint8Array | Uint8ArrayList, stallTimeout: number): Promise<void> {
  if (stream.send(data)) return
  await drained(stream, stallTimeout)
}

/**
 * Waits for the stream's `drain` event. Not `stream.onDrain()`: in @libp2p/utils 7.4 it keeps
 * the promise of the first drain, so every later call resolves at once and a sender that
 * trusts it buffers without bound.
 */
async function drained (stream: Stream, stallTimeout: number): Promise<void> {
  if (!stream.writableNeedsDrain) return
  await new Promise<void>((resolve, reject) => {
    const done = (err?: Error): void => {
      clearTimeout(timer)
      stream.removeEventListener('drain', onDrain)
      stream.removeEventListener('close', onClose)
      if (err === undefined) resolve()
      else reject(err)
    }
    const onDrain = (): void => { done() }
    const onClose = (evt: StreamCloseEvent): void => { done(evt.error ?? new Error('the stream closed while sending')) }
    const timer = setTimeout(() => { done(new TimeoutError(`the peer read nothing for ${stallTimeout} ms`)) }, stallTimeout)
    stream.addEventListener('drain', onDrain)
    stream.addEventListener('close', onClose)
  })
}
