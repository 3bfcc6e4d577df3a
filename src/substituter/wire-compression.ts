/**
 * When to ask a peer for a zstd-compressed NAR (protocols/peerix-nar-1.md, "Encodings"). zstd
 * pays on slow links and costs throughput on fast ones, where the CPU is the bottleneck
 * already, so `auto` asks only peers whose link measured slow. Only uncompressed bodies
 * measure the link: a compressed one runs at the link's pace or the compressor's, and which
 * of the two cannot be told from its rate. So a peer that gets asked for zstd still sends one
 * large NAR in PROBE_EVERY uncompressed, which notices a link that got faster. The rate is the
 * link's as the download sees it: bytes over the time spent waiting for them, not the time Nix
 * took to read them (a busy or slow consumer says nothing about the link).
 */

export const WIRE_COMPRESSION_MODES = ['auto', 'zstd', 'off'] as const
/** `auto`: zstd from slow peers only; `zstd`: from every peer; `off`: never, either way. */
export type WireCompression = typeof WIRE_COMPRESSION_MODES[number]

/**
 * `auto` asks for zstd from peers whose uncompressed bodies came at less than this many bytes
 * per second. bench/wire-compression.ts (README, "zstd on the wire"), a 119 MiB NAR of real
 * files, uncompressed → zstd: 40 Mbit/s 4.5 → 11.6 MiB/s, 200 Mbit/s 22.8 → 56, 400 Mbit/s
 * 45 → 52–79, 1 Gbit/s 97 → 76–80 (zstd's ceiling on those 2 shared cores: 68–80). Just
 * above the 400 Mbit/s figure, well below the gigabit one, with room for slower CPUs.
 */
export const AUTO_ZSTD_BELOW_BYTES_PER_SECOND = 48 * 1024 * 1024

/**
 * A body shorter than this says more about latency, the window's growth and a busy CPU than
 * the link. At 1 MiB, a `nix copy` of 125 paths over loopback (120 leaves of 1.2–12 MB, the
 * closure `npx tsx bench/closure-timeline.ts 120` builds) had 15 of its NARs asked as zstd: a
 * 1.2 MB body that takes more than 25 ms measures below 48 MiB/s, and with Nix and two daemons
 * on two cores some did; zstd on random bytes then cost CPU for nothing. At 8 MiB none was,
 * and a 40 Mbit/s link still measures within two seconds.
 */
export const MIN_SAMPLE_BYTES = 8 * 1024 * 1024

/**
 * A compressing peer sends every this-many-th NAR of at least MIN_SAMPLE_BYTES uncompressed,
 * to measure its link again: on a slow link that costs about a tenth of zstd's gain.
 */
export const PROBE_EVERY = 16

/** Peers whose rate is remembered; the least recently measured are forgotten first. */
export const MAX_REMEMBERED_PEERS = 1024

interface Link {
  /** Bytes per second of uncompressed bodies. */
  rate: number
  /** Large NARs asked compressed since the last uncompressed one. */
  compressed: number
}

export class WireCompressionPolicy {
  readonly mode: WireCompression
  readonly #threshold: number
  /** Per peer, most recently measured last. */
  readonly #links = new Map<string, Link>()

  constructor (mode: WireCompression, threshold = AUTO_ZSTD_BELOW_BYTES_PER_SECOND) {
    this.mode = mode
    this.#threshold = threshold
  }

  /**
   * Whether to ask `peer` for zstd for a body of `bytes`. `auto` asks no peer it has not
   * measured, and none for a NAR that is due to measure it again.
   */
  wants (peer: string, bytes: number): boolean {
    if (this.mode !== 'auto') return this.mode === 'zstd'
    const link = this.#links.get(peer)
    if (link === undefined || link.rate >= this.#threshold) return false
    if (bytes < MIN_SAMPLE_BYTES) return true
    link.compressed += 1
    if (link.compressed < PROBE_EVERY) return true
    link.compressed = 0
    return false
  }

  /** The measured rate of `peer`'s link in bytes per second, if any. */
  rate (peer: string): number | undefined {
    return this.#links.get(peer)?.rate
  }

  /**
   * An uncompressed body from `peer` carried `bytes` in `ms` (first byte to last). Short
   * bodies are ignored; the others move the estimate halfway to what they measured, so one
   * odd transfer does not flip the choice and a link that changed is followed within a few.
   */
  observed (peer: string, bytes: number, ms: number): void {
    if (bytes < MIN_SAMPLE_BYTES) return
    const sample = bytes / Math.max(ms, 1) * 1000
    const link = this.#links.get(peer)
    this.#links.delete(peer)
    this.#links.set(peer, { rate: link === undefined ? sample : (link.rate + sample) / 2, compressed: link?.compressed ?? 0 })
    for (const oldest of this.#links.keys()) {
      if (this.#links.size <= MAX_REMEMBERED_PEERS) break
      this.#links.delete(oldest)
    }
  }
}
