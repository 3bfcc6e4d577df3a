/**
 * What this host gave each peer, for the per-peer view of /status: a PathSource wrapper that
 * counts narinfos, refusals and NAR bytes by peer (ServedLog keeps the totals and the log).
 */
import type { NarBytes, NarInfoOptions, PathSource, Served, ServedNarInfo } from '../store/source.js'

export interface ServedToPeer {
  narInfos: number
  refusals: number
  narBytes: number
}

export class PeerTraffic implements PathSource {
  private readonly peers = new Map<string, ServedToPeer>()

  constructor (private readonly source: PathSource) {}

  /** What `peer` was given so far (zeros for a peer never served). */
  servedTo (peer: string): Readonly<ServedToPeer> {
    return this.peers.get(peer) ?? { narInfos: 0, refusals: 0, narBytes: 0 }
  }

  async narInfo (hashPart: string, peer: string, options?: NarInfoOptions): Promise<ServedNarInfo> {
    const answer = await this.source.narInfo(hashPart, peer, options)
    if (answer.status === 'refused') this.of(peer).refusals++
    if (answer.status !== 'found') return answer
    this.of(peer).narInfos++
    return answer.nar === undefined ? answer : { ...answer, nar: this.counted(peer, answer.nar) }
  }

  async nar (hashPart: string, narHash: string, offset: number, peer: string, signal?: AbortSignal): Promise<Served<NarBytes>> {
    const answer = await this.source.nar(hashPart, narHash, offset, peer, signal)
    if (answer.status === 'refused') this.of(peer).refusals++
    if (answer.status !== 'found') return answer
    return { status: 'found', value: this.counted(peer, answer.value) }
  }

  /** `nar`, its bytes counted for `peer` as they go out. */
  private counted (peer: string, nar: NarBytes): NarBytes {
    return { length: nar.length, stream: this.count(peer, nar.stream) }
  }

  private async * count (peer: string, stream: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
    const counters = this.of(peer)
    for await (const chunk of stream) {
      counters.narBytes += chunk.byteLength
      yield chunk
    }
  }

  private of (peer: string): ServedToPeer {
    let counters = this.peers.get(peer)
    if (counters === undefined) {
      counters = { narInfos: 0, refusals: 0, narBytes: 0 }
      this.peers.set(peer, counters)
    }
    return counters
  }
}
