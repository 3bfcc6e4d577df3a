/**
 * @packageDocumentation
 *
 * `/peerix/nar/1` (protocols/peerix-nar-1.md): fetch a store path's NAR from a peer, from any
 * byte offset; stream this host's own NARs to peers with back-pressure.
 *
 * ```ts
 * const node = await createLibp2p({ services: { nar: nar({ source }) } })
 * const answer = await node.services.nar.fetch(peerId, hashPart, narHash, 0, { signal })
 * if (answer.status === 'found') for await (const chunk of answer.value) hash.update(chunk)
 * ```
 */
import { NarService as NarServiceClass } from './nar.js'
import type { Answer } from '../peer-client.js'
import type { PathSource } from '../../store/source.js'
import type { Logger } from '../../log.js'
import type { AbortOptions, PeerId } from '@libp2p/interface'
import type { ConnectionManager, Registrar } from '@libp2p/interface-internal'

/**
 * The bytes of a NAR from the requested offset, unverified. Iterate it once, to the end (which
 * hands the stream back for the next fetch) or until you stop (which resets the stream): it
 * throws when the stream is reset, stalls for the idle timeout, ends before `length` bytes or
 * has more than `length` bytes already arrived at its end.
 */
export interface NarStream extends AsyncIterable<Uint8Array> {
  /** The number of bytes the peer announced: NarSize - offset. */
  length: number
  /** How the peer encoded the body: `zstd` only when the request accepted it. */
  encoding: 'identity' | 'zstd'
  /** Body bytes received so far as they crossed the wire (compressed ones for `zstd`). */
  wireBytes: number
}

export interface FetchOptions extends AbortOptions {
  /** Ask for a zstd-compressed body; the peer may still send it uncompressed. */
  acceptZstd?: boolean
  /**
   * Called synchronously, from within `fetch`, when the peer's every NAR stream is busy
   * (MAX_STREAMS_PER_PEER) and the request waits its turn: `turn` resolves when it comes (the
   * time limits start then), and rejects when the signal aborts (the request left the queue).
   */
  onQueued?: (turn: Promise<void>) => void
}

export interface NarService {
  /** Never throws: a reset, a timeout or a malformed header is an `error` answer. */
  fetch: (peer: PeerId, hashPart: string, narHash: string, offset: number, options?: FetchOptions) => Promise<Answer<NarStream>>
}

export interface NarServiceInit {
  /** What this host serves to peers. */
  source: PathSource
  /** Client: how long to wait for the response header, whatever the caller's signal (ms). */
  timeout?: number
  /** Client: how long the body may go without a byte before the download fails (ms). */
  idleTimeout?: number
  /** Client: how long an idle stream is kept for the next fetch (ms). */
  idleStreamTimeout?: number
  /** Server: how long a peer has to send its request after opening a stream (ms). */
  requestTimeout?: number
  /** Server: how long a stream waits for its next request before it is closed (ms). */
  keepAlive?: number
  /** Server: how long a requester may read nothing before we give up on it (ms). */
  sendStallTimeout?: number
  /** Server: the smallest write the store's pieces are gathered into (bytes). */
  chunkBytes?: number
  /** Server: compress the body when the request accepts zstd (default true). */
  compress?: boolean
  maxInboundStreams?: number
  maxOutboundStreams?: number
  /** Client: NAR exchanges at once per peer; more wait their turn (default MAX_STREAMS_PER_PEER). */
  maxStreamsPerPeer?: number
  /** Where misbehaving peers and store failures are reported. */
  log?: Logger
}

export interface NarServiceComponents {
  registrar: Registrar
  connectionManager: ConnectionManager
}

export function nar (init: NarServiceInit): (components: NarServiceComponents) => NarService {
  return (components) => new NarServiceClass(components, init)
}

export { PROTOCOL as NAR_PROTOCOL } from './constants.js'
