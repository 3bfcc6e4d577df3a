/**
 * Idle streams of one protocol, kept per peer for the next exchange. Opening a stream costs
 * 6–8.5 ms on loopback (multistream-select's round trip, peer store updates on both sides),
 * more than a narinfo answer itself; a stream that carried one exchange carries the next for
 * free. Each stream keeps its StreamReader: bytes read ahead belong to the stream, not to one
 * exchange.
 */
import { StreamReader } from './stream-reader.js'
import { Slots, type Slot, type TakeOptions } from './slots.js'
import type { AbortOptions, PeerId, Stream } from '@libp2p/interface'
import type { ConnectionManager } from '@libp2p/interface-internal'

/**
 * A stream with its reader; `reused` when it carried an exchange before this one. `slot` is
 * its place among the peer's busy streams, given up when the stream is released.
 */
export interface PooledStream {
  readonly peer: PeerId
  readonly stream: Stream
  readonly reader: StreamReader
  readonly reused: boolean
  readonly slot: Slot
}

export interface StreamPoolInit {
  protocol: string
  /** Idle streams kept per peer; more are closed when handed back. */
  maxIdlePerPeer: number
  /** An idle stream is closed after this long (ms), before the responder's own keep-alive ends. */
  idleTimeout: number
  /** Prepares a new stream and makes its reader (buffer limits, high-water mark). */
  createReader?: (stream: Stream) => StreamReader
  /**
   * Streams busy with an exchange at once per peer (default: no limit); more exchanges wait
   * for one to be released, first come, first served. New streams are opened only when no
   * idle one is left, so streams open to the peer, busy and idle, stay within this as well.
   */
  maxBusyPerPeer?: number
}

export interface ExchangeOptions extends AbortOptions {
  /** A slot taken before with `turn` (the exchange then owns it); else it takes one itself. */
  slot?: Slot
}

interface Idle {
  pooled: PooledStream
  /** Stops watching the stream: events and the idle timer. */
  unwatch: () => void
}

/** How long closing an idle stream may wait for our write side to flush before it is reset. */
const CLOSE_TIMEOUT = 5_000

/** What the pool opens streams with: libp2p's connection manager, or anything with its `openStream`. */
export type StreamOpener = Pick<ConnectionManager, 'openStream'>

export class StreamPool {
  readonly #connectionManager: StreamOpener
  readonly #init: StreamPoolInit
  readonly #idle = new Map<string, Idle[]>()
  /** Undefined without a limit: every turn is granted at once. */
  readonly #busy: Slots | undefined

  constructor (connectionManager: StreamOpener, init: StreamPoolInit) {
    this.#connectionManager = connectionManager
    this.#init = init
    this.#busy = init.maxBusyPerPeer === undefined ? undefined : new Slots(init.maxBusyPerPeer)
  }

  /**
   * A slot for one exchange with `peer`, at once or once one of its busy streams is released
   * (maxBusyPerPeer). Rejects when `signal` aborts, and leaves the queue then. Hand it to
   * `exchange` or `acquire`, which give it up with the stream; or release it yourself.
   */
  async turn (peer: PeerId, options: TakeOptions = {}): Promise<Slot> {
    return this.#busy === undefined ? unlimited : await this.#busy.take(peer.toString(), options)
  }

