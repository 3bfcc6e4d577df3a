/** /peerix/narinfo/1: protocol id, limits and timeouts (see protocols/peerix-narinfo-1.md). */
import { MAX_NARINFO_BYTES } from '../../nix/narinfo.js'

export const PROTOCOL = '/peerix/narinfo/1'

/** A request is a hash part and protobuf tags, 34 bytes, and max_nar_bytes (r2) at most 6 more. Anything past this is not a request. */
export const MAX_REQUEST_BYTES = 256

/**
 * The largest NAR a responder puts in an answer (r2), whatever the requester would take: for a
 * NAR this small the second round trip to fetch it costs more than its bytes.
 */
export const MAX_INLINE_NAR_BYTES = 64 * 1024

/** A response carries at most one narinfo, plus a status and a short message, and the NAR asked for. */
export function maxResponseBytes (maxNarBytes: number): number {
  return MAX_NARINFO_BYTES + 4096 + Math.min(maxNarBytes, MAX_INLINE_NAR_BYTES)
}

/** How long a responder waits for the request frame after the stream opened. */
export const REQUEST_TIMEOUT = 10_000

/** How long a requester waits for the whole answer when its caller gives no shorter signal. */
export const QUERY_TIMEOUT = 10_000

/** How long a responder waits for the next request on a stream that carried one (r1). */
export const KEEP_ALIVE_TIMEOUT = 30_000

/**
 * How long a requester keeps an idle stream for its next query: well under the responder's
 * keep-alive, so it never writes into a stream the responder is closing.
 */
export const IDLE_STREAM_TIMEOUT = 20_000

/** Idle streams a requester keeps per peer: Nix asks one narinfo at a time, a shim a few. */
export const IDLE_STREAMS_PER_PEER = 16

/**
 * Streams per connection. Nix asks for narinfos one after another, but a `nix copy` through
 * several shims, or 500 concurrent lookups, can keep hundreds in flight to one peer; each is
 * a few hundred bytes of state. Yamux itself allows 1,000 streams per connection.
 */
export const MAX_INBOUND_STREAMS = 512
export const MAX_OUTBOUND_STREAMS = 512
