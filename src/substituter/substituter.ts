/**
 * The client side of peerix: what the HTTP shim asks for, answered from peers. A narinfo is
 * the first one any peer sends that verifies against the trusted keys; a NAR streams from the
 * peers that offered it, hashed as it goes, with failover mid-stream.
 */
import type { PeerClient } from '../p2p/peer-client.js'
import type { NarInfo } from '../nix/narinfo.js'
import { toNarHash } from '../nix/hash.js'
import { parseHashPart } from '../nix/store-path.js'
import type { TrustedKeys } from '../nix/signing.js'
import { verifyNarInfo } from '../nix/narinfo-signing.js'
import type { Served } from '../store/source.js'
import { shortPeer, type SubstituterContext } from './context.js'
import { SubstituterCounters } from './counters.js'
import { LogOnce } from '../log-once.js'
import { downloadNar, NarDownloadError, type Transfer } from './nar-download.js'
import { NarPrefetcher, type PrefetchLimits } from './nar-prefetch.js'
import { lookupNarInfo, type InlineNarOptions } from './narinfo-race.js'
import { NarInfoReadAhead, type ReadAheadLimits } from './narinfo-read-ahead.js'
import { PeerMemory, type NarOffer } from './peer-memory.js'
import { PeerSetSettling } from './peer-set-settling.js'
import { servedNarInfo } from './verify.js'
import { NarInfoCache } from './narinfo-cache.js'
import { WireCompressionPolicy, type WireCompression } from './wire-compression.js'

/**
 * How long a NAR download waits for a peer's next bytes before moving on. Long enough for a
 * busy peer reading a cold disk, short enough that Nix does not give up on us first.
 */
export const DEFAULT_STALL_MS = 20_000

/**
 * Of how many of the peers a lookup asks (the first ones) a small NAR is asked along with its
 * narinfo. Every peer that has the path sends it, so more would multiply the bytes; with two, one
 * slow or wrong peer does not leave the NAR to a second round trip.
 */
export const INLINE_NAR_PEERS = 2

/**
 * How long a daemon that just started waits for its peers before it answers "absent" (see
 * PeerSetSettling). Until then it cannot know: Nix keeps a narinfo 404 for an hour, and
 * gives up a NAR it was resuming after a restart of this daemon on one 404. Static peers and
 * mDNS find peers within a second or two on a LAN.
 */
export const STARTUP_GRACE_MS = 5_000

/**
 * Within the startup grace, how long the set of peers must stay the same before lookups start:
 * the first peer to connect is not the only one (static peers are dialled together, mDNS
 * answers come together, within a few hundred milliseconds), and a path only a later peer has
 * would get a 404 that Nix keeps for an hour.
 */
export const PEER_SETTLE_MS = 500

/**
 * How long a NAR request waits for a peer that offered the NAR and is not connected now: one
 * restarting mid-transfer is back within a second or two, and Nix, resuming at once, gives
 * the NAR up on one 404 (`nix copy` and `nix-store --realise` then fail).
 */
export const NAR_PEER_GRACE_MS = 5_000

/**
 * How long a NAR download that failed before its first byte waits to see whether a peer that
 * offered it left: its stream can break a moment before its connection is known to be gone.
 */
export const LEAVE_NOTICE_MS = 500

/**
 * How long in all a narinfo lookup waits for a peer whose summary may hold the path and that is
 * slow, not gone: it keeps sending bytes, but its answer is late (a lossy Wi-Fi link, a busy
 * host). Told "absent", Nix builds the path, or fails a build that had planned to substitute
 * it. A peer's answer takes at most 10 s anyway (the /peerix/narinfo/1 query timeout).
 */
export const SLOW_PEER_PATIENCE_MS = 10_000

/** Why a lookup of Nix on another host is refused a path a peer has (see Substituter.lookup). */
export const NOT_PUBLIC = 'no public cache signed it'

