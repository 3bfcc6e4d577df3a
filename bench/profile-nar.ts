/**
 * Profiles the shim path: both daemons run under `node --cpu-prof` while one NAR streams from
 * A through B's shim to curl; prints each daemon's functions by self time and keeps
 * the .cpuprofile files (open them in Chrome DevTools). Run:
 * `npx tsx bench/profile-nar.ts [MiB] [out-dir]` (default 512 MiB, ./bench-profiles).
 */
import { mkdir, readdir, readFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { curlDownload } from './http-client.js'
import { MiB } from './report.js'
import { startNarPair } from './nar-pair.js'

interface ProfileNode { id: number, callFrame: { functionName: string, url: string, lineNumber: number }, hitCount?: number }
interface CpuProfile { nodes: ProfileNode[], startTime: number, endTime: number, samples: number[] }

const sizeMiB = Number(process.argv[2] ?? 512)
const outDir = resolve(process.argv[3] ?? 'bench-profiles')

/** The functions with the most samples, as "percent  name  file:line". */
export function topFunctions (profile: CpuProfile, count = 20): string[] {
  const self = new Map<string, number>()
  for (const node of profile.nodes) {
    const f = node.callFrame
    const where = f.url === '' ? '' : ` ${f.url.replace(/^file:\/\//, '').replace(/^.*node_modules\//, '')}:${f.lineNumber + 1}`
    const name = `${f.functionName === '' ? '(anonymous)' : f.functionName}${where}`
    self.set(name, (self.get(name) ?? 0) + (node.hitCount ?? 0))
  }
  const total = profile.samples.length
  return [...self].sort((x, y) => y[1] - x[1]).slice(0, count).map(([name, hits]) => `${(100 * hits / total).toFixed(1).padStart(5)}%  ${name}`)
}

await mkdir(outDir, { recursive: true })
const progress = (line: string): void => { process.stderr.write(`… ${line}\n`) }
const pair = await startNarPair(sizeMiB * MiB, MiB, progress, ['--cpu-prof', '--cpu-prof-dir', outDir])
try {
  const res = await curlDownload(`${pair.b.url}/${pair.narUrl}`)
  console.log(`through the shim to curl: ${res.status}, ${(res.bytes / MiB / res.seconds).toFixed(0)} MiB/s (${(res.bytes / MiB).toFixed(0)} MiB in ${res.seconds.toFixed(2)} s)`)
} finally {
  await pair.stop()
}
const pids = { A: pair.hostA.pid, B: pair.hostB.pid }
for (const [who, pid] of Object.entries(pids)) {
  const file = (await readdir(outDir)).find(f => f.endsWith('.cpuprofile') && f.includes(`.${pid}.`))
  if (file === undefined) { console.log(`no profile for ${who} (pid ${pid}) in ${outDir}`); continue }
  const profile = JSON.parse(await readFile(join(outDir, file), 'utf8')) as CpuProfile
  console.log(`\n${who === 'A' ? 'A (serves the NAR)' : 'B (shim)'}: ${join(outDir, file)}, ${((profile.endTime - profile.startTime) / 1e6).toFixed(1)} s`)
  for (const line of topFunctions(profile)) console.log(line)
}
