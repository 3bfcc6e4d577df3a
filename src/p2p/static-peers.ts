/**
 * Static peers (`--peer <multiaddr>`): hosts mDNS cannot reach, kept connected. Each is dialled
 * at start and redialled with exponential backoff and jitter whenever dialling fails or its
 * last connection closes, until the node stops. The multiaddr may omit `/p2p/<id>`: the peer
 * ID is learnt in the Noise handshake, and may change when the host is reinstalled.
 */
import { lookup } from 'node:dns/promises'
import { isIPv4 } from 'node:net'
import { peerIdFromString } from '@libp2p/peer-id'
import { shortPeer, type Logger } from '../log.js'
import type { AbortOptions, Connection, IdentifyResult, Libp2p, PeerId, Startable } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'

export interface StaticPeersInit {
  addrs: Multiaddr[]
  log: Logger
  /** The first redial delay; it doubles on each failure up to `maxBackoffMs`. */
  minBackoffMs?: number
  maxBackoffMs?: number
}

export interface StaticPeersComponents {
  events: Pick<Libp2p, 'addEventListener' | 'removeEventListener'>
  connectionManager: {
    openConnection: (peer: Multiaddr, options?: AbortOptions) => Promise<Connection>
    getConnections: (peerId?: PeerId) => Connection[]
  }
}

export const DEFAULT_MIN_BACKOFF_MS = 1000
export const DEFAULT_MAX_BACKOFF_MS = 60_000
/** A connection that lasted this long was a success: the next loss starts backoff afresh. */
const STABLE_CONNECTION_MS = 10_000

/** One static peer's state: who answered at its address last, and the pending redial. */
interface Target {
  addr: Multiaddr
  /** The multiaddr names the peer ID: only that peer counts as this static peer. */
  pinned: boolean
  peerId?: PeerId
  connected: boolean
  dialling: boolean
  failures: number
  connectedAt: number
  /** The connection was just lost: the first failed redial is worth an info line. */
  justLost: boolean
  timer?: ReturnType<typeof setTimeout>
}

export class StaticPeers implements Startable {
  readonly #components: StaticPeersComponents
  readonly #log: Logger
  readonly #minBackoffMs: number
  readonly #maxBackoffMs: number
  readonly #targets: Target[]
  #stopping = new AbortController()