/** What peers' summaries say (the /peerix/index/1 service): false rules a peer out for a path. */
export interface PeerIndexView {
  /** For one hash part, whether a peer's summary may hold it (FormatError for a bad hash part). */
  holders: (hashPart: string) => (peer: string) => boolean
  /** Peers that left a moment ago whose last summary held it (restarting, maybe). */
  departedHolders?: (hashPart: string) => string[]
}

export interface SubstituterOptions {
  client: PeerClient
  /** Without one every peer is asked for every path. */
  index?: PeerIndexView
  trusted: TrustedKeys
  /** The wait budget of a narinfo lookup for peers that do not answer. */
  timeoutMs: number
  /** How long in all a lookup waits for a slow peer that may have the path (SLOW_PEER_PATIENCE_MS). */
  patienceMs?: number
  /**
   * From now, how long to wait for peers before answering absent (default 0): until one is
   * connected and no other has connected for `peerSettleMs`, or this is over.
   */
  startupGraceMs?: number
  /** PEER_SETTLE_MS by default. */
  peerSettleMs?: number
  /** How long a NAR request waits for a peer that offered it to come back (NAR_PEER_GRACE_MS). */
  narPeerGraceMs?: number
  stallMs?: number
  log?: (line: string) => void
  /** Shared with whoever shows them (/status, /metrics); a fresh set by default. */
  counters?: SubstituterCounters
  memory?: PeerMemory
  /** When to ask peers for zstd-compressed NARs (default `auto`: slow peers, and gigabit ones while zstd comes faster). */
  wireCompression?: WireCompression | WireCompressionPolicy
  /** How long a verified narinfo answers repeated requests (Nix asks several times per path). */
  narInfoCacheMs?: number
  /** Which NARs to fetch with their narinfo (nar-prefetch.ts); `false`: none. */
  prefetch?: Partial<PrefetchLimits> | false
  /**
   * Whether peers are asked to send a small NAR in their narinfo answer (default true), to be
   * held as prefetched; else it is prefetched over /peerix/nar/1, as from peers of r1.
   */
  inlineNars?: boolean
  /** How to look up references' narinfos before Nix asks (narinfo-read-ahead.ts); `false`: not at all. */
  readAhead?: Partial<ReadAheadLimits> | false
  /** Whether a path (by hash part) is valid in this host's store: Nix will not ask for it. */
  isLocal?: (hashPart: string) => boolean
}

export interface NarDownload {
  /** The NAR's size from the verified narinfo: the whole stream is exactly this long. */
  narSize: number
  /**
   * The NAR's bytes. Nothing is asked of any peer until this is iterated; it throws rather
   * than end short or with bytes that do not hash to the NarHash asked for.
   */
  stream: AsyncIterable<Uint8Array>
}

export class Substituter {
  readonly counters: SubstituterCounters
  private readonly ctx: SubstituterContext
  private readonly active = new Set<Transfer>()
  private readonly index?: PeerIndexView
  private readonly cache: NarInfoCache
  private readonly startup?: PeerSetSettling
  private readonly narPeerGraceMs: number
  private readonly prefetcher?: NarPrefetcher
  private readonly inlineNars: boolean
  private readonly readAhead?: NarInfoReadAhead

