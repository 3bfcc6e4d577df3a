/** /peerix/nar/1: protocol id, limits and timeouts (see protocols/peerix-nar-1.md). */

export const PROTOCOL = '/peerix/nar/1'

/** A request is a hash part, a NarHash and an offset: about 100 bytes. */
export const MAX_REQUEST_BYTES = 512

/** The response header: a status, a length and a short message. */
export const MAX_HEADER_BYTES = 4096

/** How long a responder waits for the request frame after the stream opened. */
export const REQUEST_TIMEOUT = 10_000

/** How long a responder waits for the next request on a stream that carried one (r1). */
export const KEEP_ALIVE_TIMEOUT = 30_000

/**
 * How long a requester keeps an idle stream for its next fetch: well under the responder's
 * keep-alive, so it never writes into a stream the responder is closing.
 */
export const IDLE_STREAM_TIMEOUT = 20_000

/** Idle streams a requester keeps per peer, of the MAX_STREAMS_PER_PEER it may have open. */
export const IDLE_STREAMS_PER_PEER = 16

/** How long a requester waits for the response header (the source may open files first). */
export const HEADER_TIMEOUT = 30_000

/** A requester fails the body when no byte arrives for this long (a stalled peer). */
export const IDLE_TIMEOUT = 30_000

/** A responder gives up when the requester reads nothing for this long. */
export const SEND_STALL_TIMEOUT = 60_000

/**
 * The responder gathers the store's small pieces (NAR headers, small files) into writes of at
 * least this size: each write is a yamux frame and Noise messages, so tiny writes cost
 * throughput. Measured on loopback, 512 MiB, both nodes in one process: 4 KiB pieces sent one
 * by one 24 MiB/s; gathered to 64 KiB 66–87, to 256 KiB 80–91, to 1 MiB 97 MiB/s. 256 KiB
 * pieces (the NAR writer's chunk) 150–230 MiB/s whatever this is. 256 KiB = the NAR writer's
 * chunk and yamux's initial window.
 */
export const SEND_CHUNK_BYTES = 256 * 1024

/**
 * The most NAR bytes one block of a compressed body holds (protocols/peerix-nar-1.md,
 * "Encodings"), and so the most a block may decompress to: the send chunk, so a compressed
 * body is written in pieces as large as an uncompressed one.
 */
export const MAX_BLOCK_BYTES = 256 * 1024

/** Unread NAR bytes at which the requester pauses the stream until its consumer catches up. */
export const READ_HIGH_WATER_MARK = 4 * 1024 * 1024

/**
 * After a pause the sender may still fill the window yamux granted before (up to its
 * maxStreamWindowSize, 16 MiB by default); the stream must buffer that much without resetting.
 */
export const READ_BUFFER_LIMIT = READ_HIGH_WATER_MARK + 16 * 1024 * 1024 + 64 * 1024

/** The largest NAR offset or length we accept: beyond this a JS number is not exact. */
export const MAX_NAR_BYTES = Number.MAX_SAFE_INTEGER

/**
 * NAR streams per peer, either way. A responder resets the streams of a connection beyond
 * this (libp2p's per-connection limit), and the requester then fails at byte 0, which Nix saw
 * as a 404. So the requester keeps to it per peer, which is as strict with two connections to
 * the peer, and queues more NAR requests (Nix runs `http-connections`, 25 by default or
 * unlimited, several Nix clients may share the daemon, and its prefetches add 4).
 */
export const MAX_STREAMS_PER_PEER = 32
/** What libp2p enforces per connection: the limit above, one constant for both sides. */
export const MAX_INBOUND_STREAMS = MAX_STREAMS_PER_PEER
export const MAX_OUTBOUND_STREAMS = MAX_STREAMS_PER_PEER
