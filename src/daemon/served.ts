/**
 * What this host gives its peers, seen from the daemon: one log line per NAR served, refusals
 * logged once per peer and path with the reason, and counters for /status and /metrics.
 */
import { LogOnce } from '../log-once.js'
import { shortPeer, type Logger } from '../log.js'
import type { NarBytes, NarInfoOptions, PathSource, Served, ServedNarInfo } from '../store/source.js'

export class ServedCounters {
  narInfosServed = 0
  narInfosAbsent = 0
  narsServed = 0
  narBytesOut = 0
  refusals = 0
}

/** Wraps the local store so every answer to a peer is logged and counted. */
export class ServedLog implements PathSource {
  readonly counters = new ServedCounters()
  private readonly refusalLog: LogOnce

  constructor (private readonly source: PathSource, private readonly log: Logger) {
    this.refusalLog = new LogOnce((line) => { log.info(line) })
  }

  async narInfo (hashPart: string, peer: string, options?: NarInfoOptions): Promise<ServedNarInfo> {
    const answer = await this.source.narInfo(hashPart, peer, options)
    if (answer.status === 'found') {
      this.counters.narInfosServed++
      this.log.debug(`narinfo ${hashPart} served to ${shortPeer(peer)}`)
      if (answer.nar !== undefined) return { ...answer, nar: this.serving(hashPart, peer, 0, answer.nar) }
    } else if (answer.status === 'absent') {
      this.counters.narInfosAbsent++
    } else {
      this.refused(hashPart, peer, answer.reason)
    }
    return answer
  }

  async nar (hashPart: string, narHash: string, offset: number, peer: string, signal?: AbortSignal): Promise<Served<NarBytes>> {
    const answer = await this.source.nar(hashPart, narHash, offset, peer, signal)
    if (answer.status === 'refused') this.refused(hashPart, peer, answer.reason)
    if (answer.status !== 'found') return answer
    return { status: 'found', value: this.serving(hashPart, peer, offset, answer.value) }
  }

  /** Logs and counts a NAR handed out, alone or with its narinfo; its bytes as they go. */
  private serving (hashPart: string, peer: string, offset: number, nar: NarBytes): NarBytes {
    this.log.info(`serving ${hashPart} to ${shortPeer(peer)}: ${nar.length} bytes${offset > 0 ? ` from offset ${offset}` : ''}`)
    this.counters.narsServed++
    return { length: nar.length, stream: this.count(nar.stream) }
  }

  private async * count (stream: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
    for await (const chunk of stream) {
      this.counters.narBytesOut += chunk.byteLength
      yield chunk
    }
  }

  private refused (hashPart: string, peer: string, reason: string): void {
    this.counters.refusals++
    this.refusalLog.line(`refused ${hashPart} to ${shortPeer(peer)}: ${reason}`)
  }
}