  constructor (opts: SubstituterOptions) {
    const log = opts.log ?? (() => {})
    this.counters = opts.counters ?? new SubstituterCounters()
    this.index = opts.index
    this.cache = new NarInfoCache(opts.narInfoCacheMs)
    if ((opts.startupGraceMs ?? 0) > 0) this.startup = new PeerSetSettling(() => opts.client.peers().length, opts.startupGraceMs ?? 0, opts.peerSettleMs ?? PEER_SETTLE_MS)
    this.narPeerGraceMs = opts.narPeerGraceMs ?? NAR_PEER_GRACE_MS
    this.ctx = {
      client: opts.client,
      trusted: opts.trusted,
      memory: opts.memory ?? new PeerMemory(),
      compression: opts.wireCompression instanceof WireCompressionPolicy ? opts.wireCompression : new WireCompressionPolicy(opts.wireCompression ?? 'auto'),
      counters: this.counters,
      log,
      logOnce: new LogOnce(log),
      timeoutMs: opts.timeoutMs,
      patienceMs: Math.max(opts.timeoutMs, opts.patienceMs ?? SLOW_PEER_PATIENCE_MS),
      stallMs: opts.stallMs ?? DEFAULT_STALL_MS
    }
    const isLocal = opts.isLocal ?? (() => false)
    if (opts.readAhead !== false) {
      this.readAhead = new NarInfoReadAhead(
        async (hashPart) => {
          this.counters.narInfoReadAheads += 1
          return await this.cachedNarInfo(hashPart)
        },
        // the store lookup last: it is a database query, the others are in memory
        hashPart => !this.cache.covers(hashPart) && this.anyPeerMayHave(hashPart) && !isLocal(hashPart),
        opts.readAhead
      )
    }
    this.inlineNars = opts.inlineNars ?? true
    if (opts.prefetch !== false) this.prefetcher = new NarPrefetcher(async (hashPart, narHash, narSize, signal) => await this.wholeNar(hashPart, narHash, narSize, signal), opts.prefetch)
  }

  /** Stops the prefetches running and drops what they fetched; reads nothing more ahead. */
  stop (): void {
    this.prefetcher?.stop()
    this.readAhead?.stop()
    this.startup?.stop()
  }

  /**
   * The narinfo to give Nix for a store hash part, or undefined when no peer has it (all said
   * so, or the wait budget ran out). Its URL names the NAR by hash part and NarHash, so it
   * stays valid across restarts and peer changes. Throws FormatError for a bad hash part.
   */
  async narInfo (hashPart: string, signal?: AbortSignal): Promise<NarInfo | undefined> {
    const answer = await this.lookup(hashPart, { signal })
    return answer.status === 'found' ? answer.value : undefined
  }

  /**
   * narInfo as one of Nix's lookups, counted as a hit, a miss or a refusal. With `publicKeys`
   * it is Nix on another host asking (the shim serving the LAN), which gets only what one of
   * them signed: a path a peer has that none of them signed is refused, counted as that
   * (narInfoRefusals), not as a hit, and nothing is prefetched or read ahead for it.
   */
  async lookup (hashPart: string, opts: { signal?: AbortSignal, publicKeys?: TrustedKeys } = {}): Promise<Served<NarInfo>> {
    const { signal, publicKeys } = opts
    parseHashPart(hashPart)
    this.counters.narInfoRequests += 1
    if (this.readAhead?.asked(hashPart) === true) this.counters.narInfoReadAheadHits += 1
    const info = await this.verifiedNarInfo(hashPart, signal)
    if (info === undefined) {
      // A miss is "no peer has it": Nix leaving before the answer tells nothing about the peers.
      if (signal?.aborted !== true) this.counters.narInfoMisses += 1
      return { status: 'absent' }
    }
    if (publicKeys !== undefined && verifyNarInfo(info, publicKeys) === undefined) {
      this.counters.narInfoRefusals += 1
      return { status: 'refused', reason: NOT_PUBLIC }
    }
    this.counters.narInfoHits += 1
    this.prefetcher?.offer(hashPart, info.narHash, info.narSize)
    this.readAhead?.follow(info)
    return { status: 'found', value: servedNarInfo(info) }
  }

  /**
   * Whether Nix on another host may have the NAR of (hashPart, narHash): a peer has the path
   * with that NarHash, signed by one of `publicKeys` (see lookup). Not one of Nix's narinfo
   * lookups: it counts none.
   */
  async isPublicNar (hashPart: string, narHash: string, publicKeys: TrustedKeys, signal?: AbortSignal): Promise<boolean> {
    parseHashPart(hashPart)
    const info = await this.verifiedNarInfo(hashPart, signal)
    return info !== undefined && toNarHash(info.narHash) === toNarHash(narHash) && verifyNarInfo(info, publicKeys) !== undefined
  }