  constructor (components: StaticPeersComponents, init: StaticPeersInit) {
    this.#components = components
    this.#log = init.log
    this.#minBackoffMs = init.minBackoffMs ?? DEFAULT_MIN_BACKOFF_MS
    this.#maxBackoffMs = init.maxBackoffMs ?? DEFAULT_MAX_BACKOFF_MS
    this.#targets = init.addrs.map(addr => {
      const peerId = peerIdIn(addr)
      return { addr, pinned: peerId !== undefined, peerId, connected: false, dialling: false, failures: 0, connectedAt: 0, justLost: false }
    })
  }

  start (): void {
    this.#stopping = new AbortController()
    this.#components.events.addEventListener('peer:connect', this.#onConnect)
    this.#components.events.addEventListener('peer:identify', this.#onIdentify)
    this.#components.events.addEventListener('peer:disconnect', this.#onDisconnect)
  }

  /** Dial once the transports listen, so a peer that dials back finds us. */
  afterStart (): void {
    for (const target of this.#targets) void this.#dial(target)
  }

  stop (): void {
    this.#stopping.abort()
    this.#components.events.removeEventListener('peer:connect', this.#onConnect)
    this.#components.events.removeEventListener('peer:identify', this.#onIdentify)
    this.#components.events.removeEventListener('peer:disconnect', this.#onDisconnect)
    for (const target of this.#targets) {
      clearTimeout(target.timer)
      target.timer = undefined
      target.connected = false
    }
  }

  /** The static peer connected to us by itself (it has us as a static peer too): no redial needed. */
  readonly #onConnect = (evt: CustomEvent<PeerId>): void => {
    for (const target of this.#targetsOf(evt.detail)) this.#connectedBy(target, evt.detail)
  }

  /**
   * A peer that dialled us and listens on a static peer's address is that static peer, even
   * when its multiaddr has no `/p2p/<id>`: dialling it again would only open a second connection.
   * Only when it dialled from that address's IP: the addresses it announces are its own word,
   * and any peer claiming a static peer's would otherwise stop us dialling the real one.
   */
  readonly #onIdentify = (evt: CustomEvent<IdentifyResult>): void => {
    const { peerId, listenAddrs, connection } = evt.detail
    const from = ipOf(connection.remoteAddr)
    if (connection.status !== 'open' || from === undefined) return
    const announced = new Set(listenAddrs.map(withoutPeerId))
    for (const target of this.#targets) {
      if (target.pinned || target.connected) continue
      const named = nameOf(target.addr)
      if (named === undefined) {
        if (ipOf(target.addr) === from && announced.has(withoutPeerId(target.addr))) this.#connectedBy(target, peerId)
        continue
      }
      // A name (`/dns4/nas.lan/…`): the peer is that static peer when the name resolves to the
      // IP it dialled from and it announces that IP with the port given.
      const asDialled = withoutPeerId(target.addr).replace(/^\/dns[46]?\/[^/]+/, `/${isIPv4(from) ? 'ip4' : 'ip6'}/${from}`)
      if (!announced.has(asDialled)) continue
      lookup(named.name, { all: true, family: named.family }).then(addresses => {
        if (addresses.some(a => a.address === from) && connection.status === 'open') this.#connectedBy(target, peerId)
      }, () => {})
    }
  }

  #connectedBy (target: Target, peerId: PeerId): void {
    if (target.connected) return
    clearTimeout(target.timer)
    target.timer = undefined
    this.#connected(target, peerId)
  }

  readonly #onDisconnect = (evt: CustomEvent<PeerId>): void => {
    for (const target of this.#targetsOf(evt.detail)) {
      if (!target.connected) continue
      target.connected = false
      // A connection the other side drops at once (its gater refuses us) is a failed dial:
      // back off instead of redialling every second forever.
      const stable = Date.now() - target.connectedAt >= STABLE_CONNECTION_MS
      target.failures = stable ? 0 : target.failures + 1
      target.justLost = true
      this.#log.info(`static peer ${target.addr.toString()} (${shortPeer(evt.detail.toString())}) lost; redialling`)
      this.#schedule(target)
    }
  }

  #targetsOf (peerId: PeerId): Target[] {
    return this.#targets.filter(t => t.peerId?.equals(peerId) === true)
  }

  async #dial (target: Target): Promise<void> {
    target.timer = undefined
    if (this.#stopping.signal.aborted || target.connected || target.dialling) return
    if (target.peerId !== undefined && this.#components.connectionManager.getConnections(target.peerId).length > 0) {
      this.#connected(target, target.peerId)
      return
    }
    target.dialling = true
    try {
      const connection = await this.#components.connectionManager.openConnection(target.addr, { signal: this.#stopping.signal })
      if (this.#stopping.signal.aborted) return
      // The connection may have closed already; then no disconnect event will come for it.
      if (this.#components.connectionManager.getConnections(connection.remotePeer).length === 0) throw new Error('connection closed at once')
      if (!target.connected || !connection.remotePeer.equals(target.peerId)) this.#connected(target, connection.remotePeer)
    } catch (err) {
      if (this.#stopping.signal.aborted) return
      const message = `static peer ${target.addr.toString()} unreachable (${(err as Error).message})`
      if (target.failures === 0 || target.justLost) this.#log.info(`${message}; retrying`)
      else this.#log.debug(message)
      target.failures++
      target.justLost = false
      this.#schedule(target)
    } finally {
      target.dialling = false
    }
  }

  #connected (target: Target, peerId: PeerId): void {
    target.peerId = peerId
    target.connected = true
    target.connectedAt = Date.now()
    this.#log.info(`static peer ${target.addr.toString()} connected (${shortPeer(peerId.toString())})`)
  }

  /** Exponential backoff, each delay between half and all of its step, so hosts that lost each other do not redial in lockstep. */
  #schedule (target: Target): void {
    if (this.#stopping.signal.aborted || target.timer !== undefined) return
    const step = Math.min(this.#maxBackoffMs, this.#minBackoffMs * 2 ** Math.max(0, target.failures - 1))
    const delay = step / 2 + Math.random() * step / 2
    target.timer = setTimeout(() => { void this.#dial(target) }, delay)
    target.timer.unref()
  }
}

function withoutPeerId (addr: Multiaddr): string {
  return addr.getComponents().filter(c => c.name !== 'p2p').map(c => `/${c.name}${c.value === undefined ? '' : `/${c.value}`}`).join('')
}

/** The IP address of `addr`, or undefined for a name (`/dns4/…`) or a relayed address. */
function ipOf (addr: Multiaddr): string | undefined {
  const components = addr.getComponents()
  if (components.some(c => c.name === 'p2p-circuit')) return undefined
  return components.find(c => c.name === 'ip4' || c.name === 'ip6')?.value
}

/** The name a multiaddr starts with (`/dns4/…`, `/dns6/…`, `/dns/…`) and the address family to look it up in. */
function nameOf (addr: Multiaddr): { name: string, family: 0 | 4 | 6 } | undefined {
  const first = addr.getComponents()[0]
  if (first?.value === undefined) return undefined
  const family = ({ dns4: 4, dns6: 6, dns: 0 } as const)[first.name as 'dns4' | 'dns6' | 'dns']
  return family === undefined ? undefined : { name: first.value, family }
}

function peerIdIn (addr: Multiaddr): PeerId | undefined {
  const id = addr.getComponents().findLast(c => c.name === 'p2p')?.value
  return id === undefined ? undefined : peerIdFromString(id)
}

export function staticPeers (init: StaticPeersInit): (components: StaticPeersComponents) => StaticPeers {
  return (components) => new StaticPeers(components, init)
}
