/**
 * The /peerix/nar/1 service: streams NARs from this host's own store to peers, with
 * back-pressure, and fetches NARs from peers as an iterable that only ends once exactly the
 * announced bytes have arrived. A stream carries one NAR after another; the requester keeps
 * idle ones per peer.
 */
import { FormatError } from '../../nix/errors.js'
import { shortPeer, silentLogger } from '../../log.js'
import { describe } from '../wire/describe.js'
import { deadline, timeLimit } from '../wire/deadline.js'
import { encodeFrame } from '../wire/frame.js'
import { nextRequest } from '../wire/keep-alive.js'
import { delivered, send } from '../wire/send.js'
import { StreamPool } from '../wire/stream-pool.js'
import { Answering } from '../wire/answering.js'
import { RESPONDER_HIGH_WATER_MARK, StreamReader } from '../wire/stream-reader.js'
import { ProtocolError } from '@libp2p/interface'
import { Uint8ArrayList } from 'uint8arraylist'
import {
  HEADER_TIMEOUT, IDLE_STREAM_TIMEOUT, IDLE_STREAMS_PER_PEER, IDLE_TIMEOUT, KEEP_ALIVE_TIMEOUT, MAX_HEADER_BYTES,
  MAX_INBOUND_STREAMS, MAX_NAR_BYTES, MAX_OUTBOUND_STREAMS, MAX_STREAMS_PER_PEER, MAX_REQUEST_BYTES, PROTOCOL, READ_BUFFER_LIMIT,
  READ_HIGH_WATER_MARK, REQUEST_TIMEOUT, SEND_CHUNK_BYTES, SEND_STALL_TIMEOUT
} from './constants.js'
import { NarRequest, NarResponse } from './pb/message.js'
import { checkNarQuery } from './request.js'
import { loadZstd, type ZstdCodec } from './compression.js'
import { decodeZstdBody, ZstdBodyEncoder } from './zstd-body.js'
import { BodyProgress } from './body-progress.js'
import type { NarQuery } from './request.js'
import type { FetchOptions, NarService as NarServiceInterface, NarServiceComponents, NarServiceInit, NarStream } from './index.js'
import type { Answer } from '../peer-client.js'
import type { NarBytes, PathSource, Served } from '../../store/source.js'
import { LogEvery } from '../../log-every.js'
import type { Logger } from '../../log.js'
import type { PooledStream } from '../wire/stream-pool.js'
import type { Slot } from '../wire/slots.js'
import type { Connection, PeerId, Startable, Stream } from '@libp2p/interface'

const Status = NarResponse.Status
/** The most NAR bytes the responder sends without letting the event loop turn. */
const EVENT_LOOP_TURN_BYTES = 4 * 1024 * 1024
const Encoding = NarResponse.Encoding

/** A valid request and whether the requester reads zstd bodies. */
type NarAsk = NarQuery & { acceptZstd: boolean }

export class NarService implements Startable, NarServiceInterface {
  readonly protocol = PROTOCOL
  readonly [Symbol.toStringTag] = '@peerix/nar'
  readonly #components: NarServiceComponents
  readonly #source: PathSource
  readonly #log: Logger
  /** A peer's malformed requests and the store's failures: a line per problem per minute. */
  readonly #warnings: LogEvery
  readonly #timeout: number
  readonly #idleTimeout: number
  readonly #requestTimeout: number
  readonly #keepAlive: number
  readonly #pool: StreamPool
  readonly #sendStallTimeout: number
  readonly #chunkBytes: number
  readonly #compress: boolean
  readonly #maxInboundStreams: number
  readonly #maxOutboundStreams: number
  /** The streams being answered, cut before libp2p closes the connections (Answering). */
  readonly #answering = new Answering()
  #started = false