  /** The verified narinfo a peer has for `hashPart`, or undefined when none has it. */
  private async verifiedNarInfo (hashPart: string, signal?: AbortSignal): Promise<NarInfo | undefined> {
    await this.startup?.settled(signal)
    // Most of what Nix asks for is on no peer, and the peers' summaries say so: answer at
    // once, without the machinery of a lookup (the shim's CPU per miss was 2.6–3.3 × that of
    // an HTTP server doing nothing; see src/http/server.ts for the rest).
    if (!this.cache.has(hashPart) && !this.anyPeerMayHave(hashPart) && !await this.departedHolderBack(hashPart, signal)) return undefined
    const info = await this.cachedNarInfo(hashPart, signal)
    // No peer connected now has it: the one whose answer was cached may be restarting.
    if (info !== undefined || signal?.aborted === true || !await this.departedHolderBack(hashPart, signal)) return info
    return await this.cachedNarInfo(hashPart, signal)
  }

  /**
   * Whether a peer that left a moment ago and had `hashPart` (its last summary said so) is
   * connected again, waited for up to the NAR peer grace: a daemon restarting is back within
   * seconds, and Nix, told "absent", builds the path, or fails the build when it had already
   * planned to substitute it. A peer waited for in vain is not waited for again until seen.
   */
  private async departedHolderBack (hashPart: string, signal?: AbortSignal): Promise<boolean> {
    const away = this.index?.departedHolders?.(hashPart) ?? []
    if (away.length === 0) return false
    await this.untilConnected(away, Date.now() + this.narPeerGraceMs, signal)
    return signal?.aborted !== true && this.anyPeerMayHave(hashPart)
  }

  /**
   * The verified narinfo from the cache, or looked up (and cached) now. When the lookup finds
   * nothing because a peer that offered this very narinfo before did not answer (it is still
   * connected, but its link is congested, lossy or was down a moment: its answer is late, or
   * its connection was cut), that earlier answer is given again: the peer did not say it lost
   * the path, and Nix, which may have planned on it, fails the build on a 404
   * (`some substitutes … failed`). A peer that answers "absent" is believed.
   */
  private async cachedNarInfo (hashPart: string, signal?: AbortSignal): Promise<NarInfo | undefined> {
    return await this.cache.get(
      hashPart,
      // A cached answer stands while a peer that offered it is still connected.
      cached => this.connectedOffer(hashPart, cached.narHash) !== undefined,
      async (lookupSignal, expired) => {
        const unanswered = new Set<string>()
        // With an earlier answer of a peer still connected to fall back on, a slow peer is not
        // waited for past the budget: that answer is as good, and Nix has it sooner.
        const patient = expired === undefined || this.connectedOffer(hashPart, expired.narHash) === undefined
        const found = await lookupNarInfo(this.ctx, hashPart, { signal: lookupSignal, mayHave: this.mayHave(hashPart), inlineNar: this.inlineNar(hashPart), onUnanswered: peer => unanswered.add(peer), patient })
        if (found !== undefined || expired === undefined || lookupSignal.aborted) return found?.info
        const peer = this.connectedOffer(hashPart, expired.narHash)?.peers.find(p => unanswered.has(p))
        if (peer === undefined) return undefined
        this.counters.narInfoKeptUnanswered += 1
        this.ctx.logOnce.line(`narinfo ${hashPart}: peer ${shortPeer(peer)}, which offered it, did not answer; its earlier answer stands`)
        return expired
      },
      signal
    )
  }

