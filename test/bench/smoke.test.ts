/**
 * The benchmarks at their tiny size (`--quick`), so the scripts keep working as the daemon
 * changes. Checks that each prints its table with figures and no failed request; the
 * figures themselves are not judged here (the machine may be loaded).
 */
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))

/** Longer than a quick run takes, shorter than the test's timeout (600 s). */
const BENCH_LIMIT_MS = 540_000

async function bench (only: string): Promise<string> {
  return await new Promise((resolve, reject) => {
    // In a process group of its own: a run that hangs is killed with the daemons it started,
    // which would otherwise outlive the test and hold up CI.
    const child = spawn(process.execPath, ['--import', 'tsx', 'bench/run.ts', '--quick', '--only', only], { cwd: ROOT, detached: true, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (text: string) => { stdout += text })
    child.stderr.setEncoding('utf8').on('data', (text: string) => { stderr += text })
    const limit = setTimeout(() => { try { process.kill(-(child.pid ?? 0), 'SIGKILL') } catch {} }, BENCH_LIMIT_MS)
    child.on('error', err => { clearTimeout(limit); reject(err) })
    child.on('close', (code, signal) => {
      clearTimeout(limit)
      if (code !== 0) reject(new Error(`bench ${only} failed: ${signal ?? `exit ${code}`}\n${stdout}\n${stderr}`))
      else resolve(stdout)
    })
  })
}

/** The body rows of the Markdown table under `### <title…>`, as cells. */
function tableRows (out: string, title: RegExp): string[][] {
  const lines = out.split('\n')
  const start = lines.findIndex(l => l.startsWith('### ') && title.test(l))
  assert.ok(start >= 0, `no table ${title} in:\n${out}`)
  const rows: string[][] = []
  for (const line of lines.slice(start + 4)) {
    if (!line.startsWith('|')) break
    rows.push(line.split('|').slice(1, -1).map(c => c.trim()))
  }
  return rows
}

const NUMBER_OR_RANGE = /^\d+(\.\d+)?(–\d+(\.\d+)?)?$/

describe('bench --quick', function () {
  this.timeout(600_000)

  it('narinfo: every server answers hits 200 and misses 404, with latencies', async () => {
    const rows = tableRows(await bench('narinfo'), /narinfo latency/)
    const measured = rows.filter(r => !r[0].startsWith('original Peerix'))
    assert.deepEqual(measured.map(r => r[0]), [
      'peerix shim, 1 peer', 'peerix shim --no-index, 1 peer', 'peerix shim, 4 peers',
      'peerix shim, 4 peers, misses only, back to back (the first floor row\'s pattern)', 'peerix shim --no-index, 4 peers',
      'floor: a Node HTTP server that answers 404 at once (in the shim\'s process)',
      'floor, each miss right after a hit on a 4-peer shim (the shim rows\' pattern)',
      'floor for a hit: a Node HTTP server in the shim\'s process that pulls each narinfo file from peer #0 over libp2p',
      'static file:// cache, python3 -m http.server'
    ])
    for (const r of measured) {
      const shim = r[0].startsWith('peerix shim')
      // the floor server and the misses-only row answer only misses (after hits: the shim's hits are not its row's)
      const hitFloor = r[0].startsWith('floor for a hit')
      const missesOnly = !hitFloor && (r[0].startsWith('floor') || r[0].includes('misses only'))
      // the hit floor's misses go to the first floor server and are its row's only
      const cells = missesOnly ? r.slice(3, 5) : hitFloor ? r.slice(1, 3) : r.slice(1, 5)
      for (const cell of cells) assert.match(cell, NUMBER_OR_RANGE, `row ${r[0]}`)
      if (missesOnly) assert.deepEqual(r.slice(1, 3), ['—', '—'], `no hits in row ${r[0]}`)
      if (hitFloor) assert.deepEqual(r.slice(3, 5), ['—', '—'], `no misses in row ${r[0]}`)
      // the shims' own clock (/metrics): a share of their misses; other servers have none
      if (shim) assert.match(r[5], /^\d+\.\d(–\d+\.\d)? %$/, `row ${r[0]}`)
      else assert.equal(r[5], '—', `row ${r[0]}`)
      assert.equal(r[6], '0', `failed requests in row ${r[0]}`)
    }
  })

  it('nar: every layer carries the whole NAR, and the chunk sweep fills its table', async () => {
    const out = await bench('nar')
    const layers = tableRows(out, /NAR throughput/)
    assert.deepEqual(layers.map(r => r[0].split(' ')[0]), ['through', 'floor:', '/peerix/nar/1', 'bare', 'raw'])
    for (const r of layers) assert.match(r[1], NUMBER_OR_RANGE, `row ${r[0]}`)
    assert.match(out, /Peak RSS .* A \d+ MB, B \d+ MB/)
    for (const r of tableRows(out, /writer chunk × send chunk/)) {
      for (const cell of r.slice(1)) assert.match(cell, NUMBER_OR_RANGE, `row ${r[0]}`)
    }
  })

  it('closure: nix copy from all four sources, the p2p floor among them', async () => {
    const rows = tableRows(await bench('closure'), /nix copy of a \d+-path closure/)
    assert.equal(rows.length, 4)
    for (const r of rows) {
      assert.match(r[1], NUMBER_OR_RANGE, `row ${r[0]}`)
      assert.match(r[6], NUMBER_OR_RANGE, `row ${r[0]}: CPU over the cores`)
    }
  })
})
