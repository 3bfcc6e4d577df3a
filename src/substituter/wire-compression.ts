/**
 * When to ask a peer for a zstd-compressed NAR (protocols/peerix-nar-1.md, "Encodings"). zstd
 * pays on slow links and costs throughput on fast ones, where the CPU is the bottleneck
 * already, so `auto` asks only peers whose earlier NARs arrived slowly. The rate it remembers
 * is of wire bytes, compressed or not: what the link carried, so turning compression on does
 * not make the link look faster and turn it off again.
 */

export const WIRE_COMPRESSION_MODES = ['auto', 'zstd', 'off'] as const
/** `auto`: zstd from slow peers only; `zstd`: from every peer; `off`: never, either way. */
export type WireCompression = typeof WIRE_COMPRESSION_MODES[number]

/**
 * `auto` asks for zstd from peers whose bodies came at less than this many wire bytes per
 * second. bench/wire-compression.ts (README, "zstd on the wire"): zstd was faster at 40 and
 * 200 Mbit/s and slower without a limit; the crossover lies between 200 Mbit/s (~24 MiB/s)
 * and the shim's own uncompressed rate.
 */
export const AUTO_ZSTD_BELOW_BYTES_PER_SECOND = 32 * 1024 * 1024

/** A body shorter than this says more about latency and the window's growth than the link. */
export const MIN_SAMPLE_BYTES = 1024 * 1024

/** Peers whose rate is remembered; the least recently measured are forgotten first. */
export const MAX_REMEMBERED_PEERS = 1024

export class WireCompressionPolicy {
  readonly mode: WireCompression
  readonly #threshold: number
  /** Wire bytes per second per peer, most recently measured last. */
  readonly #rates = new Map<string, number>()

  constructor (mode: WireCompression, threshold = AUTO_ZSTD_BELOW_BYTES_PER_SECOND) {
    this.mode = mode
    this.#threshold = threshold
  }

  /** Whether to ask `peer` for a zstd body now. `auto` asks no peer it has not measured yet. */
  wants (peer: string): boolean {
    if (this.mode !== 'auto') return this.mode === 'zstd'
    const rate = this.#rates.get(peer)
    return rate !== undefined && rate < this.#threshold
  }

  /** The remembered rate of `peer` in wire bytes per second, if any. */
  rate (peer: string): number | undefined {
    return this.#rates.get(peer)
  }

  /**
   * A body from `peer` carried `wireBytes` in `ms` (first byte to last). Short bodies are
   * ignored; the others move the estimate halfway to what they measured, so one odd transfer
   * does not flip the choice and a link that changed is followed within a few.
   */
  observed (peer: string, wireBytes: number, ms: number): void {
    if (wireBytes < MIN_SAMPLE_BYTES) return
    const sample = wireBytes / Math.max(ms, 1) * 1000
    const before = this.#rates.get(peer)
    this.#rates.delete(peer)
    this.#rates.set(peer, before === undefined ? sample : (before + sample) / 2)
    for (const oldest of this.#rates.keys()) {
      if (this.#rates.size <= MAX_REMEMBERED_PEERS) break
      this.#rates.delete(oldest)
    }
  }
}
