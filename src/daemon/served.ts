/**
 * What this host gives its peers, seen from the daemon: one log line per NAR served, refusals
 * logged once per peer and path with the reason, and counters for /status and /metrics.
 * Served means delivered: the p2p services say what went out (NarBytes.sent,
 * ServedNarInfo.sent), and only that is counted, not what was handed to them to send.
 */
import { LogOnce } from '../log-once.js'
import { shortPeer, type Logger } from '../log.js'
import type { NarBytes, NarInfoOptions, PathSource, Served, ServedNarInfo } from '../store/source.js'

export class ServedCounters {
  /** Found narinfos whose answer went out in full. */
  narInfosServed = 0
  narInfosAbsent = 0
  /**
   * NARs that went out whole, to their last byte: streamed from byte 0, or sent with their
   * narinfo. One resumed from an offset (a peer that got its start elsewhere) adds its bytes
   * to narBytesOut, not a NAR here; one cut off midway adds the bytes that went out.
   */
  narsServed = 0
  /** NAR bytes that went out to peers (before compression). */
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
      const { nar, sent } = answer
      return {
        ...answer,
        sent: (withNar) => {
          sent?.(withNar)
          this.counters.narInfosServed++
          if (withNar && nar !== undefined) {
            this.counters.narsServed++
            this.counters.narBytesOut += nar.length
            this.log.info(`served ${hashPart} to ${shortPeer(peer)} with its narinfo: ${nar.length} bytes`)
          } else {
            this.log.debug(`narinfo ${hashPart} served to ${shortPeer(peer)}`)
          }
        }
      }
    }
    if (answer.status === 'absent') this.counters.narInfosAbsent++
    else this.refused(hashPart, peer, answer.reason)
    return answer
  }

  async nar (hashPart: string, narHash: string, offset: number, peer: string, signal?: AbortSignal): Promise<Served<NarBytes>> {
    const answer = await this.source.nar(hashPart, narHash, offset, peer, signal)
    if (answer.status === 'refused') this.refused(hashPart, peer, answer.reason)
    if (answer.status !== 'found') return answer
    return { status: 'found', value: this.serving(hashPart, peer, offset, answer.value) }
  }

  /** Logs a NAR handed out to be streamed; counts what of it goes out, as the service tells. */
  private serving (hashPart: string, peer: string, offset: number, nar: NarBytes): NarBytes {
    const from = offset > 0 ? ` from offset ${offset}` : ''
    this.log.info(`serving ${hashPart} to ${shortPeer(peer)}: ${nar.length} bytes${from}`)
    let out = 0
    return {
      ...nar,
      sent: (bytes, end) => {
        nar.sent?.(bytes, end)
        out += bytes
        this.counters.narBytesOut += bytes
        if (end === 'complete' && offset === 0) this.counters.narsServed++
        // At the level of the line that said it started: an operator reading one looks for the other.
        if (end === 'cut') this.log.info(`serving ${hashPart} to ${shortPeer(peer)}${from} stopped after ${out} of ${nar.length} bytes`)
      }
    }
  }

  private refused (hashPart: string, peer: string, reason: string): void {
    this.counters.refusals++
    this.refusalLog.line(`refused ${hashPart} to ${shortPeer(peer)}: ${reason}`)
  }
}
