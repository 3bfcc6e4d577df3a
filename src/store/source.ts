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
}

/** What a narinfo request may ask for besides the narinfo. */
export interface NarInfoOptions {
  /**
   * Also the whole NAR when its NarSize is at most this many bytes (small NARs sent with their
   * narinfo, /peerix/narinfo/1 r2): read from the same lookup as the narinfo, so the two agree.
   */
  narUpTo?: number
}

/** A narinfo answer; a found one carries its NAR when it was asked for and is small enough. */
export type ServedNarInfo =
  | { status: 'found', value: NarInfo, nar?: NarBytes }
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
