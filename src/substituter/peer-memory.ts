/**
 * Which peers offered which NAR: filled by narinfo lookups, read by NAR downloads, so that
 * the NAR is asked of peers that said (with a verified narinfo) they have exactly those bytes.
 * Keyed by hash part and NarHash, not by hash part alone: two trusted builders may have
 * produced different bytes for the same path. Bounded: the oldest paths are forgotten first.
 */

export interface NarOffer {
  /** The NarSize of the verified narinfo: Content-Length, and the end of the download. */
  narSize: number
  /** Peers that offered it, in the order they answered. */
  peers: string[]
}

interface Entry {
  narSize: number
  peers: Set<string>
  /** Peers whose bytes for this NAR were wrong: never asked for it again. */
  bad: Set<string>
  /** When peers stalled this NAR: not asked for it again for a while (`stalledNar`). */
  stalled: Map<string, number>
}

export const DEFAULT_MEMORY_PATHS = 10_000
/**
 * How long a peer that stalled a NAR is asked for NARs after the others, and not asked for that
 * NAR at all.
 */
export const NAR_STALL_MEMORY_MS = 60_000

/**
 * How long a peer that a narinfo lookup waited for past the budget to the end of its patience,
 * in vain (bytes kept coming, no answer), is held to the plain budget.
 */
export const SLOW_PEER_MEMORY_MS = 60_000

export class PeerMemory {
  private readonly entries = new Map<string, Entry>()
  /** By hash part, the peers that sent wrong bytes for some NAR of it (oldest paths first). */
  private readonly badByPath = new Map<string, Set<string>>()
  /** When each peer last stalled a NAR download. */
  private readonly narStalledAt = new Map<string, number>()
  /** When each peer last used up a narinfo lookup's patience without answering (`outwaited`). */
  private readonly outwaitedAt = new Map<string, number>()
  /** Peers a NAR request waited for in vain, until seen connected again (`awaitedInVain`). */
  private readonly gone = new Set<string>()

  constructor (private readonly maxPaths = DEFAULT_MEMORY_PATHS) {}

  /** Records that `peer` offered the NAR (hashPart, narHash) of `narSize` bytes. */
  offered (hashPart: string, narHash: string, narSize: number, peer: string): void {
    const key = keyOf(hashPart, narHash)
    const entry = this.entries.get(key) ?? { narSize, peers: new Set(), bad: new Set(), stalled: new Map() }
    // A signed NarSize that differs for the same NarHash cannot be right; keep the first.
    if (entry.narSize !== narSize || entry.bad.has(peer)) return
    entry.peers.add(peer)
    this.entries.delete(key) // re-insert: most recently used last
    this.entries.set(key, entry)
    while (this.entries.size > this.maxPaths) {
      const oldest = this.entries.keys().next().value
      if (oldest === undefined) break
      this.entries.delete(oldest)
    }
  }

  /** Peers to ask for the NAR (none of them known bad), or undefined if none is known. */
  offer (hashPart: string, narHash: string): NarOffer | undefined {
    const entry = this.entries.get(keyOf(hashPart, narHash))
    if (entry === undefined || entry.peers.size === 0) return undefined
    return { narSize: entry.narSize, peers: [...entry.peers] }
  }

  /**
   * `peer` said it no longer has this NAR (or will not give it): not asked for it again until a
   * narinfo lookup finds it offered anew. Unlike `bad`, nothing is held against the peer.
   */
  withdraw (hashPart: string, narHash: string, peer: string): void {
    this.entries.get(keyOf(hashPart, narHash))?.peers.delete(peer)
  }

  /** Marks `peer` as having sent wrong bytes for this NAR: it is not offered again. */
  bad (hashPart: string, narHash: string, peer: string): void {
    const entry = this.entries.get(keyOf(hashPart, narHash))
    if (entry === undefined) return
    entry.peers.delete(peer)
    entry.bad.add(peer)
    const peers = this.badByPath.get(hashPart) ?? new Set()
    peers.add(peer)
    this.badByPath.set(hashPart, peers)
    while (this.badByPath.size > this.maxPaths) {
      const oldest = this.badByPath.keys().next().value
      if (oldest === undefined) break
      this.badByPath.delete(oldest)
    }
  }

