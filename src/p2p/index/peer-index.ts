/**
 * The /peerix/index/1 service. As a subscriber it keeps, for every connected peer that speaks
 * the protocol, the summary that peer pushes (a full one on subscribing, then deltas); as a
 * publisher it pushes this host's summary, as the serving policy lets that peer see it.
 */
import { FormatError } from '../../nix/errors.js'
import { shortPeer, silentLogger, type Logger } from '../../log.js'
import { applyKeySetDelta, keySetHas, summaryKey } from '../../store/summary-keys.js'
import { describe } from '../wire/describe.js'
import { encodeFrame } from '../wire/frame.js'
import { send } from '../wire/send.js'
import { RESPONDER_HIGH_WATER_MARK, StreamReader } from '../wire/stream-reader.js'
import {
  DEPARTED_PEERS, DEPARTED_SUMMARY_MS, MAX_INBOUND_STREAMS, MAX_KEYS, MAX_OUTBOUND_STREAMS, MAX_REQUEST_BYTES, MAX_UPDATE_BYTES, PROTOCOL,
  REQUEST_TIMEOUT, RESUBSCRIBE_MAX_MS, RESUBSCRIBE_MIN_MS, SEND_STALL_TIMEOUT, UPDATE_PAUSE_FACTOR
} from './constants.js'
import { decodeKeySet, encodeKeySet } from './golomb.js'
import { IndexRequest, IndexUpdate } from './pb/message.js'
import type { PeerIndex, PeerIndexComponents, PeerIndexInit, SummarySource } from './index.js'
import type { SummaryChange } from '../../store/summary.js'
import type { Connection, IdentifyResult, PeerId, Startable, Stream } from '@libp2p/interface'

const Kind = IndexUpdate.Kind

interface PeerSummary {
  version: number
  keys: Uint32Array
}

export class PeerIndexService implements PeerIndex, Startable {
  readonly protocol = PROTOCOL
  readonly [Symbol.toStringTag] = '@peerix/index'
  readonly #components: PeerIndexComponents
  readonly #summary?: SummarySource
  readonly #subscribes: boolean
  readonly #log: Logger
  readonly #maxKeys: number
  readonly #maxUpdateBytes: number
  readonly #requestTimeout: number
  readonly #stallTimeout: number
  readonly #resubscribeMinMs: number
  readonly #resubscribeMaxMs: number
  readonly #updateCost: (work: () => void) => number
  /** Summaries received, by peer ID string. */
  readonly #summaries = new Map<string, PeerSummary>()
  /** The last summary of peers whose summary was dropped, and when (see departedHolders). */
  readonly #departed = new Map<string, { keys: Uint32Array, at: number }>()
  /** Running subscriptions, by peer ID string. */
  readonly #subscriptions = new Map<string, AbortController>()
  /** Streams of our subscribers, reset when the service stops. */
  readonly #subscribers = new Set<Stream>()
  #started = false

  constructor (components: PeerIndexComponents, init: PeerIndexInit) {
    this.#components = components
    this.#summary = init.summary
    this.#subscribes = init.subscribe ?? true
    this.#log = init.log ?? silentLogger
    this.#maxKeys = init.maxKeys ?? MAX_KEYS
    this.#maxUpdateBytes = init.maxUpdateBytes ?? MAX_UPDATE_BYTES
    this.#requestTimeout = init.requestTimeout ?? REQUEST_TIMEOUT
    this.#stallTimeout = init.stallTimeout ?? SEND_STALL_TIMEOUT
    this.#resubscribeMinMs = init.resubscribeMinMs ?? RESUBSCRIBE_MIN_MS
    this.#resubscribeMaxMs = init.resubscribeMaxMs ?? RESUBSCRIBE_MAX_MS
    this.#updateCost = init.updateCost ?? loopTime
  }