  /**
   * The NAR of (hashPart, narHash), or undefined when no peer offers those bytes. Peers are
   * the ones a narinfo lookup found with that NarHash; when there were none (Nix cached the
   * narinfo, this daemon restarted), peers are asked for their narinfo first.
   */
  async nar (hashPart: string, narHash: string, signal?: AbortSignal): Promise<NarDownload | undefined> {
    parseHashPart(hashPart)
    const hash = toNarHash(narHash)
    // A prefetch that fails leaves Nix's request to the peers, which may answer 404 as usual.
    const prefetched = await this.prefetcher?.ready(hashPart, hash, signal)
    if (prefetched !== undefined) return { narSize: prefetched, stream: this.track({ hashPart, narHash: hash, narSize: prefetched, received: 0 }, signal) }
    await this.startup?.settled(signal)
    let offer = this.connectedOffer(hashPart, hash)
    if (offer === undefined) {
      // A small NAR comes with the answer, and the download below takes it from the prefetcher.
      await lookupNarInfo(this.ctx, hashPart, { signal, wanted: info => info.narHash === hash, mayHave: this.mayHave(hashPart), inlineNar: this.inlineNar(hashPart) })
      offer = this.connectedOffer(hashPart, hash)
    }
    const holders = offer === undefined ? this.ctx.memory.offer(hashPart, hash)?.peers : undefined
    if (holders !== undefined) {
      await this.untilConnected(holders, Date.now() + this.narPeerGraceMs, signal)
      offer = this.connectedOffer(hashPart, hash)
    }
    if (offer === undefined) return undefined
    const { narSize } = offer
    return { narSize, stream: this.track({ hashPart, narHash: hash, narSize, received: 0 }, signal) }
  }

  /**
   * Returns once one of `peers` is connected, or at `deadline`, or when `signal` aborts; at
   * once when all of them were waited for in vain before (PeerMemory.awaitedInVain).
   */
  private async untilConnected (peers: string[], deadline: number, signal?: AbortSignal): Promise<void> {
    const connected = (): boolean => this.ctx.client.peers().some(p => peers.includes(p))
    this.ctx.memory.seen(new Set(this.ctx.client.peers()))
    if (this.ctx.memory.allGone(peers)) return
    while (Date.now() < deadline && signal?.aborted !== true && !connected()) {
      await new Promise(resolve => setTimeout(resolve, 50))
    }
    if (signal?.aborted !== true && !connected()) this.ctx.memory.awaitedInVain(peers)
  }

  /** The NAR downloads in progress. */
  transfers (): Transfer[] {
    return [...this.active].map(t => ({ ...t }))
  }

  /**
   * Small NARs asked for with their narinfo, kept as prefetched ones: of the first two peers
   * asked (each that has the path sends it), while the prefetch has room.
   */
  private inlineNar (hashPart: string): InlineNarOptions | undefined {
    const prefetcher = this.prefetcher
    const maxBytes = prefetcher?.roomFor() ?? 0
    if (prefetcher === undefined || maxBytes === 0 || !this.inlineNars) return undefined
    return {
      maxBytes,
      peers: INLINE_NAR_PEERS,
      take: (info, nar) => prefetcher.hold(hashPart, info.narHash, nar)
    }
  }

  /** Whether a lookup would ask anyone: a connected peer whose summary may hold `hashPart`. */
  private anyPeerMayHave (hashPart: string): boolean {
    const peers = this.ctx.client.peers()
    const index = this.index
    return index === undefined ? peers.length > 0 : peers.some(index.holders(hashPart))
  }

  /** Which peers' summaries may hold `hashPart`; undefined without an index (ask everyone). */
  private mayHave (hashPart: string): ((peer: string) => boolean) | undefined {
    const index = this.index
    return index?.holders(hashPart)
  }

  /** The remembered offer of this NAR, if one of the peers that made it is still connected. */
  private connectedOffer (hashPart: string, narHash: string): NarOffer | undefined {
    const offer = this.ctx.memory.offer(hashPart, narHash)
    const connected = new Set(this.ctx.client.peers())
    this.ctx.memory.seen(connected)
    return offer?.peers.some(peer => connected.has(peer)) === true ? offer : undefined
  }

