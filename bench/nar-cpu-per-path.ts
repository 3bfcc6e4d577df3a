/**
 * CPU per NAR for closures of many small paths: a closure copy is hundreds of NARs of a few MB,
 * where what a NAR costs beyond its bytes adds up. Pulls one NAR of each size `count` times in a
 * row over /peerix/nar/1 (B's service, no HTTP, no verification) and prints the wall time and
 * the CPU time of A's and B's daemons per NAR, for three rounds. Comparing sizes separates the
 * fixed cost from the cost per byte. Run: `npx tsx bench/nar-cpu-per-path.ts [KiB …] [--count N]`
 * (default 1 1024 8192 KiB, 200 pulls).
 */
import { rm } from 'node:fs/promises'
import { takeNumberOption } from './args.js'
import { compileHost } from './compile-host.js'
import { startNarPair } from './nar-pair.js'
import { formatTable, MiB, range } from './report.js'

const ROUNDS = 3
const args = process.argv.slice(2)
const count = takeNumberOption(args, '--count', 200)
const sizesKiB = args.filter(a => /^\d+$/.test(a)).map(Number)
if (sizesKiB.length === 0) sizesKiB.push(1, 1024, 8192)

const compiled = await compileHost()
process.env.PEERIX_BENCH_HOST_JS = compiled.hostJs
const rows: string[][] = []
try {
  for (const kib of sizesKiB) {
    const pair = await startNarPair(kib * 1024, MiB, () => {})
    try {
      const wall: number[] = []
      const cpuA: number[] = []
      const cpuB: number[] = []
      for (let round = 0; round < ROUNDS; round++) {
        const a0 = await pair.hostA.cpuSeconds()
        const b0 = await pair.hostB.cpuSeconds()
        const t0 = performance.now()
        for (let i = 0; i < count; i++) {
          const pulled = await pair.hostB.pullNar(pair.b.index, pair.a.peerId, pair.hashPart, pair.narHash)
          if (pulled.bytes !== pair.narSize) throw new Error(`pulled ${pulled.bytes} of ${pair.narSize} bytes`)
        }
        wall.push((performance.now() - t0) / count)
        cpuA.push((await pair.hostA.cpuSeconds() - a0) * 1000 / count)
        cpuB.push((await pair.hostB.cpuSeconds() - b0) * 1000 / count)
      }
      rows.push([`${kib} KiB`, range(wall, 1), range(cpuA, 1), range(cpuB, 1)])
    } finally {
      await pair.stop()
    }
  }
  console.log(formatTable({
    title: `NARs pulled over /peerix/nar/1, ${count} in a row per round, ${ROUNDS} rounds (ms per NAR)`,
    columns: ['NAR', 'wall', 'CPU A (sends)', 'CPU B (receives)'],
    rows,
    notes: ['CPU: user + system time of each daemon\'s host process over a round (B\'s includes the benchmark\'s IPC request per pull).']
  }))
} finally {
  await rm(compiled.dir, { recursive: true, force: true })
}