  async start (): Promise<void> {
    if (this.#summary !== undefined) {
      await this.#components.registrar.handle(PROTOCOL, this.#handle, {
        maxInboundStreams: MAX_INBOUND_STREAMS,
        maxOutboundStreams: MAX_OUTBOUND_STREAMS
      })
    }
    if (this.#subscribes) this.#components.events.addEventListener('peer:identify', this.#onIdentify)
    this.#components.events.addEventListener('peer:disconnect', this.#onDisconnect)
    this.#started = true
  }

  async stop (): Promise<void> {
    this.#components.events.removeEventListener('peer:identify', this.#onIdentify)
    this.#components.events.removeEventListener('peer:disconnect', this.#onDisconnect)
    if (this.#summary !== undefined) await this.#components.registrar.unhandle(PROTOCOL)
    for (const subscription of this.#subscriptions.values()) subscription.abort(new Error('the index service stopped'))
    for (const stream of this.#subscribers) stream.abort(new Error('the index service stopped'))
    this.#subscriptions.clear()
    this.#subscribers.clear()
    this.#summaries.clear()
    this.#departed.clear()
    this.#started = false
  }

  isStarted (): boolean {
    return this.#started
  }

  mayHave (peer: string, hashPart: string): boolean {
    return this.holders(hashPart)(peer)
  }

  holders (hashPart: string): (peer: string) => boolean {
    const key = summaryKey(hashPart)
    return (peer) => {
      const summary = this.#summaries.get(peer)
      return summary === undefined || keySetHas(summary.keys, key)
    }
  }

  departedHolders (hashPart: string): string[] {
    // Asked on every miss: nothing to compute while no peer left lately.
    if (this.#departed.size === 0) return []
    const key = summaryKey(hashPart)
    const since = Date.now() - DEPARTED_SUMMARY_MS
    const holders: string[] = []
    for (const [peer, { keys, at }] of this.#departed) {
      if (at < since) { this.#departed.delete(peer); continue }
      if (keySetHas(keys, key)) holders.push(peer)
    }
    if (holders.length === 0) return holders
    const connected = new Set(this.#components.connectionManager.getConnections().map(c => c.remotePeer.toString()))
    return holders.filter(peer => !connected.has(peer))
  }

  summaryOf (peer: string): { version: number, keys: number } | undefined {
    const summary = this.#summaries.get(peer)
    return summary === undefined ? undefined : { version: summary.version, keys: summary.keys.length }
  }

  readonly #onIdentify = (evt: CustomEvent<IdentifyResult>): void => {
    const { peerId, protocols } = evt.detail
    if (protocols.includes(PROTOCOL) && !this.#subscriptions.has(peerId.toString())) void this.#subscribe(peerId)
  }

  readonly #onDisconnect = (evt: CustomEvent<PeerId>): void => {
    const key = evt.detail.toString()
    this.#subscriptions.get(key)?.abort(new Error('the peer disconnected'))
    this.#subscriptions.delete(key)
    this.#drop(key)
  }

  /** Forgets `peer`'s summary, keeping its keys a while in case it left for a moment. */
  #drop (peer: string): void {
    const summary = this.#summaries.get(peer)
    if (summary === undefined) return
    this.#summaries.delete(peer)
    this.#departed.delete(peer)
    this.#departed.set(peer, { keys: summary.keys, at: Date.now() })
    for (const oldest of this.#departed.keys()) {
      if (this.#departed.size <= DEPARTED_PEERS) break
      this.#departed.delete(oldest)
    }
  }

  /** Follows `peer`'s summary while it stays connected, re-subscribing with backoff. */
  async #subscribe (peer: PeerId): Promise<void> {
    const key = peer.toString()
    const controller = new AbortController()
    this.#subscriptions.set(key, controller)
    const { signal } = controller
    let delay = this.#resubscribeMinMs
    while (!signal.aborted && this.#components.connectionManager.getConnections(peer).length > 0) {
      const started = Date.now()
      try {
        await this.#follow(peer, signal)
        this.#log.debug(`index: ${shortPeer(key)} ended its summary stream`)
      } catch (err) {
        if (!signal.aborted) this.#log.debug(`index: summary of ${shortPeer(key)} failed: ${describe(err)}`)
      }
      // Whatever we had may be stale now: ask that peer directly until a new summary arrives.
      this.#drop(key)
      if (signal.aborted) break
      // A subscription that ran a while was not a failure to back off from.
      if (Date.now() - started > this.#resubscribeMaxMs) delay = this.#resubscribeMinMs
      await sleep(delay, signal)
      delay = Math.min(delay * 2, this.#resubscribeMaxMs)
    }
    if (this.#subscriptions.get(key) === controller) this.#subscriptions.delete(key)
  }

  /** One subscription: the request, then updates until the stream ends. */
  async #follow (peer: PeerId, signal: AbortSignal): Promise<void> {
    const key = peer.toString()
    const stream = await this.#components.connectionManager.openStream(peer, PROTOCOL, { signal })
    const reader = new StreamReader(stream)
    const onAbort = (): void => { stream.abort(signal.reason instanceof Error ? signal.reason : new Error('aborted')) }
    signal.addEventListener('abort', onAbort, { once: true })
    try {
      stream.send(encodeFrame(IndexRequest.encode({})))
      await stream.close({ signal })
      while (true) {
        let frame: Uint8Array
        try {
          frame = await reader.readFrame(this.#maxUpdateBytes, { signal })
        } catch (err) {
          if (err instanceof FormatError && /ended before a frame/.test(err.message)) return
          throw err
        }
        const cost = this.#updateCost(() => { this.#apply(key, IndexUpdate.decode(frame)) })
        // backpressure: however fast the peer sends, its updates take a bounded share of the loop
        await sleep(cost * UPDATE_PAUSE_FACTOR, signal)
      }
    } catch (err) {
      stream.abort(err instanceof Error ? err : new Error(String(err)))
      throw err
    } finally {
      signal.removeEventListener('abort', onAbort)
      reader.dispose()
    }
  }

  #apply (peer: string, update: IndexUpdate): void {
    const current = this.#summaries.get(peer)
    let next: PeerSummary | undefined
    switch (update.kind) {
      case Kind.FULL:
        next = { version: update.version, keys: this.#decode(update.added) }
        break
      case Kind.DELTA: {
        if (current === undefined || update.version !== current.version + 1) {
          throw new FormatError(`delta to version ${update.version} does not follow ${current === undefined ? 'a full summary' : `version ${current.version}`}`)
        }
        const keys = applyKeySetDelta(current.keys, { added: this.#decode(update.added), removed: this.#decode(update.removed) })
        if (keys.length > this.#maxKeys) throw new FormatError(`summary grew past ${this.#maxKeys} keys`)
        next = { version: update.version, keys }
        break
      }
      case Kind.UNKNOWN:
        this.#summaries.delete(peer)
        this.#log.debug(`index: ${shortPeer(peer)} has no summary to offer`)
        return
      default:
        throw new FormatError('update without a kind')
    }
    this.#summaries.set(peer, next)
    this.#departed.delete(peer)
    this.#log.debug(`index: ${shortPeer(peer)} ${update.kind === Kind.FULL ? 'full' : 'delta'} v${next.version}: ${next.keys.length} keys`)
  }

  #decode (set: IndexUpdate['added']): Uint32Array {
    if (set === undefined) return new Uint32Array(0)
    return decodeKeySet(set, this.#maxKeys)
  }

  /** Pushes our summary to one subscriber: the view now, then every change, until it goes. */
  readonly #handle = async (stream: Stream, connection: Connection): Promise<void> => {
    const summary = this.#summary
    if (summary === undefined) { stream.abort(new Error('no summary')); return }
    const peer = connection.remotePeer.toString()
    const reader = new StreamReader(stream, { highWaterMark: RESPONDER_HIGH_WATER_MARK })
    const pending: SummaryChange[] = []
    let wake: (() => void) | undefined
    const notify = (): void => { const w = wake; wake = undefined; w?.() }
    const unsubscribe = summary.onChange(change => {
      if (change.view !== summary.viewNameOf(peer)) return
      pending.push(change)
      notify()
    })
    const onClose = (): void => { notify() }
    stream.addEventListener('close', onClose)
    this.#subscribers.add(stream)
    try {
      try {
        IndexRequest.decode(await reader.readFrame(MAX_REQUEST_BYTES, { signal: AbortSignal.timeout(this.#requestTimeout) }))
      } catch (err) {
        this.#log.debug(`index: no valid request from ${shortPeer(peer)}: ${describe(err)}`)
        stream.abort(new Error(`no valid request: ${describe(err)}`))
        return
      }
      let sent: number | 'unknown' | undefined
      const sendUpdate = async (change?: SummaryChange): Promise<void> => {
        const view = summary.view(peer)
        let update: Partial<IndexUpdate> | undefined
        if (view === undefined || view.keys.length > this.#maxKeys) {
          if (sent !== 'unknown') update = { kind: Kind.UNKNOWN }
          sent = 'unknown'
        } else if (change?.delta !== undefined && sent === change.version - 1) {
          update = { kind: Kind.DELTA, version: change.version, added: encodeKeySet(change.delta.added), removed: encodeKeySet(change.delta.removed) }
          sent = change.version
        } else if (view.version !== sent) {
          update = { kind: Kind.FULL, version: view.version, added: encodeKeySet(view.keys) }
          sent = view.version
        }
        if (update === undefined) return
        let frame = IndexUpdate.encode(update)
        if (frame.byteLength > this.#maxUpdateBytes && update.kind === Kind.DELTA && view !== undefined) {
          // a delta past the frame limit (a large garbage collection): the whole view is smaller
          frame = IndexUpdate.encode({ kind: Kind.FULL, version: view.version, added: encodeKeySet(view.keys) })
          sent = view.version
        }
        await send(stream, encodeFrame(frame), this.#stallTimeout)
      }
      await sendUpdate()
      while (stream.status === 'open') {
        const change = pending.shift()
        if (change !== undefined) { await sendUpdate(change); continue }
        await new Promise<void>(resolve => { wake = resolve })
      }
    } catch (err) {
      this.#log.debug(`index: stopped sending to ${shortPeer(peer)}: ${describe(err)}`)
      stream.abort(err instanceof Error ? err : new Error(String(err)))
    } finally {
      unsubscribe()
      stream.removeEventListener('close', onClose)
      this.#subscribers.delete(stream)
      reader.dispose()
    }
  }
}

/** The event-loop time `work` takes, in ms: it runs synchronously, so its wall time. */
function loopTime (work: () => void): number {
  const began = performance.now()
  work()
  return performance.now() - began
}

async function sleep (ms: number, signal: AbortSignal): Promise<void> {
  await new Promise<void>(resolve => {
    const done = (): void => { clearTimeout(timer); signal.removeEventListener('abort', done); resolve() }
    const timer = setTimeout(done, ms)
    signal.addEventListener('abort', done, { once: true })
  })
}
