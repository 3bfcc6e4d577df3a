/**
 * When to ask a peer for a zstd-compressed NAR (protocols/peerix-nar-1.md, "Encodings"). zstd
 * pays on slow links and costs throughput where the CPU is the bottleneck already; between
 * the two it depends on both hosts' CPUs. So `auto` measures: uncompressed bodies give the
 * link's rate, compressed ones their own (NAR bytes per second, decompression included). A
 * slow link gets zstd outright; a link of up to about gigabit speed gets it while compressed
 * bodies come faster than uncompressed ones did; a faster link never. Whichever way a peer is
 * asked, one large NAR in PROBE_EVERY goes the other way to measure that again. A rate is the
 * body's as the download sees it: bytes over the time spent waiting for them, not the time
 * Nix took to read them (a busy or slow consumer says nothing about the link).
 */

export const WIRE_COMPRESSION_MODES = ['auto', 'zstd', 'off'] as const
/** `auto`: zstd from slow peers, and up to gigabit while it comes faster; `zstd`: from every peer; `off`: never, either way. */
export type WireCompression = typeof WIRE_COMPRESSION_MODES[number]

/**
 * `auto` asks for zstd from peers whose uncompressed bodies came at less than this many bytes
 * per second. bench/wire-compression.ts (README, "zstd on the wire"), a 119 MiB NAR of real
 * files, uncompressed → zstd: 40 Mbit/s 4.5 → 11.6 MiB/s, 200 Mbit/s 22.8 → 56, 400 Mbit/s
 * 45 → 52–79, 1 Gbit/s 97 → 76–80 (zstd's ceiling on those 2 shared cores: 68–80). Just
 * above the 400 Mbit/s figure, with room for slower CPUs: below it zstd pays on any of them.
 */
export const AUTO_ZSTD_BELOW_BYTES_PER_SECOND = 48 * 1024 * 1024

/**
 * Up to this link rate `auto` tries zstd and keeps it while compressed bodies come faster:
 * gigabit Ethernet carries about 112–118 MiB/s, and zstd's pace on the machines measured
 * (README, "zstd on the wire": 121–191 MiB/s of NAR on 2 shared cores, 2026-11-27) makes a
 * faster link not worth a try.
 */
export const AUTO_TRY_ZSTD_BELOW_BYTES_PER_SECOND = 160 * 1024 * 1024

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
  rate?: number
  /** NAR bytes per second of zstd bodies. */
  zstdRate?: number
  /** Large NARs asked the preferred way since the last one asked the other way. */
  sinceProbe: number
}

export class WireCompressionPolicy {
  readonly mode: WireCompression
  readonly #threshold: number
  readonly #tryBelow: number
  /** Per peer, most recently measured last. */
  readonly #links = new Map<string, Link>()

  /**
   * `threshold`: zstd outright below this link rate; `tryBelow`: tried, and kept while it
   * comes faster, below this one (never below `threshold`).
   */
  constructor (mode: WireCompression, threshold = AUTO_ZSTD_BELOW_BYTES_PER_SECOND, tryBelow = AUTO_TRY_ZSTD_BELOW_BYTES_PER_SECOND) {
    this.mode = mode
    this.#threshold = threshold
    this.#tryBelow = Math.max(threshold, tryBelow)
  }

  /**
   * Whether to ask `peer` for zstd for a body of `bytes`. `auto` asks no peer whose link it
   * has not measured; a large NAR that is due goes the other way, to measure it again.
   */
  wants (peer: string, bytes: number): boolean {
    if (this.mode !== 'auto') return this.mode === 'zstd'
    const link = this.#links.get(peer)
    if (link?.rate === undefined || link.rate >= this.#tryBelow) return false
    const preferred = link.rate < this.#threshold || link.zstdRate === undefined || link.zstdRate > link.rate
    if (bytes < MIN_SAMPLE_BYTES) return preferred
    link.sinceProbe += 1
    if (link.sinceProbe < PROBE_EVERY) return preferred
    link.sinceProbe = 0
    return !preferred
  }

  /** The measured rate of `peer`'s link (uncompressed bodies) in bytes per second, if any. */
  rate (peer: string): number | undefined {
    return this.#links.get(peer)?.rate
  }

  /** The measured rate of `peer`'s zstd bodies in NAR bytes per second, if any. */
  zstdRate (peer: string): number | undefined {
    return this.#links.get(peer)?.zstdRate
  }

  /**
   * A body from `peer`, zstd-compressed or not, carried `bytes` of NAR in `ms` (first byte to
   * last). Short bodies are ignored; the others move that way's estimate halfway to what they
   * measured, so one odd transfer does not flip the choice and a change is followed within a few.
   */
  observed (peer: string, bytes: number, ms: number, compressed = false): void {
    if (bytes < MIN_SAMPLE_BYTES) return
    const sample = bytes / Math.max(ms, 1) * 1000
    const link = this.#links.get(peer) ?? { sinceProbe: 0 }
    const before = compressed ? link.zstdRate : link.rate
    const estimate = before === undefined ? sample : (before + sample) / 2
    if (compressed) link.zstdRate = estimate
    else link.rate = estimate
    this.#links.delete(peer)
    this.#links.set(peer, link)
    for (const oldest of this.#links.keys()) {
      if (this.#links.size <= MAX_REMEMBERED_PEERS) break
      this.#links.delete(oldest)
    }
  }
}
