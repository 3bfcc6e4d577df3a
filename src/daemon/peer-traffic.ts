/**
 * What this host gave each peer, for the per-peer view of /status: a PathSource wrapper that
 * counts narinfos, refusals and NAR bytes by peer (ServedLog keeps the totals and the log).
 * Narinfos and bytes are counted as the p2p services report them delivered, as ServedLog's.
 */
import type { NarBytes, NarInfoOptions, PathSource, Served, ServedNarInfo } from '../store/source.js'

export interface ServedToPeer {
  /** Found narinfos whose answer went out in full. */
  narInfos: number
  refusals: number
  /** NAR bytes that went out, with narinfos or streamed, whole or not. */
  narBytes: number
}

/**
 * Peers whose figures are kept: any host on the LAN can connect with a new peer ID each time, and
 * a map that kept every one would grow without end. The least recently served go first.
 */
export const MAX_PEERS_COUNTED = 10_000

export class PeerTraffic implements PathSource {
  /** In order of last use, the least recent first. */
  private readonly peers = new Map<string, ServedToPeer>()

  constructor (private readonly source: PathSource, private readonly maxPeers = MAX_PEERS_COUNTED) {}

  /** What `peer` was given so far (zeros for a peer never served). */
  servedTo (peer: string): Readonly<ServedToPeer> {
    return this.peers.get(peer) ?? { narInfos: 0, refusals: 0, narBytes: 0 }
  }

  async narInfo (hashPart: string, peer: string, options?: NarInfoOptions): Promise<ServedNarInfo> {
    const answer = await this.source.narInfo(hashPart, peer, options)
    if (answer.status === 'refused') this.of(peer).refusals++
    if (answer.status !== 'found') return answer
    const { nar, sent } = answer
    return {
      ...answer,
      sent: (withNar) => {
        sent?.(withNar)
        const counters = this.of(peer)
        counters.narInfos++
        if (withNar && nar !== undefined) counters.narBytes += nar.length
      }
    }
  }

  async nar (hashPart: string, narHash: string, offset: number, peer: string, signal?: AbortSignal): Promise<Served<NarBytes>> {
    const answer = await this.source.nar(hashPart, narHash, offset, peer, signal)
    if (answer.status === 'refused') this.of(peer).refusals++
    if (answer.status !== 'found') return answer
    const nar = answer.value
    return {
      status: 'found',
      value: {
        ...nar,
        sent: (bytes, end) => {
          nar.sent?.(bytes, end)
          this.of(peer).narBytes += bytes
        }
      }
    }
  }

  private of (peer: string): ServedToPeer {
    const counters = this.peers.get(peer) ?? { narInfos: 0, refusals: 0, narBytes: 0 }
    this.peers.delete(peer)
    this.peers.set(peer, counters)
    if (this.peers.size > this.maxPeers) {
      const leastRecent = this.peers.keys().next().value
      if (leastRecent !== undefined) this.peers.delete(leastRecent)
    }
    return counters
  }
}
