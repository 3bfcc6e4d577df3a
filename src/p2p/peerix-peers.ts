/**
 * Which connected peers speak peerix: a libp2p service that follows identify, so the
 * substituter only ever asks peers known to answer `/peerix/narinfo/1` (a plain libp2p node
 * that happens to be connected is never asked), and logs one line per peer found or lost.
 */
import { shortPeer, type Logger } from '../log.js'
import type { AbortOptions, Connection, IdentifyResult, Libp2p, PeerId, PeerUpdate, Startable } from '@libp2p/interface'

/**
 * libp2p runs identify once, when a connection opens, and gives up after 5 s. A peer whose
 * identify failed (its event loop was busy then) stayed connected and was never asked, and
 * nothing redialled it since it was connected: identify runs again on such a connection after
 * this long, then after twice as long each time, up to IDENTIFY_RETRY_MAX_MS.
 */
export const IDENTIFY_RETRY_MS = 10_000
const IDENTIFY_RETRY_MAX_MS = 300_000

export interface PeerixPeersInit {
  /** The protocol that makes a peer a peerix peer. */
  protocol: string
  log: Logger
  /** IDENTIFY_RETRY_MS by default. */
  identifyRetryMs?: number
}

export interface PeerixPeersComponents {
  events: Pick<Libp2p, 'addEventListener' | 'removeEventListener'>
  connectionManager: { getConnections: (peerId?: PeerId) => Connection[] }
  /** libp2p's identify service (a component by its service name). */
  identify: { identify: (connection: Connection, options?: AbortOptions) => Promise<IdentifyResult> }
}

export class PeerixPeers implements Startable {
  readonly #components: PeerixPeersComponents
  readonly #init: PeerixPeersInit
  readonly #peers = new Map<string, PeerId>()
  /** Connected peers identify has run for: only their peer store updates count. */
  readonly #identified = new Set<string>()
  /** Identify retries pending, by connection. */
  readonly #retries = new Map<Connection, ReturnType<typeof setTimeout>>()

  constructor (components: PeerixPeersComponents, init: PeerixPeersInit) {
    this.#components = components
    this.#init = init
  }

  /** The peers to ask now: connected, and their last identify listed the protocol. */
  list (): PeerId[] {
    return [...this.#peers.values()]
  }

  start (): void {
    const { events } = this.#components
    events.addEventListener('peer:identify', this.#onIdentify)
    events.addEventListener('peer:update', this.#onUpdate)
    events.addEventListener('peer:disconnect', this.#onDisconnect)
    events.addEventListener('connection:open', this.#onConnectionOpen)
    events.addEventListener('connection:close', this.#onConnectionClose)
  }

  stop (): void {
    const { events } = this.#components
    events.removeEventListener('peer:identify', this.#onIdentify)
    events.removeEventListener('peer:update', this.#onUpdate)
    events.removeEventListener('peer:disconnect', this.#onDisconnect)
    events.removeEventListener('connection:open', this.#onConnectionOpen)
    events.removeEventListener('connection:close', this.#onConnectionClose)
    for (const timer of this.#retries.values()) clearTimeout(timer)
    this.#retries.clear()
    this.#peers.clear()
    this.#identified.clear()
  }

  readonly #onConnectionOpen = (evt: CustomEvent<Connection>): void => {
    this.#retryIdentify(evt.detail, this.#init.identifyRetryMs ?? IDENTIFY_RETRY_MS)
  }

  readonly #onConnectionClose = (evt: CustomEvent<Connection>): void => {
    clearTimeout(this.#retries.get(evt.detail))
    this.#retries.delete(evt.detail)
  }

  /** Runs identify on `connection` after `delayMs` unless its peer has been identified by then. */
  #retryIdentify (connection: Connection, delayMs: number): void {
    const timer = setTimeout(() => {
      this.#retries.delete(connection)
      if (connection.status !== 'open' || this.#identified.has(connection.remotePeer.toString())) return
      this.#init.log.debug(`identify of ${shortPeer(connection.remotePeer.toString())} did not complete; running it again`)
      this.#retryIdentify(connection, Math.min(delayMs * 2, IDENTIFY_RETRY_MAX_MS))
      // success comes back as a peer:identify event
      this.#components.identify.identify(connection).catch(() => {})
    }, delayMs)
    timer.unref()
    this.#retries.set(connection, timer)
  }

  readonly #onIdentify = (evt: CustomEvent<IdentifyResult>): void => {
    const { peerId, protocols, agentVersion, connection } = evt.detail
    this.#identified.add(peerId.toString())
    this.#consider(peerId, protocols, agentVersion, connection.remoteAddr.toString())
  }

  /**
   * Identify push (a peer that starts or stops serving) arrives as a peer store update. Updates
   * before the first identify are ignored: they may hold protocols from an earlier connection.
   */
  readonly #onUpdate = (evt: CustomEvent<PeerUpdate>): void => {
    const { id, protocols, metadata } = evt.detail.peer
    if (!this.#identified.has(id.toString())) return
    const agent = metadata.get('AgentVersion')
    this.#consider(id, protocols, agent === undefined ? undefined : new TextDecoder().decode(agent))
  }

  readonly #onDisconnect = (evt: CustomEvent<PeerId>): void => {
    this.#identified.delete(evt.detail.toString())
    if (this.#peers.delete(evt.detail.toString())) this.#init.log.info(`peer lost ${shortPeer(evt.detail.toString())}`)
  }

  #consider (peerId: PeerId, protocols: string[], agentVersion?: string, address?: string): void {
    const key = peerId.toString()
    const speaks = protocols.includes(this.#init.protocol)
    const connected = this.#components.connectionManager.getConnections(peerId).length > 0
    if (speaks && connected && !this.#peers.has(key)) {
      this.#peers.set(key, peerId)
      this.#init.log.info(`peer found ${shortPeer(key)} (${agentVersion ?? 'unknown agent'}${address === undefined ? '' : ` at ${address}`})`)
    } else if (!speaks && this.#peers.delete(key)) {
      this.#init.log.info(`peer lost ${shortPeer(key)} (no longer speaks ${this.#init.protocol})`)
    }
  }
}

export function peerixPeers (init: PeerixPeersInit): (components: PeerixPeersComponents) => PeerixPeers {
  return (components) => new PeerixPeers(components, init)
}
