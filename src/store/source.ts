/**
 * What this host serves: the contract between the local store (with its serving policy) and
 * the p2p services that answer peers. A peer only ever gets answers from this host's own
 * store, never forwarded from another peer, so there are no loops.
 */
import type { NarInfo } from '../nix/narinfo.js'

/** The answer to one request: found, absent, or refused by the serving policy (with why). */
export type Served<T> =
  | { status: 'found', value: T }
  | { status: 'absent' }
  | { status: 'refused', reason: string }

/** The bytes of a NAR from some offset on; `length` bytes will follow (NarSize - offset). */
export interface NarBytes {
  length: number
  stream: AsyncIterable<Uint8Array>
  /**
   * Told by the /peerix/nar/1 service what of these bytes went out to the peer, for the
   * operator's figures: `bytes` more since the last call (NAR bytes, before compression, whose
   * writes left the stream for the connection: bytes still queued when a peer resets the
   * stream are never counted), and with `end` that the body is over: `complete` once all
   * `length` bytes went out, `cut` when it stopped short (the peer went away or stalled, the
   * store failed). `end` comes at most once. Not called for a NAR sent with its narinfo:
   * ServedNarInfo's `sent` says whether that one went out.
   */
  sent?: (bytes: number, end?: 'complete' | 'cut') => void
}

/** What a narinfo request may ask for besides the narinfo. */
export interface NarInfoOptions {
  /**
   * Also the whole NAR when its NarSize is at most this many bytes (small NARs sent with their
   * narinfo, /peerix/narinfo/1 r2): read from the same lookup as the narinfo, so the two agree.
   */
  narUpTo?: number
}

/**
 * A narinfo answer; a found one carries its NAR when it was asked for and is small enough.
 * `sent` is called by the /peerix/narinfo/1 service once the answer went out in full (never
 * when sending it failed), `withNar` when the NAR went with it.
 */
export type ServedNarInfo =
  | { status: 'found', value: NarInfo, nar?: NarBytes, sent?: (withNar: boolean) => void }
  | { status: 'absent' }
  | { status: 'refused', reason: string }

export interface PathSource {
  /** The narinfo this host would serve for a store hash part to `peer` (a peer ID string). */
  narInfo: (hashPart: string, peer: string, options?: NarInfoOptions) => Promise<ServedNarInfo>
  /**
   * The NAR of the path from byte `offset`. Absent when the path is gone or its NarHash is no
   * longer `narHash` (the requester's narinfo is stale).
   */
  nar: (hashPart: string, narHash: string, offset: number, peer: string, signal?: AbortSignal) => Promise<Served<NarBytes>>
}
