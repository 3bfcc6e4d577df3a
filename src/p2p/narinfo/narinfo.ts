/**
 * The /peerix/narinfo/1 service: answers peers' narinfo questions from this host's own store
 * (never forwarded, so no loops) and asks other peers theirs.
 */
import { formatNarInfo, MAX_NARINFO_BYTES } from '../../nix/narinfo.js'
import { parseHashPart } from '../../nix/store-path.js'
import { shortPeer, silentLogger } from '../../log.js'
import { describe } from '../wire/describe.js'
import { deadline } from '../wire/deadline.js'
import { encodeFrame } from '../wire/frame.js'
import { StreamReader } from '../wire/stream-reader.js'
import { MAX_INBOUND_STREAMS, MAX_OUTBOUND_STREAMS, MAX_REQUEST_BYTES, MAX_RESPONSE_BYTES, PROTOCOL, QUERY_TIMEOUT, REQUEST_TIMEOUT } from './constants.js'
import { NarinfoRequest, NarinfoResponse } from './pb/message.js'
import type { NarinfoService as NarinfoServiceInterface, NarinfoServiceComponents, NarinfoServiceInit } from './index.js'
import type { Answer } from '../peer-client.js'
import type { PathSource } from '../../store/source.js'
import type { Logger } from '../../log.js'
import type { AbortOptions, Connection, PeerId, Startable, Stream } from '@libp2p/interface'

const Status = NarinfoResponse.Status

export class NarinfoService implements Startable, NarinfoServiceInterface {
  readonly protocol = PROTOCOL
  readonly [Symbol.toStringTag] = '@peerix/narinfo'
  readonly #components: NarinfoServiceComponents
  readonly #source: PathSource
  readonly #log: Logger
  readonly #timeout: number
  readonly #requestTimeout: number
  readonly #maxInboundStreams: number
  readonly #maxOutboundStreams: number
  #started = false

  constructor (components: NarinfoServiceComponents, init: NarinfoServiceInit) {
    this.#components = components
    this.#source = init.source
    this.#log = init.log ?? silentLogger
    this.#timeout = init.timeout ?? QUERY_TIMEOUT
    this.#requestTimeout = init.requestTimeout ?? REQUEST_TIMEOUT
    this.#maxInboundStreams = init.maxInboundStreams ?? MAX_INBOUND_STREAMS
    this.#maxOutboundStreams = init.maxOutboundStreams ?? MAX_OUTBOUND_STREAMS
  }

  async start (): Promise<void> {
    await this.#components.registrar.handle(PROTOCOL, this.#handle, {
      maxInboundStreams: this.#maxInboundStreams,
      maxOutboundStreams: this.#maxOutboundStreams
    })
    this.#started = true
  }

  async stop (): Promise<void> {
    await this.#components.registrar.unhandle(PROTOCOL)
    this.#started = false
  }

  isStarted (): boolean {
    return this.#started
  }

  /** Asks `peer` for the narinfo of `hashPart`. Never throws: failures are `error` answers. */
  async query (peer: PeerId, hashPart: string, options: AbortOptions = {}): Promise<Answer<string>> {
    try {
      parseHashPart(hashPart)
    } catch (err) {
      return { status: 'error', message: describe(err) }
    }
    const { signal, explain } = deadline(this.#timeout, options.signal)
    let stream: Stream | undefined
    let reader: StreamReader | undefined
    try {
      stream = await this.#components.connectionManager.openStream(peer, PROTOCOL, { signal })
      reader = new StreamReader(stream)
      stream.send(encodeFrame(NarinfoRequest.encode({ hashPart })))
      await stream.close({ signal })
      const frame = await reader.readFrame(MAX_RESPONSE_BYTES, { signal })
      const answer = toAnswer(NarinfoResponse.decode(frame))
      // the responder closes right after its answer; one that keeps the stream open is cut off
      if (stream.status === 'open') stream.abort(new Error('answer complete'))
      return answer
    } catch (err) {
      stream?.abort(err instanceof Error ? err : new Error(String(err)))
      return { status: 'error', message: explain(err) }
    } finally {
      reader?.dispose()
    }
  }

  readonly #handle = async (stream: Stream, connection: Connection): Promise<void> => {
    const peer = connection.remotePeer.toString()
    const reader = new StreamReader(stream)
    try {
      const timer = AbortSignal.timeout(this.#requestTimeout)
      let hashPart: string
      try {
        const request = NarinfoRequest.decode(await reader.readFrame(MAX_REQUEST_BYTES, { signal: timer }))
        hashPart = parseHashPart(request.hashPart)
      } catch (err) {
        if (timer.aborted) {
          this.#log.debug(`narinfo: no request from ${shortPeer(peer)} within ${this.#requestTimeout} ms`)
          stream.abort(new Error(`no request within ${this.#requestTimeout} ms`))
          return
        }
        const message = `malformed request: ${describe(err)}`
        this.#log.warn(`narinfo: ${message} (from ${shortPeer(peer)})`)
        if (stream.writeStatus === 'writable') stream.send(encodeFrame(NarinfoResponse.encode({ status: Status.ERROR, message })))
        stream.abort(new Error(message))
        return
      }
      stream.send(encodeFrame(NarinfoResponse.encode(await this.#answer(hashPart, peer))))
      await stream.close({ signal: AbortSignal.timeout(this.#requestTimeout) })
    } catch (err) {
      stream.abort(err instanceof Error ? err : new Error(String(err)))
    } finally {
      reader.dispose()
    }
  }

  async #answer (hashPart: string, peer: string): Promise<Partial<NarinfoResponse>> {
    try {
      const served = await this.#source.narInfo(hashPart, peer)
      if (served.status === 'absent') return { status: Status.ABSENT }
      if (served.status === 'refused') return { status: Status.REFUSED, message: served.reason }
      const narinfo = formatNarInfo(served.value)
      if (Buffer.byteLength(narinfo) > MAX_NARINFO_BYTES) throw new Error(`the narinfo is larger than ${MAX_NARINFO_BYTES} bytes`)
      return { status: Status.FOUND, narinfo }
    } catch (err) {
      this.#log.warn(`narinfo: cannot answer ${hashPart} for ${shortPeer(peer)}: ${describe(err)}`)
      return { status: Status.ERROR, message: 'the store could not answer' }
    }
  }
}

/** A response as the substituter sees it; anything not by the spec is an error. */
function toAnswer (response: NarinfoResponse): Answer<string> {
  switch (response.status) {
    case Status.FOUND:
      if (response.narinfo === '') return { status: 'error', message: 'malformed response: FOUND without a narinfo' }
      return { status: 'found', value: response.narinfo }
    case Status.ABSENT:
      return { status: 'absent' }
    case Status.REFUSED:
      return { status: 'refused', reason: response.message === '' ? 'refused without a reason' : response.message }
    case Status.ERROR:
      return { status: 'error', message: `the peer answered ERROR: ${response.message === '' ? 'no reason given' : response.message}` }
    default:
      return { status: 'error', message: 'malformed response: no status' }
  }
}
