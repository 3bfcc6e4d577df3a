/**
 * What the substituter has done, kept in one place so that /status and /metrics can read it
 * without the substituter knowing about either. Plain numbers, only ever incremented.
 */

/** Totals for one peer, for the per-peer view of /status. */
export interface PeerCounters {
  /** Verified narinfos this peer answered. */
  narInfosFound: number
  /** Answers dropped: malformed, for another path, not signed by a trusted key. */
  narInfosRejected: number
  /** Failed asks: a reset stream, a timeout, an error reply. */
  errors: number
  /** NAR bytes received from this peer and passed on. */
  narBytes: number
}

export class SubstituterCounters {
  /** narinfo lookups asked of the substituter (one per Nix request): each a hit, a miss or a refusal, unless Nix left first. */
  narInfoRequests = 0
  /** Lookups answered with a verified narinfo. */
  narInfoHits = 0
  /** Lookups no peer could answer: all absent, or the wait budget ran out. */
  narInfoMisses = 0
  /**
   * Lookups answered with a narinfo verified before, when a peer that offered it did not answer
   * the new lookup (its link slow or cut for a moment): counted as hits too.
   */
  narInfoKeptUnanswered = 0
  /**
   * Lookups of Nix on another host (the shim serving the LAN) refused a path a peer has, as
   * no public cache signed it: answered 404, and neither a hit nor a miss.
   */
  narInfoRefusals = 0
  /** Peer answers that were not used because they failed parsing or verification. */
  verificationFailures = 0
  /** Peer answers saying "refused" (the peer's serving policy). */
  refusals = 0
  /** Peer asks that failed: reset, timeout, error reply. */
  peerErrors = 0
  /**
   * Lookups that waited past the wait budget for a peer that had not answered but was still
   * sending bytes (slow, not gone: see lookupNarInfo).
   */
  narInfoSlowPeerWaits = 0
  /** NAR downloads started. */
  narDownloads = 0
  /** NAR downloads that delivered every byte with the right hash. */
  narCompleted = 0
  /** NAR downloads that threw: no peer could finish, too many bytes, wrong hash. */
  narFailed = 0
  /** Times a download moved to another peer mid-NAR. */
  narFailovers = 0
  /** NAR bytes received from peers and passed on (downloads and NARs sent with their narinfo). */
  narBytesIn = 0
  /** NARs Nix asked for that had been prefetched with their narinfo (nar-prefetch.ts). */
  narPrefetchHits = 0
  /** Verified NARs that came along with their narinfo (`/peerix/narinfo/1` r2). */
  narsInline = 0
  /** Narinfos of references looked up before Nix asked (narinfo-read-ahead.ts). */
  narInfoReadAheads = 0
  /** Narinfo requests from Nix for a path read ahead (answered from the cache or joining the lookup). */
  narInfoReadAheadHits = 0

  private readonly peers = new Map<string, PeerCounters>()

  /** The counters of one peer, created on first use. */
  peer (peer: string): PeerCounters {
    let counters = this.peers.get(peer)
    if (counters === undefined) {
      counters = { narInfosFound: 0, narInfosRejected: 0, errors: 0, narBytes: 0 }
      this.peers.set(peer, counters)
    }
    return counters
  }

  /** Every peer seen so far with its totals. */
  perPeer (): ReadonlyMap<string, Readonly<PeerCounters>> {
    return this.peers
  }
}