  /**
   * The NAR for Nix: from memory when it was prefetched (taken only now, so that a HEAD
   * request leaves it for the GET), else downloaded from the peers.
   */
  private async * track (transfer: Transfer, signal?: AbortSignal): AsyncGenerator<Uint8Array> {
    this.active.add(transfer)
    try {
      const prefetched = await this.prefetcher?.take(transfer.hashPart, transfer.narHash)
      if (prefetched !== undefined) {
        this.counters.narPrefetchHits += 1
        transfer.received = prefetched.byteLength
        yield prefetched
        return
      }
      try {
        yield * downloadNar(this.ctx, { ...transfer, signal, transfer, mayHave: this.mayHave(transfer.hashPart) })
        return
      } catch (err) {
        // Bytes went to Nix: the connection is cut, and Nix resumes, which waits in nar().
        if (transfer.received > 0 || signal?.aborted === true || !(err instanceof NarDownloadError)) throw err
        // None did: the shim answers 404, which Nix does not retry (it builds the path, or
        // fails). When the peers that offered the NAR failed because they left (a daemon
        // restarting), one back within the grace gets the download started again, once; so
        // does one whose stream broke while it stayed connected.
        const holders = this.ctx.memory.offer(transfer.hashPart, transfer.narHash)?.peers ?? []
        if (!await this.untilBack(transfer.hashPart, transfer.narHash, holders, signal)) throw err
        this.ctx.log(`nar ${transfer.hashPart}: a peer that offered it is connected: starting again`)
      }
      yield * downloadNar(this.ctx, { ...transfer, signal, transfer, mayHave: this.mayHave(transfer.hashPart) })
    } finally {
      this.active.delete(transfer)
    }
  }

  /**
   * After a download failed before its first byte: whether to start it again. Of `peers`,
   * those that offered the NAR and neither stalled it nor sent wrong bytes count: true once
   * one that left is connected again, within the NAR peer grace; false at once when all were
   * waited for in vain before. True also after LEAVE_NOTICE_MS when none of them left: their
   * streams broke (a reset, one of two connections closed) while they stayed connected, and
   * none said it lacks the NAR; one more try costs a round trip where a 404 fails Nix's build
   * (seen after a 12 s link outage: the peer had reset a NAR stream whose request came late).
   */
  private async untilBack (hashPart: string, narHash: string, peers: string[], signal?: AbortSignal): Promise<boolean> {
    const { memory, client } = this.ctx
    const candidates = peers.filter(peer => !memory.stalledNar(hashPart, narHash, peer) && !memory.isBad(hashPart, narHash, peer))
    if (candidates.length === 0 || memory.allGone(candidates)) return false
    const began = Date.now()
    const left = new Set<string>()
    while (signal?.aborted !== true && Date.now() - began < this.narPeerGraceMs) {
      const connected = new Set(client.peers())
      for (const peer of candidates) if (!connected.has(peer)) left.add(peer)
      if ([...left].some(peer => connected.has(peer))) return true
      // none left: their streams broke with the peers still connected (see above)
      if (left.size === 0 && Date.now() - began >= LEAVE_NOTICE_MS) return true
      await new Promise(resolve => setTimeout(resolve, 50))
    }
    if (signal?.aborted !== true && left.size > 0) memory.awaitedInVain([...left])
    return false
  }

  /** A whole NAR, verified, from the peers that offered it (for the prefetcher). */
  private async wholeNar (hashPart: string, narHash: string, narSize: number, signal: AbortSignal): Promise<Uint8Array> {
    const chunks: Uint8Array[] = []
    const transfer: Transfer = { hashPart, narHash, narSize, received: 0 }
    for await (const chunk of downloadNar(this.ctx, { hashPart, narHash, narSize, signal, transfer, mayHave: this.mayHave(hashPart) })) chunks.push(chunk)
    return chunks.length === 1 ? chunks[0] : Buffer.concat(chunks)
  }
}

