/**
 * The /peerix/narinfo/1 service: answers peers' narinfo questions from this host's own store
 * (never forwarded, so no loops) and asks other peers theirs, one question after another on
 * streams kept open for it.
 */
import { FormatError } from '../../nix/errors.js'
import { formatNarInfo, MAX_NARINFO_BYTES } from '../../nix/narinfo.js'
import { parseHashPart } from '../../nix/store-path.js'
import { shortPeer, silentLogger } from '../../log.js'
import { describe } from '../wire/describe.js'
import { deadline, timeLimit } from '../wire/deadline.js'
import { encodeFrame } from '../wire/frame.js'
import { nextRequest } from '../wire/keep-alive.js'
import { delivered, send } from '../wire/send.js'
import { StreamPool } from '../wire/stream-pool.js'
import { Answering } from '../wire/answering.js'
import { RESPONDER_HIGH_WATER_MARK, StreamReader } from '../wire/stream-reader.js'
import {
  IDLE_STREAM_TIMEOUT, IDLE_STREAMS_PER_PEER, KEEP_ALIVE_TIMEOUT, MAX_INBOUND_STREAMS, MAX_OUTBOUND_STREAMS,
  MAX_INLINE_NAR_BYTES, MAX_REQUEST_BYTES, maxResponseBytes, PROTOCOL, QUERY_TIMEOUT, REQUEST_TIMEOUT
} from './constants.js'
import { NarinfoRequest, NarinfoResponse } from './pb/message.js'
import type { NarinfoQueryOptions, NarinfoService as NarinfoServiceInterface, NarinfoServiceComponents, NarinfoServiceInit } from './index.js'
import type { NarInfoAnswer } from '../peer-client.js'
import type { NarInfo } from '../../nix/narinfo.js'
import type { NarBytes, PathSource } from '../../store/source.js'
import { LogEvery } from '../../log-every.js'
import type { Logger } from '../../log.js'
import type { Connection, PeerId, Startable, Stream } from '@libp2p/interface'

const Status = NarinfoResponse.Status

export class NarinfoService implements Startable, NarinfoServiceInterface {
  readonly protocol = PROTOCOL
  readonly [Symbol.toStringTag] = '@peerix/narinfo'
  readonly #components: NarinfoServiceComponents
  readonly #source: PathSource
  readonly #log: Logger
  /** A peer's malformed requests and the store's failures: a line per problem per minute. */
  readonly #warnings: LogEvery
  readonly #timeout: number
  readonly #requestTimeout: number
  readonly #keepAlive: number
  readonly #pool: StreamPool
  readonly #maxInboundStreams: number
  readonly #maxOutboundStreams: number
  /** The streams being answered, cut before libp2p closes the connections (Answering). */
  readonly #answering = new Answering()
  #started = false

