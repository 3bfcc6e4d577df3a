/**
 * Round-trip times to peers for /status, measured with libp2p's ping protocol. Refreshed when
 * /status is asked for and the last figure is stale, all peers at once with a short timeout,
 * so a page that polls every few seconds pings each peer at most once per `maxAgeMs` and a
 * frozen peer never holds the answer up for long.
 */
import type { PeerId } from '@libp2p/interface'

export interface Pinger {
  ping: (peer: PeerId, options: { signal: AbortSignal }) => Promise<number>
}

export interface Latency {
  /** Round trip in milliseconds; null when the last ping failed. */
  ms: number | null
  /** When it was measured (ms since the epoch). */
  at: number
}

export const DEFAULT_MAX_AGE_MS = 10_000
export const DEFAULT_PING_TIMEOUT_MS = 1_000

export class PeerLatency {
  private readonly latest = new Map<string, Latency>()
  private readonly pending = new Map<string, Promise<void>>()

  constructor (
    private readonly pinger: Pinger,
    private readonly maxAgeMs = DEFAULT_MAX_AGE_MS,
    private readonly timeoutMs = DEFAULT_PING_TIMEOUT_MS
  ) {}

  /** The last figure for `peer`, if any. */
  of (peer: string): Latency | undefined {
    return this.latest.get(peer)
  }

  /** Pings the peers whose figure is missing or stale; resolves when all have answered or timed out. */
  async refresh (peers: PeerId[]): Promise<void> {
    const now = Date.now()
    for (const key of this.latest.keys()) {
      if (!peers.some(p => p.toString() === key)) this.latest.delete(key)
    }
    await Promise.all(peers.map(async peer => {
      const key = peer.toString()
      const last = this.latest.get(key)
      if (last !== undefined && now - last.at < this.maxAgeMs) return
      await this.ping(peer, key)
    }))
  }

  /** One ping per peer at a time: concurrent refreshes share it. */
  private async ping (peer: PeerId, key: string): Promise<void> {
    let running = this.pending.get(key)
    if (running === undefined) {
      running = this.pinger.ping(peer, { signal: AbortSignal.timeout(this.timeoutMs) })
        .then(ms => { this.latest.set(key, { ms, at: Date.now() }) })
        .catch(() => { this.latest.set(key, { ms: null, at: Date.now() }) })
        .finally(() => { this.pending.delete(key) })
      this.pending.set(key, running)
    }
    await running
  }
}
