/**
 * Reads one libp2p stream as frames and raw bytes, over as many exchanges as the stream
 * carries, with the limits a peer that is not trusted needs: frames have a maximum size,
 * waits have an idle timeout, and a slow consumer pauses the stream (yamux then stops
 * granting window, so the sender waits) instead of buffering without bound.
 *
 * `lpStream` from @libp2p/utils reads frames, but handing its leftover bytes back to the
 * stream fails once the remote has closed, which is exactly when a small NAR has arrived
 * whole; one reader for the header and the body avoids that hand-over.
 */
import { ProtocolError, TimeoutError } from '@libp2p/interface'
import { Uint8ArrayList } from 'uint8arraylist'
import { FormatError } from '../../nix/errors.js'
import { RepeatedWaits } from '../../repeated-waits.js'
import { varintLength } from './frame.js'
import type { Stream, StreamCloseEvent, StreamMessageEvent } from '@libp2p/interface'

export interface ReadOptions {
  signal?: AbortSignal
  /** Fail when the peer sends nothing for this long while we wait for it. */
  idleTimeout?: number
}

export interface StreamReaderInit {
  /** Unread bytes at which the stream is paused until the consumer catches up. */
  highWaterMark?: number
}

const DEFAULT_HIGH_WATER_MARK = 1024 * 1024

/**
 * For a responder, which reads only requests (a few hundred bytes, one at a time from an
 * honest requester): a peer pipelining requests while one is answered otherwise had the
 * stream keep taking them, and yamux widen its window, until megabytes per stream were held
 * (4.5 MB measured, test/p2p/narinfo.test.ts), on each of hundreds of streams.
 */
export const RESPONDER_HIGH_WATER_MARK = 16 * 1024

export class StreamReader {
  readonly #stream: Stream
  readonly #buffer = new Uint8ArrayList()
  readonly #highWaterMark: number
  #ended = false
  #received = 0
  #pausePending = false
  #error?: Error
  #wake?: () => void

