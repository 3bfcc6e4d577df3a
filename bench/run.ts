/**
 * `npm run bench`: every benchmark with its baseline in the same run, printed as Markdown
 * tables. Flags: `--quick` (tiny sizes, seconds: what the smoke test runs), `--runs N`
 * (repeat each measurement; ranges are printed), `--only narinfo,nar,closure`, `--tsx` (run
 * the daemons under tsx instead of compiling them first; `--quick` implies it),
 * `--leaf-bytes MIN-MAX` (the closure's leaf sizes, default 1200000-12000000).
 */
import { execFileSync } from 'node:child_process'
import { rm } from 'node:fs/promises'
import { loadavg } from 'node:os'
import { parseArgs } from 'node:util'
import { benchSizes, type BenchName, BENCH_NAMES } from './sizes.js'
import { narinfoLatency } from './narinfo-latency.js'
import { narThroughput } from './nar-throughput.js'
import { closureCopy } from './closure-copy.js'
import { formatTable, type Table } from './report.js'
import { compileHost } from './compile-host.js'

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    runs: { type: 'string' },
    only: { type: 'string' },
    tsx: { type: 'boolean', default: false },
    'leaf-bytes': { type: 'string' }
  }
})

const only = (values.only ?? BENCH_NAMES.join(',')).split(',')
for (const name of only) {
  if (!(BENCH_NAMES as readonly string[]).includes(name)) throw new Error(`--only ${JSON.stringify(name)}: expected some of ${BENCH_NAMES.join(', ')}`)
}
const sizes = benchSizes(values.quick, values.runs, values['leaf-bytes'])
const progress = (line: string): void => { process.stderr.write(`… ${line}\n`) }
const load = (): string => loadavg().map(l => l.toFixed(1)).join(' ')

/** The checkout's commit for the report's heading; a copy without git (scripts/test-node22.sh) has none. */
function headCommit (): string {
  try {
    return execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim()
  } catch {
    return 'unknown (not a git checkout)'
  }
}

const commit = headCommit()
console.log(`# peerix benchmarks — ${new Date().toISOString()}, commit ${commit}, node ${process.version}, load average at start ${load()}\n`)

let compiledDir: string | undefined
if (!values.quick && !values.tsx) {
  progress('compiling the daemon host')
  const compiled = await compileHost()
  compiledDir = compiled.dir
  process.env.PEERIX_BENCH_HOST_JS = compiled.hostJs
}

const benches: Record<BenchName, () => Promise<Table | Table[]>> = {
  narinfo: async () => await narinfoLatency({ ...sizes.narinfo, runs: sizes.runs, progress }),
  nar: async () => await narThroughput({ ...sizes.nar, runs: sizes.runs, progress }),
  closure: async () => await closureCopy({ ...sizes.closure, runs: sizes.runs, progress })
}
try {
  for (const name of only as BenchName[]) {
    const tables = [await benches[name]()].flat()
    tables[0].notes.push(`load average after: ${load()}`, `daemons ${compiledDir !== undefined ? 'compiled to JS' : 'under tsx'}`)
    for (const table of tables) console.log(formatTable(table))
  }
} finally {
  if (compiledDir !== undefined) await rm(compiledDir, { recursive: true, force: true })
}
