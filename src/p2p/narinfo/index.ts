/**
 * @packageDocumentation
 *
 * `/peerix/narinfo/1` (protocols/peerix-narinfo-1.md): ask a peer for the narinfo of a store
 * hash part; answer peers from this host's own store.
 *
 * ```ts
 * const node = await createLibp2p({ services: { narinfo: narinfo({ source }) } })
 * const answer = await node.services.narinfo.query(peerId, hashPart, { signal })
 * ```
 */
import { NarinfoService as NarinfoServiceClass } from './narinfo.js'
import type { NarInfoAnswer } from '../peer-client.js'
import type { PathSource } from '../../store/source.js'
import type { Logger } from '../../log.js'
import type { AbortOptions, PeerId } from '@libp2p/interface'
import type { ConnectionManager, Registrar } from '@libp2p/interface-internal'

export interface NarinfoService {
  /**
   * The narinfo text `peer` serves for `hashPart`, unverified (the caller parses and checks
   * it), and with `maxNarBytes` the path's NAR if it is that small (unverified too). Never
   * throws: a reset, a timeout or a malformed reply is an `error` answer.
   */
  query: (peer: PeerId, hashPart: string, options?: NarinfoQueryOptions) => Promise<NarInfoAnswer>
}

export interface NarinfoQueryOptions extends AbortOptions {
  /** Take the NAR in the answer if it is at most this many bytes (capped at 64 KiB; r2). */
  maxNarBytes?: number
}

export interface NarinfoServiceInit {
  /** What this host serves to peers. */
  source: PathSource
  /** Client: how long a query may take at most, whatever the caller's signal (ms). */
  timeout?: number
  /** Client: how long an idle stream is kept for the next query (ms). */
  idleStreamTimeout?: number
  /** Server: how long a peer has to send its request after opening a stream (ms). */
  requestTimeout?: number
  /** Server: how long a stream waits for its next request before it is closed (ms). */
  keepAlive?: number
  maxInboundStreams?: number
  maxOutboundStreams?: number
  /** Where misbehaving peers and store failures are reported. */
  log?: Logger
}

export interface NarinfoServiceComponents {
  registrar: Registrar
  connectionManager: ConnectionManager
}

export function narinfo (init: NarinfoServiceInit): (components: NarinfoServiceComponents) => NarinfoService {
  return (components) => new NarinfoServiceClass(components, init)
}

export { PROTOCOL as NARINFO_PROTOCOL } from './constants.js'