  /**
   * True when `peer` sent wrong bytes for a NAR of this path, whatever its NarHash: it is not
   * asked for the path's NAR along with its narinfo (a narinfo does not say its NarHash before
   * it is answered).
   */
  badForPath (hashPart: string, peer: string): boolean {
    return this.badByPath.get(hashPart)?.has(peer) ?? false
  }

  /**
   * `peer` stalled a download of this NAR: for a while it is asked for NARs after the others,
   * so that a peer that answers narinfos but stalls NARs does not cost every NAR its stall
   * limit, and it is not asked for this NAR again (`stalledNar`). (Other failures cost no time
   * to find out, and wrong bytes make a peer bad for the path anyway.)
   */
  narStalled (hashPart: string, narHash: string, peer: string, now = Date.now()): void {
    for (const [p, at] of this.narStalledAt) if (now - at >= NAR_STALL_MEMORY_MS) this.narStalledAt.delete(p)
    this.narStalledAt.set(peer, now)
    const stalled = this.entries.get(keyOf(hashPart, narHash))?.stalled
    if (stalled === undefined) return
    for (const [p, at] of stalled) if (now - at >= NAR_STALL_MEMORY_MS) stalled.delete(p)
    stalled.set(peer, now)
  }

  /**
   * True when `peer` stalled this NAR in the last NAR_STALL_MEMORY_MS: the next download of it
   * does not ask that peer again. A small NAR's prefetch and then Nix's own request for it
   * would otherwise wait out the same peer's stall limit twice before Nix has its answer (the
   * NAR from another peer, or a 404). The peer may offer it anew meanwhile (a download that
   * runs out of peers asks for the narinfo again): that does not count, it stalled all the same.
   */
  stalledNar (hashPart: string, narHash: string, peer: string, now = Date.now()): boolean {
    const at = this.entries.get(keyOf(hashPart, narHash))?.stalled.get(peer)
    return at !== undefined && now - at < NAR_STALL_MEMORY_MS
  }

  /**
   * A narinfo lookup waited for `peer` past the budget, as it kept sending bytes, until its
   * patience ran out, and no answer came: for SLOW_PEER_MEMORY_MS lookups wait for it no longer
   * than the budget. A peer that keeps its connection busy but never answers (broken, or
   * hostile, its summary claiming every path) would otherwise cost every lookup the patience.
   */
  outwaited (peer: string, now = Date.now()): void {
    for (const [p, at] of this.outwaitedAt) if (now - at >= SLOW_PEER_MEMORY_MS) this.outwaitedAt.delete(p)
    this.outwaitedAt.set(peer, now)
  }

  /** Whether a narinfo lookup may wait for `peer` past the budget (see outwaited). */
  patientWith (peer: string, now = Date.now()): boolean {
    return now - (this.outwaitedAt.get(peer) ?? -Infinity) >= SLOW_PEER_MEMORY_MS
  }

  /** `peers` with those that stalled a NAR recently moved to the end, each group in its order. */
  byNarRecord (peers: string[], now = Date.now()): string[] {
    const stalled = (p: string): boolean => now - (this.narStalledAt.get(p) ?? -Infinity) < NAR_STALL_MEMORY_MS
    return [...peers.filter(p => !stalled(p)), ...peers.filter(stalled)]
  }

  /**
   * A NAR request waited the whole grace for `peers` to come back, in vain: gone for good, not
   * restarting. They are not waited for again until seen connected (`seen`), or every NAR they
   * offered (Nix keeps narinfos for a month and asks for the NARs directly) would wait it out.
   */
  awaitedInVain (peers: string[]): void {
    for (const peer of peers) this.gone.add(peer)
  }

  /** True when every one of `peers` was waited for in vain and not seen since. */
  allGone (peers: string[]): boolean {
    return peers.every(peer => this.gone.has(peer))
  }

  /** The peers connected now: any of them waited for in vain is back. */
  seen (connected: Set<string>): void {
    for (const peer of this.gone) if (connected.has(peer)) this.gone.delete(peer)
  }

  /** True when `peer` sent wrong bytes for this NAR before. */
  isBad (hashPart: string, narHash: string, peer: string): boolean {
    return this.entries.get(keyOf(hashPart, narHash))?.bad.has(peer) ?? false
  }
}

function keyOf (hashPart: string, narHash: string): string {
  return `${hashPart} ${narHash}`
}
