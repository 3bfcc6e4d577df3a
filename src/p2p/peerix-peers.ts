/**
 * Which connected peers speak peerix: a libp2p service that follows identify, so the
 * substituter only ever asks peers known to answer `/peerix/narinfo/1` (a plain libp2p node
 * that happens to be connected is never asked), and logs one line per peer found or lost.
 */
import { shortPeer, type Logger } from '../log.js'
import type { Connection, IdentifyResult, Libp2p, PeerId, PeerUpdate, Startable } from '@libp2p/interface'

export interface PeerixPeersInit {
  /** The protocol that makes a peer a peerix peer. */
  protocol: string
  log: Logger
}

export interface PeerixPeersComponents {
  events: Pick<Libp2p, 'addEventListener' | 'removeEventListener'>
  connectionManager: { getConnections: (peerId?: PeerId) => Connection[] }
}

export class PeerixPeers implements Startable {
  readonly #components: PeerixPeersComponents
  readonly #init: PeerixPeersInit
  readonly #peers = new Map<string, PeerId>()
  /** Connected peers identify has run for: only their peer store updates count. */
  readonly #identified = new Set<string>()

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
  }

  stop (): void {
    const { events } = this.#components
    events.removeEventListener('peer:identify', this.#onIdentify)
    events.removeEventListener('peer:update', this.#onUpdate)
    events.removeEventListener('peer:disconnect', this.#onDisconnect)
    this.#peers.clear()
    this.#identified.clear()
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