  constructor (components: NarinfoServiceComponents, init: NarinfoServiceInit) {
    this.#components = components
    this.#source = init.source
    this.#log = init.log ?? silentLogger
    const log = this.#log
    this.#warnings = new LogEvery((line) => { log.warn(line) }, (line) => { log.debug(line) })
    this.#timeout = init.timeout ?? QUERY_TIMEOUT
    this.#requestTimeout = init.requestTimeout ?? REQUEST_TIMEOUT
    this.#keepAlive = init.keepAlive ?? KEEP_ALIVE_TIMEOUT
    this.#pool = new StreamPool(components.connectionManager, {
      protocol: PROTOCOL,
      maxIdlePerPeer: IDLE_STREAMS_PER_PEER,
      idleTimeout: init.idleStreamTimeout ?? IDLE_STREAM_TIMEOUT
    })
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

  /** Asks `peer` for the narinfo of `hashPart`. Never throws: failures are `error` answers. */
  async query (peer: PeerId, hashPart: string, options: NarinfoQueryOptions = {}): Promise<NarInfoAnswer> {
    try {
      parseHashPart(hashPart)
    } catch (err) {
      return { status: 'error', message: describe(err) }
    }
    const maxNarBytes = Math.max(0, Math.min(options.maxNarBytes ?? 0, MAX_INLINE_NAR_BYTES))
    const { signal, explain, clear } = deadline(this.#timeout, options.signal)
    const request = encodeFrame(NarinfoRequest.encode({ hashPart, maxNarBytes }))
    try {
      return await this.#pool.exchange(peer, request, async (pooled) => {
        const answer = toAnswer(NarinfoResponse.decode(await pooled.reader.readFrame(maxResponseBytes(maxNarBytes), { signal })), maxNarBytes)
        this.#pool.release(pooled, true)
        return answer
      }, { signal })
    } catch (err) {
      return { status: 'error', message: explain(err) }
    } finally {
      clear()
    }
  }

  /** Answers requests until the requester closes its write side or lets the keep-alive pass. */
  readonly #handle = async (stream: Stream, connection: Connection): Promise<void> => {
    if (!this.#answering.add(stream)) return
    const peer = connection.remotePeer.toString()
    const reader = new StreamReader(stream, { highWaterMark: RESPONDER_HIGH_WATER_MARK })
    try {
      for (let first = true; first || await nextRequest(reader, this.#keepAlive); first = false) {
        const request = await this.#readRequest(stream, reader, peer)
        if (request === 'ended') break
        if (request === undefined) return
        const { response, sent } = await this.#answer(request, peer)
        await send(stream, encodeFrame(NarinfoResponse.encode(response)), this.#requestTimeout)
        // The store hears of a narinfo (and its NAR) served only once the answer is out.
        if (sent !== undefined && await delivered(stream, this.#requestTimeout)) sent()
      }
      await stream.close({ signal: AbortSignal.timeout(this.#requestTimeout) })
    } catch (err) {
      stream.abort(err instanceof Error ? err : new Error(String(err)))
    } finally {
      reader.dispose()
      this.#answering.done(stream)
    }
  }

  /**
   * The request, its hash part checked; 'ended' when the requester closed its write side
   * before a first byte of it (done with the stream: it is closed cleanly, as after the last
   * exchange); undefined when the stream was cut off or answered ERROR for it.
   */
  async #readRequest (stream: Stream, reader: StreamReader, peer: string): Promise<NarinfoRequest | 'ended' | undefined> {
    const timer = timeLimit(this.#requestTimeout)
    try {
      if (!await reader.hasMore({ signal: timer.signal })) return 'ended'
      const request = NarinfoRequest.decode(await reader.readFrame(MAX_REQUEST_BYTES, { signal: timer.signal }))
      parseHashPart(request.hashPart)
      return request
    } catch (err) {
      if (timer.expired) {
        this.#log.debug(`narinfo: no request from ${shortPeer(peer)} within ${this.#requestTimeout} ms`)
        stream.abort(new Error(`no request within ${this.#requestTimeout} ms`))
        return undefined
      }
      const message = `malformed request: ${describe(err)}`
      this.#warnings.line(`malformed from ${peer}`, `narinfo: ${message} (from ${shortPeer(peer)})`)
      if (stream.writeStatus === 'writable') stream.send(encodeFrame(NarinfoResponse.encode({ status: Status.ERROR, message })))
      stream.abort(new Error(message))
      return undefined
    } finally {
      timer.clear()
    }
  }

  /** The response, and for a FOUND one what to tell the store once it went out. */
  async #answer ({ hashPart, maxNarBytes }: NarinfoRequest, peer: string): Promise<{ response: Partial<NarinfoResponse>, sent?: () => void }> {
    try {
      const narUpTo = Math.min(maxNarBytes, MAX_INLINE_NAR_BYTES)
      const served = await this.#source.narInfo(hashPart, peer, narUpTo > 0 ? { narUpTo } : {})
      if (served.status === 'absent') return { response: { status: Status.ABSENT } }
      if (served.status === 'refused') return { response: { status: Status.REFUSED, message: served.reason } }
      const narinfo = formatNarInfo(served.value)
      if (Buffer.byteLength(narinfo) > MAX_NARINFO_BYTES) throw new Error(`the narinfo is larger than ${MAX_NARINFO_BYTES} bytes`)
      const nar = served.nar !== undefined && served.value.narSize <= narUpTo ? await this.#whole(hashPart, served.value, served.nar, peer) : undefined
      const told = served.sent
      return { response: { status: Status.FOUND, narinfo, nar }, sent: told === undefined ? undefined : () => { told(nar !== undefined) } }
    } catch (err) {
      this.#warnings.line(`store: ${describe(err)}`, `narinfo: cannot answer ${hashPart} for ${shortPeer(peer)}: ${describe(err)}`)
      return { response: { status: Status.ERROR, message: 'the store could not answer' } }
    }
  }

  /**
   * The small NAR to answer with (r2), as the store handed it out with the narinfo; undefined
   * when it cannot be had whole (the answer then goes without it).
   */
  async #whole (hashPart: string, info: NarInfo, served: NarBytes, peer: string): Promise<Uint8Array<ArrayBuffer> | undefined> {
    try {
      if (served.length !== info.narSize) return undefined
      const nar = new Uint8Array(info.narSize)
      let bytes = 0
      for await (const chunk of served.stream) {
        if (bytes + chunk.length > nar.length) return undefined
        nar.set(chunk, bytes)
        bytes += chunk.length
      }
      return bytes === nar.length ? nar : undefined
    } catch (err) {
      this.#log.debug(`narinfo: NAR of ${hashPart} not sent with its narinfo to ${shortPeer(peer)}: ${describe(err)}`)
      return undefined
    }
  }
}

/** A response as the substituter sees it; throws a FormatError for one not by the spec. */
function toAnswer (response: NarinfoResponse, maxNarBytes: number): NarInfoAnswer {
  switch (response.status) {
    case Status.FOUND: {
      if (response.narinfo === '') throw new FormatError('malformed response: FOUND without a narinfo')
      const nar = response.nar
      if (nar === undefined || nar.byteLength === 0) return { status: 'found', value: response.narinfo }
      if (nar.byteLength > maxNarBytes) {
        throw new FormatError(`malformed response: a NAR of ${nar.byteLength} bytes, ${maxNarBytes === 0 ? 'not asked for' : `more than the ${maxNarBytes} asked for`}`)
      }
      return { status: 'found', value: response.narinfo, nar }
    }
    case Status.ABSENT:
      return { status: 'absent' }
    case Status.REFUSED:
      return { status: 'refused', reason: response.message === '' ? 'refused without a reason' : response.message }
    case Status.ERROR:
      return { status: 'error', message: `the peer answered ERROR: ${response.message === '' ? 'no reason given' : response.message}` }
    default:
      throw new FormatError('malformed response: no status')
  }
}
