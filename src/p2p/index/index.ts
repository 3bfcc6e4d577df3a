/**
 * @packageDocumentation
 *
 * `/peerix/index/1` (protocols/peerix-index-1.md): every peer sends its connected peers a
 * compact summary of the paths it would serve them and keeps it current, so the substituter
 * asks only the peers whose summary may hold a hash, and none for a miss.
 *
 * ```ts
 * const node = await createLibp2p({ services: { index: peerIndex({ summary }) } })
 * node.services.index.mayHave(peerId, hashPart) // false: that peer would answer absent
 * ```
 */
import { PeerIndexService } from './peer-index.js'
import type { SummaryChange, SummaryView } from '../../store/summary.js'
import type { Logger } from '../../log.js'
import type { Libp2pEvents, TypedEventTarget } from '@libp2p/interface'
import type { ConnectionManager, Registrar } from '@libp2p/interface-internal'

export interface PeerIndex {
  /**
   * False only when `peer` sent a summary and the hash part's key is not in it: the peer would
   * answer absent (or refused). True for a peer without a summary (not received yet, an older
   * peerix, a store too large), so it is asked as before. Throws FormatError for a bad hash part.
   */
  mayHave: (peer: string, hashPart: string) => boolean
  /**
   * `mayHave` for one hash part and any peer: its key is worked out once, not per peer (a miss
   * asks this of every connected peer).
   */
  holders: (hashPart: string) => (peer: string) => boolean
  /**
   * Peers not connected now that left less than DEPARTED_SUMMARY_MS ago and whose last
   * summary held the hash part's key: a path only they have may be back in a moment.
   */
  departedHolders: (hashPart: string) => string[]
  /** The summary `peer` sent (version and number of keys), or undefined when there is none. */
  summaryOf: (peer: string) => { version: number, keys: number } | undefined
}

/** What this host offers its peers: StoreSummary. */
export interface SummarySource {
  view: (peer: string) => SummaryView | undefined
  viewNameOf: (peer: string) => string
  onChange: (listener: (change: SummaryChange) => void) => () => void
}

export interface PeerIndexInit {
  /** This host's summary; without one the protocol is not served (peers then ask us directly). */
  summary?: SummarySource
  /** Ask peers for their summaries (default true; false with --no-index, which asks every peer anyway). */
  subscribe?: boolean
  /** Largest summary accepted from a peer or sent to one. */
  maxKeys?: number
  maxUpdateBytes?: number
  requestTimeout?: number
  stallTimeout?: number
  resubscribeMinMs?: number
  resubscribeMaxMs?: number
  /** Runs one update's decode and apply, returning the ms of event loop it took (tests fix it). */
  updateCost?: (work: () => void) => number
  log?: Logger
}

export interface PeerIndexComponents {
  registrar: Registrar
  connectionManager: ConnectionManager
  events: TypedEventTarget<Libp2pEvents>
}

export function peerIndex (init: PeerIndexInit = {}): (components: PeerIndexComponents) => PeerIndex {
  return (components) => new PeerIndexService(components, init)
}

export { PROTOCOL as INDEX_PROTOCOL } from './constants.js'