  constructor (components: NarServiceComponents, init: NarServiceInit) {
    this.#components = components
    this.#source = init.source
    this.#log = init.log ?? silentLogger
    const log = this.#log
    this.#warnings = new LogEvery((line) => { log.warn(line) }, (line) => { log.debug(line) })
    this.#timeout = init.timeout ?? HEADER_TIMEOUT
    this.#idleTimeout = init.idleTimeout ?? IDLE_TIMEOUT
    this.#requestTimeout = init.requestTimeout ?? REQUEST_TIMEOUT
    this.#keepAlive = init.keepAlive ?? KEEP_ALIVE_TIMEOUT
    this.#pool = new StreamPool(components.connectionManager, {
      protocol: PROTOCOL,
      maxIdlePerPeer: IDLE_STREAMS_PER_PEER,
      maxBusyPerPeer: init.maxStreamsPerPeer ?? MAX_STREAMS_PER_PEER,
      idleTimeout: init.idleStreamTimeout ?? IDLE_STREAM_TIMEOUT,
      createReader: (stream) => {
        stream.maxReadBufferLength = Math.max(stream.maxReadBufferLength, READ_BUFFER_LIMIT)
        return new StreamReader(stream, { highWaterMark: READ_HIGH_WATER_MARK })
      }
    })
    this.#sendStallTimeout = init.sendStallTimeout ?? SEND_STALL_TIMEOUT
    this.#chunkBytes = init.chunkBytes ?? SEND_CHUNK_BYTES
    this.#compress = init.compress ?? true
    this.#maxInboundStreams = init.maxInboundStreams ?? MAX_INBOUND_STREAMS
    this.#maxOutboundStreams = init.maxOutboundStreams ?? MAX_OUTBOUND_STREAMS
  }

  async start (): Promise<void> {
    this.#answering.start()
    await this.#components.registrar.handle(PROTOCOL, this.#handle, {
      maxInboundStreams: this.#maxInboundStreams,
      maxOutboundStreams: this.#maxOutboundStreams
    })
    this.#started = true
  }

  /**
   * Runs before libp2p's connection manager closes the connections: the answers under way are
   * cut and the idle streams closed now, or libp2p's close waits on each of them, adding a
   * listener per stream to one signal (Node's MaxListenersExceededWarning from 11 on).
   */
  beforeStop (): void {
    this.#answering.stop()
    this.#pool.stop()
  }

  async stop (): Promise<void> {
    await this.#components.registrar.unhandle(PROTOCOL)
    this.#pool.stop()
    this.#started = false
  }

  isStarted (): boolean {
    return this.#started
  }

  /**
   * Asks `peer` for the NAR of `hashPart` from byte `offset`. Never throws; the iterable of a
   * `found` answer throws when the stream is reset, stalls or carries more or fewer bytes than
   * announced, and must be iterated (or returned) so the stream is released.
   */
  async fetch (peer: PeerId, hashPart: string, narHash: string, offset: number, options: FetchOptions = {}): Promise<Answer<NarStream>> {
    let query: NarQuery
    try {
      query = checkNarQuery(hashPart, narHash, offset)
    } catch (err) {
      return { status: 'error', message: describe(err) }
    }
    // The wait for a turn is not the peer's to answer for: the time limit starts after it.
    let slot: Slot
    try {
      slot = await this.#pool.turn(peer, { signal: options.signal, onQueued: options.onQueued })
    } catch (err) {
      return { status: 'error', message: options.signal?.aborted === true ? 'cancelled by the caller' : describe(err) }
    }
    const { signal, explain, clear } = deadline(this.#timeout, options.signal)
    const acceptZstd = options.acceptZstd === true
    const request = encodeFrame(NarRequest.encode({ ...query, offset: BigInt(query.offset), acceptZstd }))
    try {
      return await this.#pool.exchange(peer, request, async (pooled) => {
        const header = NarResponse.decode(await pooled.reader.readFrame(MAX_HEADER_BYTES, { signal }))
        if (header.status !== Status.FOUND) {
          const answer = toAnswer(header)
          this.#pool.release(pooled, true)
          return answer
        }
        if (header.length > BigInt(MAX_NAR_BYTES)) throw new FormatError(`malformed response: length ${header.length} is too large`)
        if (header.encoding === Encoding.ZSTD && !acceptZstd) throw new FormatError('malformed response: a zstd body that was not asked for')
        const zstd = header.encoding === Encoding.ZSTD ? await loadZstd() : undefined
        return { status: 'found', value: this.#body(pooled, Number(header.length), zstd, options.signal) }
      }, { signal, slot })
    } catch (err) {
      return { status: 'error', message: explain(err) }
    } finally {
      clear()
    }
  }

  /**
   * The announced bytes as they arrive, decompressed when `zstd` is given. Once all have, the
   * stream goes back to the pool for the next fetch; an early exit or a failure resets it, so
   * the peer stops sending.
   */
  #body (pooled: PooledStream, length: number, zstd: ZstdCodec | undefined, signal?: AbortSignal): NarStream {
    const pool = this.#pool
    const options = { idleTimeout: this.#idleTimeout, signal }
    let started = false
    // A body that nobody reads to its end nor returns would keep its slot for good, and the
    // peer's other NARs would queue behind it: the slot goes when the stream closes as well
    // (a peer resets a stream it could not send on within its stall limit). A small body the
    // peer sent whole ends no stream: callers must read or return every body, as
    // nar-download.ts does.
    const onClose = (): void => { pooled.slot.release() }
    pooled.stream.addEventListener('close', onClose, { once: true })
    const release = (complete: boolean): void => {
      pooled.stream.removeEventListener('close', onClose)
      pool.release(pooled, complete)
    }
    async function * read (): AsyncGenerator<Uint8Array> {
      started = true
      // Complete once the last byte is handed out: a consumer that has all it wants returns
      // right after it, and the stream must still go back to the pool then (bytes beyond
      // `length` are caught by the release, which drops a stream with unread bytes).
      let delivered = 0
      let complete = length === 0
      const deliver = (chunk: Uint8Array): Uint8Array => {
        delivered += chunk.byteLength
        complete = delivered === length
        return chunk
      }
      try {
        if (zstd === undefined) {
          for await (const chunk of pooled.reader.readBody(length, options)) {
            body.wireBytes += chunk.byteLength
            yield deliver(chunk)
          }
        } else {
          for await (const chunk of decodeZstdBody(async (max) => await pooled.reader.readFrame(max, options), length, zstd, (bytes) => { body.wireBytes += bytes })) {
            yield deliver(chunk)
          }
          checkEndOfBody(pooled, length)
        }
      } catch (err) {
        complete = false
        throw err
      } finally {
        release(complete)
      }
    }
    const generator = read()
    // A generator returned before its first next() never runs its finally: the stream would
    // stay out of the pool, open, with the peer's bytes in it. Reset it here instead.
    const returnFromGenerator = generator.return.bind(generator)
    generator.return = async (value) => {
      if (!started) {
        started = true
        release(false)
      }
      return await returnFromGenerator(value)
    }
    const body: NarStream = Object.assign(generator, { length, encoding: zstd === undefined ? 'identity' as const : 'zstd' as const, wireBytes: 0 })
    return body
  }

  /** Serves requests until the requester closes its write side or lets the keep-alive pass. */
  readonly #handle = async (stream: Stream, connection: Connection): Promise<void> => {
    if (!this.#answering.add(stream)) return
    const peer = connection.remotePeer.toString()
    const reader = new StreamReader(stream, { highWaterMark: RESPONDER_HIGH_WATER_MARK })
    // the store stops reading files as soon as the requester goes away
    const gone = new AbortController()
    const onClose = (): void => { gone.abort() }
    stream.addEventListener('close', onClose)
    try {
      for (let first = true; first || await nextRequest(reader, this.#keepAlive); first = false) {
        const query = await this.#readRequest(stream, reader, peer)
        if (query === 'ended') break
        if (query === undefined) return
        await this.#respond(stream, query, peer, gone.signal)
      }
      await stream.close({ signal: AbortSignal.timeout(this.#sendStallTimeout) })
    } catch (err) {
      stream.abort(err instanceof Error ? err : new Error(String(err)))
    } finally {
      stream.removeEventListener('close', onClose)
      gone.abort()
      reader.dispose()
      this.#answering.done(stream)
    }
  }

  /** One exchange's response: the header, and after FOUND the NAR's bytes. */
  async #respond (stream: Stream, query: NarAsk, peer: string, signal: AbortSignal): Promise<void> {
    const served = await this.#serve(query, peer, signal)
    if (served.status === 'found') {
      await this.#sendNar(stream, served.value, peer, query)
      return
    }
    await send(stream, encodeFrame(NarResponse.encode(served.status === 'refused'
      ? { status: Status.REFUSED, message: served.reason }
      : served.status === 'absent' ? { status: Status.ABSENT } : { status: Status.ERROR, message: served.message })), this.#sendStallTimeout)
  }

  /**
   * The request; 'ended' when the requester closed its write side before a first byte of it
   * (done with the stream: it is closed cleanly, as after the last exchange); undefined when
   * the stream was cut off or answered ERROR for it.
   */
  async #readRequest (stream: Stream, reader: StreamReader, peer: string): Promise<NarAsk | 'ended' | undefined> {
    const timer = timeLimit(this.#requestTimeout)
    try {
      if (!await reader.hasMore({ signal: timer.signal })) return 'ended'
      const request = NarRequest.decode(await reader.readFrame(MAX_REQUEST_BYTES, { signal: timer.signal }))
      return { ...checkNarQuery(request.hashPart, request.narHash, request.offset), acceptZstd: request.acceptZstd }
    } catch (err) {
      if (timer.expired) {
        this.#log.debug(`nar: no request from ${shortPeer(peer)} within ${this.#requestTimeout} ms`)
        stream.abort(new Error(`no request within ${this.#requestTimeout} ms`))
        return undefined
      }
      const message = `malformed request: ${describe(err)}`
      this.#warnings.line(`malformed from ${peer}`, `nar: ${message} (from ${shortPeer(peer)})`)
      if (stream.writeStatus === 'writable') stream.send(encodeFrame(NarResponse.encode({ status: Status.ERROR, message })))
      stream.abort(new Error(message))
      return undefined
    } finally {
      timer.clear()
    }
  }

  async #serve ({ hashPart, narHash, offset }: NarQuery, peer: string, signal: AbortSignal): Promise<Served<NarBytes> | { status: 'error', message: string }> {
    try {
      const served = await this.#source.nar(hashPart, narHash, offset, peer, signal)
      if (served.status === 'found' && !(Number.isSafeInteger(served.value.length) && served.value.length >= 0)) {
        throw new Error(`the store announced an invalid length ${served.value.length}`)
      }
      return served
    } catch (err) {
      this.#warnings.line(`store: ${describe(err)}`, `nar: cannot serve ${hashPart} to ${shortPeer(peer)}: ${describe(err)}`)
      return { status: 'error', message: 'the store could not serve the NAR' }
    }
  }

  /**
   * The FOUND header, then exactly the announced bytes, as zstd blocks when the requester
   * accepts them and we compress. The store's small pieces are gathered into larger writes; a
   * store that yields more or fewer bytes than it announced has the stream reset, so the
   * requester never mistakes a wrong NAR for a complete one. The store is told what went out
   * (NarBytes.sent): the body is complete once its last byte left the stream's queue.
   */
  async #sendNar (stream: Stream, nar: NarBytes, peer: string, query: NarAsk): Promise<void> {
    const zstd = query.acceptZstd && this.#compress ? new ZstdBodyEncoder(await loadZstd()) : undefined
    const encoding = zstd === undefined ? Encoding.IDENTITY : Encoding.ZSTD
    const header = encodeFrame(NarResponse.encode({ status: Status.FOUND, length: BigInt(nar.length), encoding }))
    const progress = BodyProgress.of(stream, nar, zstd === undefined ? header.byteLength : undefined)
    try {
      await this.#sendBody(stream, nar, peer, query, { zstd, header, progress })
    } catch (err) {
      progress?.cut()
      throw err
    }
    progress?.complete()
  }

  async #sendBody (stream: Stream, nar: NarBytes, peer: string, query: NarAsk, body: { zstd?: ZstdBodyEncoder, header: Uint8Array, progress?: BodyProgress }): Promise<void> {
    const { zstd, header, progress } = body
    const stall = this.#sendStallTimeout
    let sent = 0
    const write = async (data: Uint8ArrayList): Promise<void> => {
      const encoded = zstd === undefined ? data : zstd.encode(data)
      if (encoded.byteLength === 0) return
      progress?.queued(encoded.byteLength, zstd === undefined ? sent : zstd.narBytes)
      // One chunk may stay queued while the next is read: the disk and the link overlap.
      await send(stream, encoded, stall, this.#chunkBytes)
      progress?.update()
    }
    let sinceTurn = 0
    // A raw body's first bytes go out with the header, in the same yamux frame and socket write:
    // a small NAR is then one write, not two, and each write that wakes the requester cost
    // A ~0.2 ms of CPU here (bench/nar-cpu-per-path.ts 1, profiled).
    let pending = new Uint8ArrayList()
    if (zstd === undefined) {
      pending.append(header)
    } else {
      progress?.queued(header.byteLength, 0)
      await send(stream, header, stall)
    }
    for await (const chunk of nar.stream) {
      sent += chunk.byteLength
      if (sent > nar.length) throw new Error(`the store produced more than the ${nar.length} bytes it announced`)
      pending.append(chunk)
      if (pending.byteLength >= this.#chunkBytes) {
        await write(pending)
        pending = new Uint8ArrayList()
      }
      // Bytes that need no I/O to read (a store stream from memory) and compress to almost
      // nothing never meet back-pressure: without a turn of the event loop now and then this
      // loop would hold it, and the node would answer nothing else, not even the reset that
      // ends this body.
      sinceTurn += chunk.byteLength
      if (sinceTurn >= EVENT_LOOP_TURN_BYTES) {
        sinceTurn = 0
        await new Promise(resolve => setImmediate(resolve))
      }
    }
    if (pending.byteLength > 0) await write(pending)
    const last = zstd?.end()
    if (zstd !== undefined && last !== undefined && last.byteLength > 0) {
      progress?.queued(last.byteLength, zstd.narBytes)
      await send(stream, last, stall)
    }
    if (sent !== nar.length) throw new Error(`the store produced ${sent} of the ${nar.length} bytes it announced`)
    // Served once the last bytes left the stream's queue: a reset until then throws them away.
    if (!await delivered(stream, stall)) throw new Error('the stream closed before the NAR went out')
    const compressed = zstd === undefined ? '' : `, ${zstd.wireBytes} as zstd blocks`
    this.#log.debug(`nar: served ${query.hashPart} from ${query.offset} (${sent} bytes${compressed}) to ${shortPeer(peer)}`)
  }
}

/**
 * After a compressed body, as readBody checks after a raw one: nothing past it has arrived (a
 * paused stream first hands over what it held back).
 */
function checkEndOfBody (pooled: PooledStream, length: number): void {
  if (pooled.stream.readStatus === 'paused') pooled.stream.resume()
  if (pooled.reader.buffered > 0) throw new ProtocolError(`the peer sent more than the ${length} bytes it announced`)
}

/** A header other than FOUND as the substituter sees it; throws a FormatError for one not by the spec. */
function toAnswer (header: NarResponse): Answer<never> {
  switch (header.status) {
    case Status.ABSENT:
      return { status: 'absent' }
    case Status.REFUSED:
      return { status: 'refused', reason: header.message === '' ? 'refused without a reason' : header.message }
    case Status.ERROR:
      return { status: 'error', message: `the peer answered ERROR: ${header.message === '' ? 'no reason given' : header.message}` }
    default:
      throw new FormatError('malformed response: no status')
  }
}