  /** Exchanges with `peer` busy now, and waiting for a turn. */
  load (peer: PeerId): { busy: number, waiting: number } {
    const key = peer.toString()
    return { busy: this.#busy?.taken(key) ?? 0, waiting: this.#busy?.waiting(key) ?? 0 }
  }

  /**
   * The most recently used idle stream to `peer` that is still healthy, or a new one, in
   * `options.slot` or a turn waited for here; the slot is given up here when no stream can be
   * had, else by `release`.
   */
  async acquire (peer: PeerId, options: ExchangeOptions & { fresh?: boolean } = {}): Promise<PooledStream> {
    const { slot: given, fresh, ...abort } = options
    const slot = given ?? await this.turn(peer, abort)
    try {
      const idle = this.#idle.get(peer.toString())
      while (fresh !== true && idle !== undefined && idle.length > 0) {
        const entry = idle.pop() as Idle
        entry.unwatch()
        if (idle.length === 0) this.#idle.delete(peer.toString())
        if (open(entry.pooled.stream) && !unread(entry.pooled)) return { ...entry.pooled, reused: true, slot }
        discard(entry.pooled)
      }
      const stream = await this.#connectionManager.openStream(peer, this.#init.protocol, abort)
      const reader = this.#init.createReader?.(stream) ?? new StreamReader(stream)
      return { peer, stream, reader, reused: false, slot }
    } catch (err) {
      slot.release()
      throw err
    }
  }

  /**
   * Hands a stream back after its exchange: kept for the next one when `reusable` and still
   * open both ways, closed when there are enough idle ones, reset when not `reusable` (an
   * exchange that did not complete leaves the stream in an unknown state) or when bytes past
   * the answer arrived. Gives up the stream's slot in every case.
   */
  release (pooled: PooledStream, reusable: boolean): void {
    this.#putBack(pooled, reusable)
    pooled.slot.release()
  }

  #putBack (pooled: PooledStream, reusable: boolean): void {
    if (!reusable || unread(pooled)) {
      pooled.reader.dispose()
      pooled.stream.abort(new Error(reusable ? 'the peer sent more than its answer' : 'the exchange did not complete'))
      return
    }
    if (!open(pooled.stream)) {
      discard(pooled)
      return
    }
    const key = pooled.peer.toString()
    const idle = this.#idle.get(key) ?? []
    if (idle.length >= this.#init.maxIdlePerPeer) {
      discard(pooled)
      return
    }
    idle.push({ pooled, unwatch: this.#watch(key, pooled) })
    this.#idle.set(key, idle)
  }

  /**
   * Sends `request` on a stream to `peer` and hands the stream to `receive`, which reads the
   * response and releases the stream (now or, for a body, later). When that fails on a reused
   * stream before any response byte arrived, the peer had closed it meanwhile (its keep-alive
   * ended, or it answers one request per stream): the exchange runs once more on a fresh one.
   * On failure the stream is reset and the error thrown. The exchange runs in `options.slot`,
   * or waits for a turn (on `options.signal`); the slot goes with the stream, or on failure.
   */
  async exchange<T> (peer: PeerId, request: Uint8Array, receive: (pooled: PooledStream) => Promise<T>, options: ExchangeOptions = {}): Promise<T> {
    const { slot: given, ...abort } = options
    const slot = given ?? await this.turn(peer, abort)
    for (let fresh = false; ; fresh = true) {
      const pooled = await this.acquire(peer, { ...abort, slot, fresh })
      const before = pooled.reader.received
      try {
        pooled.stream.send(request)
        return await receive(pooled)
      } catch (err) {
        const closedWhileIdle = pooled.reused && pooled.reader.received === before && options.signal?.aborted !== true
        // Tried again in the same slot: the next exchange in the queue must not take it meanwhile.
        if (closedWhileIdle) {
          this.#putBack(pooled, false)
          continue
        }
        this.release(pooled, false)
        throw err
      }
    }
  }

  /** Closes every idle stream; exchanges still waiting for a turn fail. */
  stop (): void {
    this.#busy?.cancelWaiting(new Error('the node is stopping'))
    for (const idle of this.#idle.values()) {
      for (const entry of idle) {
        entry.unwatch()
        discard(entry.pooled)
      }
    }
    this.#idle.clear()
  }

  /**
   * While idle, a stream leaves the pool when the responder closes or resets it, when the
   * connection closes, when bytes arrive that nobody asked for (reset: the responder is not
   * speaking the protocol), and after the idle timeout.
   */
  #watch (key: string, pooled: PooledStream): () => void {
    const { stream } = pooled
    const leave = (): void => {
      unwatch()
      const idle = this.#idle.get(key)
      const at = idle?.findIndex(entry => entry.pooled === pooled) ?? -1
      if (idle !== undefined && at >= 0) idle.splice(at, 1)
      if (idle?.length === 0) this.#idle.delete(key)
    }
    const onEnded = (): void => { leave(); discard(pooled) }
    const onUnsolicited = (): void => {
      leave()
      pooled.reader.dispose()
      stream.abort(new Error('the peer sent bytes on an idle stream'))
    }
    const timer = setTimeout(onEnded, this.#init.idleTimeout)
    timer.unref()
    stream.addEventListener('remoteCloseWrite', onEnded)
    stream.addEventListener('close', onEnded)
    stream.addEventListener('message', onUnsolicited)
    const unwatch = (): void => {
      clearTimeout(timer)
      stream.removeEventListener('remoteCloseWrite', onEnded)
      stream.removeEventListener('close', onEnded)
      stream.removeEventListener('message', onUnsolicited)
    }
    return unwatch
  }
}

/** The slot of a pool without a limit. */
const unlimited: Slot = { release: () => {} }

/** Open both ways and not paused: a next exchange can start on it. */
function open (stream: Stream): boolean {
  return stream.status === 'open' && stream.writeStatus === 'writable' && stream.remoteWriteStatus === 'writable' && stream.readStatus === 'readable'
}

/** Bytes nobody asked for: the peer is not speaking the protocol, the stream is not reused. */
function unread ({ stream, reader }: PooledStream): boolean {
  return stream.readBufferLength > 0 || reader.buffered > 0
}

/** Ends a stream we no longer use: a clean close of our side, a reset when that stalls. */
function discard ({ stream, reader }: PooledStream): void {
  reader.dispose()
  if (stream.writeStatus !== 'writable') return
  stream.close({ signal: AbortSignal.timeout(CLOSE_TIMEOUT) }).catch((err: Error) => { stream.abort(err) })
}
