/** Writing to a libp2p stream with back-pressure and a bound on how long the peer may stall. */
import { TimeoutError } from '@libp2p/interface'
import type { Stream, StreamCloseEvent } from '@libp2p/interface'
import type { Uint8ArrayList } from 'uint8arraylist'

/**
 * Queues `data` on the stream; when the muxer cannot take it all, waits until no more than
 * `highWater` bytes of the stream's own are still queued (by default none), for at most
 * `stallTimeout` ms: a peer that stops reading cannot hold our handler forever, nor make us
 * queue more than `highWater` plus one `data` for it.
 */
export async function send (stream: Stream, data: Uint8Array | Uint8ArrayList, stallTimeout: number, highWater = 0): Promise<void> {
  if (stream.send(data)) return
  await flushed(stream, highWater, stallTimeout)
}

/**
 * Waits until all that is queued on the stream has been handed to the muxer; true when it
 * went out, false when the stream can no longer deliver it (reset, aborted, or the peer
 * closed its reading end: libp2p then drops what was queued). Throws as `send` does when the
 * peer reads nothing for `stallTimeout` ms.
 */
export async function delivered (stream: Stream, stallTimeout: number): Promise<boolean> {
  if (!canDeliver(stream)) return false // closed already: no event would end the wait
  await flushed(stream, 0, stallTimeout)
  return canDeliver(stream)
}

/**
 * True while what is queued on the stream can still reach the peer: our writing end open and
 * the peer's reading end too. Once either is closed libp2p throws the queued bytes away (and
 * says `idle`, as if they had been sent).
 */
export function canDeliver (stream: Stream): boolean {
  return stream.writeStatus === 'writable' && stream.remoteReadStatus !== 'closed'
}

/**
 * Waits until the stream's write buffer holds at most `highWater` bytes. Not the `drain` event
 * alone: @libp2p/utils 7.4 sends it to every stream of a connection whenever the connection's
 * socket drains, also to a stream whose yamux window the peer keeps shut, and a sender that
 * took each such drain for room queued a whole NAR in memory while another stream of the same
 * connection kept the socket busy. Not `stream.onDrain()` either: it keeps the promise of the
 * first drain, so every later call resolves at once.
 */
async function flushed (stream: Stream, highWater: number, stallTimeout: number): Promise<void> {
  if (stream.writeBufferLength <= highWater) return
  await new Promise<void>((resolve, reject) => {
    const done = (err?: Error): void => {
      clearTimeout(timer)
      stream.removeEventListener('drain', onDrain)
      stream.removeEventListener('idle', check)
      stream.removeEventListener('close', onClose)
      if (err === undefined) resolve()
      else reject(err)
    }
    const check = (): void => { if (stream.writeBufferLength <= highWater) done() }
    // The stream's own drain listener (added when it was made, so it runs first) sends what
    // it can in a microtask; look at the buffer after that one.
    const onDrain = (): void => { queueMicrotask(check) }
    const onClose = (evt: StreamCloseEvent): void => { done(evt.error ?? new Error('the stream closed while sending')) }
    const timer = setTimeout(() => { done(new TimeoutError(`the peer read nothing for ${stallTimeout} ms`)) }, stallTimeout)
    stream.addEventListener('drain', onDrain)
    stream.addEventListener('idle', check)
    stream.addEventListener('close', onClose)
  })
}
