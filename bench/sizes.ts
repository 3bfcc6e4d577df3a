/** How big each benchmark is: the sizes, or tiny ones (`--quick`) for the smoke test. */
import { MiB } from './report.js'
import type { ClosureShape } from './stores.js'

export const BENCH_NAMES = ['narinfo', 'nar', 'closure'] as const
export type BenchName = typeof BENCH_NAMES[number]

export interface BenchSizes {
  runs: number
  narinfo: { peerCounts: number[], requests: number, warmUpRun: boolean }
  nar: { narBytes: number, chunkSweepBytes: number, chunkSizes: number[] }
  closure: ClosureShape
}

/**
 * The sizes for this run: the issue's, or tiny ones; `runs` and `leafBytes` (`MIN-MAX` bytes of
 * each closure leaf, e.g. `4000-64000` for a closure of small paths) as given on the command line.
 */
export function benchSizes (quick: boolean, runs?: string, leafBytes?: string): BenchSizes {
  const sizes: BenchSizes = quick
    ? {
        runs: 1,
        narinfo: { peerCounts: [1, 4], requests: 20, warmUpRun: false },
        nar: { narBytes: 8 * MiB, chunkSweepBytes: 4 * MiB, chunkSizes: [64 * 1024, 256 * 1024] },
        closure: { leaves: 6, mids: 2, minLeafBytes: 100_000, maxLeafBytes: 400_000 }
      }
    : {
        runs: 3,
        narinfo: { peerCounts: [1, 4, 16], requests: 500, warmUpRun: true },
        nar: { narBytes: 1024 * MiB, chunkSweepBytes: 256 * MiB, chunkSizes: [64 * 1024, 256 * 1024, 1024 * 1024] },
        closure: { leaves: 290, mids: 10, minLeafBytes: 1_200_000, maxLeafBytes: 12_000_000 }
      }
  if (runs !== undefined) {
    if (!/^[1-9]\d*$/.test(runs)) throw new Error(`--runs ${JSON.stringify(runs)}: expected a positive whole number`)
    sizes.runs = Number(runs)
  }
  if (leafBytes !== undefined) {
    const m = /^([1-9]\d*)-([1-9]\d*)$/.exec(leafBytes)
    if (m === null || Number(m[1]) > Number(m[2])) throw new Error(`--leaf-bytes ${JSON.stringify(leafBytes)}: expected MIN-MAX, two positive whole numbers of bytes, MIN ≤ MAX`)
    sizes.closure = { ...sizes.closure, minLeafBytes: Number(m[1]), maxLeafBytes: Number(m[2]) }
  }
  return sizes
}
