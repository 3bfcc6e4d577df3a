/** The streams a service is answering peers on, cut all at once when the node stops. */
import type { Stream } from '@libp2p/interface'

/**
 * Why: libp2p 3.3's connection manager stops by closing each connection with one
 * `AbortSignal.timeout(500)` handed to every stream's `close`, and each stream that still has
 * bytes queued waits for them on that signal: one abort listener per stream. A host stopped
 * while it streamed NARs to a peer on 11 or more streams logged Node's
 * MaxListenersExceededWarning ("Possible EventTarget memory leak detected"), on every restart
 * during a big copy. Those answers are cut by the stop anyway (the handler's next write to a
 * closing stream throws, and it resets the stream), so the services cut them first, in
 * `beforeStop`: libp2p then finds no queued bytes to wait for, and nothing is added to its
 * signal. The requester resumes from the bytes it has, from another peer or from this one
 * once it is back.
 */
export class Answering {
  readonly #streams = new Set<Stream>()
  #stopping = false

  /** Answers again (a node started after a stop). */
  start (): void {
    this.#stopping = false
  }

  /** Tracks `stream` until `done`; false, with the stream reset, once the node is stopping. */
  add (stream: Stream): boolean {
    if (this.#stopping) {
      stream.abort(stopping())
      return false
    }
    this.#streams.add(stream)
    return true
  }

  done (stream: Stream): void {
    this.#streams.delete(stream)
  }

  /** Resets every stream being answered, and any handed over from now on. */
  stop (): void {
    this.#stopping = true
    const err = stopping()
    for (const stream of this.#streams) stream.abort(err)
    this.#streams.clear()
  }
}

function stopping (): Error {
  return new Error('this host is stopping')
}
