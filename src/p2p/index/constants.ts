/** /peerix/index/1: protocol id, limits and timeouts (see protocols/peerix-index-1.md). */

export const PROTOCOL = '/peerix/index/1'

/** The request is an empty message; anything longer is not one. */
export const MAX_REQUEST_BYTES = 256

/**
 * The most keys a summary may hold, on either side. 1,000,000 paths is a large build farm;
 * the keys take 4 MB per peer in memory and about 1.8 MB on the wire. A bigger store is not
 * summarised: its peers ask it directly, as they would a peer without the index.
 */
export const MAX_KEYS = 1_000_000

/** One update frame: a full summary of MAX_KEYS keys, or a delta, with room to spare. */
export const MAX_UPDATE_BYTES = 4 * 1024 * 1024

/**
 * After each update from a peer, its subscription reads nothing for this many times the event
 * loop time the update took to decode and apply: a peer sending full summaries back to back
 * (1,000,000 keys take ~12 ms to decode) gets at most about a tenth of the loop, which the
 * HTTP shim needs for its answers. An honest peer sends one full summary, then small deltas.
 */
export const UPDATE_PAUSE_FACTOR = 10

/** How long a responder waits for the request frame after the stream opened. */
export const REQUEST_TIMEOUT = 10_000

/** A responder drops a subscriber that reads nothing for this long. */
export const SEND_STALL_TIMEOUT = 60_000

/** A subscriber re-subscribes after a failed subscription, waiting this long first, doubling… */
export const RESUBSCRIBE_MIN_MS = 1000
/** …up to this. Meanwhile the peer has no summary, so it is asked directly. */
export const RESUBSCRIBE_MAX_MS = 60_000

/** One subscription per connected peer each way; a few more cover reconnects. */
export const MAX_INBOUND_STREAMS = 4
export const MAX_OUTBOUND_STREAMS = 4

/**
 * How long the summary of a peer that disconnected is kept, for `departedHolders`: a daemon
 * restarting (systemctl restart, nixos-rebuild switch) is back within seconds, and a path only
 * it has is worth waiting for rather than answered absent. At most DEPARTED_PEERS are kept.
 */
export const DEPARTED_SUMMARY_MS = 60_000
export const DEPARTED_PEERS = 16