  constructor (stream: Stream, init: StreamReaderInit = {}) {
    this.#stream = stream
    this.#highWaterMark = init.highWaterMark ?? DEFAULT_HIGH_WATER_MARK
    // a remote that answers without reading may have sent everything and closed its side
    // while the stream was being opened, before these listeners existed
    this.#ended = stream.remoteWriteStatus === 'closed'
    stream.addEventListener('message', this.#onMessage)
    stream.addEventListener('remoteCloseWrite', this.#onEnd)
    stream.addEventListener('close', this.#onClose)
  }

  /** Stops listening to the stream; what is still buffered is dropped. */
  dispose (): void {
    this.#stream.removeEventListener('message', this.#onMessage)
    this.#stream.removeEventListener('remoteCloseWrite', this.#onEnd)
    this.#stream.removeEventListener('close', this.#onClose)
    this.#buffer.consume(this.#buffer.byteLength)
  }

  /** Bytes received over the stream's whole life: unchanged means the peer sent nothing since. */
  get received (): number {
    return this.#received
  }

  /** Bytes received and not read yet. */
  get buffered (): number {
    return this.#buffer.byteLength
  }

  /**
   * Waits for the next byte: true once one is buffered, false when the stream ended cleanly
   * before (a peer done with the stream). Throws when it is reset, the signal aborts or the
   * idle timeout passes.
   */
  async hasMore (options: ReadOptions = {}): Promise<boolean> {
    return await this.#fill(1, options)
  }

  /**
   * The body of the next frame. Throws a FormatError when the frame announces more than
   * `maxLength` bytes (before reading them) or the stream ends inside it.
   */
  async readFrame (maxLength: number, options: ReadOptions = {}): Promise<Uint8Array> {
    const maxPrefix = varintLength(maxLength)
    let length = 0
    let prefix = 0
    for (let i = 0; prefix === 0; i++) {
      if (i === maxPrefix) throw new FormatError(`frame length prefix announces more than the limit of ${maxLength} bytes`)
      if (!await this.#fill(i + 1, options)) {
        throw new FormatError(i === 0 ? 'the stream ended before a frame' : 'the stream ended inside a frame length prefix')
      }
      const byte = this.#buffer.get(i)
      length += (byte & 0x7f) * 2 ** (7 * i)
      if ((byte & 0x80) === 0) {
        if (byte === 0 && i > 0) throw new FormatError('frame length prefix is not minimally encoded')
        prefix = i + 1
      }
    }
    if (length > maxLength) throw new FormatError(`frame of ${length} bytes exceeds the limit of ${maxLength} bytes`)
    if (!await this.#fill(prefix + length, options)) {
      throw new FormatError(`the stream ended after ${this.#buffer.byteLength - prefix} of the frame's ${length} bytes`)
    }
    const body = this.#buffer.subarray(prefix, prefix + length)
    this.#buffer.consume(prefix + length)
    return body
  }

  /**
   * Exactly `length` raw bytes. The stream stays open for a next exchange, so its end is not
   * awaited; throws a ProtocolError when the stream ends early or when bytes past `length`
   * have already arrived, and the stream's own error when it is reset.
   */
  async * readBody (length: number, options: ReadOptions = {}): AsyncGenerator<Uint8Array> {
    let received = 0
    const waits = new RepeatedWaits(options.idleTimeout, options.signal, ms => new TimeoutError(`the peer sent nothing for ${ms} ms`))
    try {
      while (received < length) {
        options.signal?.throwIfAborted()
        if (!await this.#fill(1, options, waits)) throw new ProtocolError(`the stream ended after ${received} of the ${length} bytes announced`)
        if (received + this.#buffer.byteLength > length) throw new ProtocolError(`the peer sent more than the ${length} bytes it announced`)
        const chunks = [...this.#buffer]
        this.#buffer.consume(this.#buffer.byteLength)
        for (const chunk of chunks) {
          received += chunk.byteLength
          yield chunk
        }
      }
    } finally {
      waits.dispose()
    }
    // the last bytes may have paused the stream: resuming hands over what it held back
    if (this.#stream.readStatus === 'paused') this.#stream.resume()
    if (this.#buffer.byteLength > 0) throw new ProtocolError(`the peer sent more than the ${length} bytes it announced`)
  }

  #onMessage = (evt: StreamMessageEvent): void => {
    this.#buffer.append(evt.data)
    this.#received += evt.data.byteLength
    if (this.#buffer.byteLength >= this.#highWaterMark) this.#pauseSoon()
    this.#notify()
  }

  /**
   * Pauses after the current call stack: `stream.resume()` hands over the held-back bytes
   * (this handler) and only then tells yamux to resume, so a pause from inside the handler
   * would be undone at once and yamux would grant window without bound.
   */
  #pauseSoon (): void {
    if (this.#pausePending) return
    this.#pausePending = true
    queueMicrotask(() => {
      this.#pausePending = false
      if (this.#buffer.byteLength >= this.#highWaterMark && this.#stream.readStatus === 'readable') this.#stream.pause()
    })
  }

  #onEnd = (): void => {
    this.#ended = true
    this.#notify()
  }

  #onClose = (evt: StreamCloseEvent): void => {
    if (evt.error != null) this.#error ??= evt.error
    this.#ended = true
    this.#notify()
  }

  #notify (): void {
    const wake = this.#wake
    this.#wake = undefined
    wake?.()
  }

  /**
   * Waits until `bytes` are buffered: true, or false when the stream ended cleanly before.
   * A body's many waits share `waits` (one timer and listener for all), a frame's have their own.
   */
  async #fill (bytes: number, options: ReadOptions, waits?: RepeatedWaits): Promise<boolean> {
    while (this.#buffer.byteLength < bytes) {
      options.signal?.throwIfAborted()
      // resuming hands over what the stream held back while paused, even after the remote ended
      if (this.#stream.readStatus === 'paused') {
        this.#stream.resume()
        continue
      }
      if (this.#error != null) throw this.#error
      // bytes the stream holds for a listener that was just added come in a later tick
      if (this.#ended && this.#stream.readBufferLength === 0) return false
      await (waits !== undefined ? waits.wait<void>(resolve => { this.#wake = () => { resolve() } }) : this.#nextEvent(options))
    }
    return true
  }

  #nextEvent ({ signal, idleTimeout }: ReadOptions): Promise<void> {
    return new Promise((resolve, reject) => {
      const done = (err?: unknown): void => {
        clearTimeout(timer)
        signal?.removeEventListener('abort', onAbort)
        this.#wake = undefined
        if (err === undefined) resolve()
        else reject(err)
      }
      const onAbort = (): void => { done(signal?.reason ?? new Error('aborted')) }
      const timer = idleTimeout === undefined
        ? undefined
        : setTimeout(() => { done(new TimeoutError(`the peer sent nothing for ${idleTimeout} ms`)) }, idleTimeout)
      if (signal?.aborted === true) { onAbort(); return }
      signal?.addEventListener('abort', onAbort, { once: true })
      this.#wake = () => { done() }
    })
  }
}
