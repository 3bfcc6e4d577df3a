/**
 * How the substituter asks peers, without knowing libp2p: the p2p layer implements this on
 * top of the node and the /peerix/narinfo/1 and /peerix/nar/1 services.
 */

/** A peer's answer; `error` covers a reset stream, a timeout, a malformed reply. */
export type Answer<T> =
  | { status: 'found', value: T }
  | { status: 'absent' }
  | { status: 'refused', reason: string }
  | { status: 'error', message: string }

/** A narinfo answer; `nar`: the path's whole NAR, sent along when asked for (unverified). */
export type NarInfoAnswer =
  | Exclude<Answer<string>, { status: 'found' }>
  | { status: 'found', value: string, nar?: Uint8Array }

/** A peer's NAR body; where known, how it crossed the wire and how many bytes it took so far. */
export interface NarBody extends AsyncIterable<Uint8Array> {
  readonly encoding?: 'identity' | 'zstd'
  readonly wireBytes?: number
}

export interface NarOptions {
  acceptZstd?: boolean
  onQueued?: (turn: Promise<void>) => void
}

export interface PeerClient {
  /** Peers worth asking now: connected and known (via identify) to speak /peerix/narinfo/1. */
  peers: () => string[]
  /**
   * The narinfo text a peer serves for a hash part, unverified: the caller parses and checks
   * it. With `maxNarBytes`, the path's NAR comes along if it is that small (and the peer can).
   */
  narInfo: (peer: string, hashPart: string, signal: AbortSignal, options?: { maxNarBytes?: number }) => Promise<NarInfoAnswer>
  /**
   * A peer's NAR bytes for a path from `offset`, unverified. The iterable throws when the
   * stream breaks; it ends when the peer has sent everything it will send. `acceptZstd` asks
   * the peer to compress the body on the wire (the bytes delivered are the NAR all the same).
   * `onQueued` is called synchronously, from within `nar`, when the request must wait for one
   * of the peer's other NARs to end first; `turn` resolves when its turn comes (rejects if aborted).
   */
  nar: (peer: string, hashPart: string, narHash: string, offset: number, signal: AbortSignal, options?: NarOptions) => Promise<Answer<NarBody>>
  /**
   * When bytes last came from the peer, of any kind (ms since the epoch); undefined when none
   * came since it connected, or when the client cannot tell (then no peer is waited for longer).
   */
  lastHeard?: (peer: string) => number | undefined
  /** Asks the peer for a sign of life (a ping): its answer shows in lastHeard. */
  probe?: (peer: string) => void
}
