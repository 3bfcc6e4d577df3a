/**
 * The shim daemon's memory while it streams one NAR to curl, transfer after transfer: peak RSS of
 * both daemons (VmHWM, reset before each transfer) and the largest V8 heap and external
 * (Buffer) memory B's `/metrics` showed, sampled every 100 ms. Run:
 * `npx tsx bench/nar-memory.ts [MiB] [transfers]` (default 512 MiB, 3); compare V8 settings
 * with e.g. `PEERIX_BENCH_NODE_ARGS=--max-semi-space-size=16` (the default young generation;
 * later flags override the daemon's own).
 */
import { curlDownload, HttpClient } from './http-client.js'
import { startNarPair } from './nar-pair.js'
import { compileHost } from './compile-host.js'
import { rm } from 'node:fs/promises'

const MiB = 1024 * 1024
const SAMPLED = /^(nodejs_heap_size_total_bytes|nodejs_external_memory_bytes) (\d+)/

const sizeMiB = Number(process.argv[2] ?? 512)
const transfers = Number(process.argv[3] ?? 3)
const compiled = await compileHost()
process.env.PEERIX_BENCH_HOST_JS = compiled.hostJs
const pair = await startNarPair(sizeMiB * MiB, MiB, () => {})
try {
  console.log(`node args ${JSON.stringify(process.env.PEERIX_BENCH_NODE_ARGS ?? '')}, ${sizeMiB} MiB NAR through B's shim; idle RSS A ${pair.idle.a.rssMB.toFixed(0)} MB, B ${pair.idle.b.rssMB.toFixed(0)} MB`)
  for (let i = 0; i < transfers; i++) {
    await pair.hostA.resetPeak()
    await pair.hostB.resetPeak()
    const largest: Record<string, number> = {}
    let streaming = true
    const sampler = (async () => {
      const metrics = new HttpClient()
      while (streaming) {
        for (const line of (await metrics.get(`${pair.b.url}/metrics`)).body.split('\n')) {
          const m = SAMPLED.exec(line)
          if (m !== null) largest[m[1]] = Math.max(largest[m[1]] ?? 0, Number(m[2]) / 1e6)
        }
        await new Promise(resolve => setTimeout(resolve, 100))
      }
      metrics.close()
    })()
    const got = await curlDownload(`${pair.b.url}/${pair.narUrl}`)
    streaming = false
    await sampler
    if (got.status !== 200) throw new Error(`the shim answered ${got.status}`)
    const [a, b] = [await pair.hostA.memory(), await pair.hostB.memory()]
    console.log(`${(pair.narSize / MiB / got.seconds).toFixed(0)} MiB/s; peak RSS A ${a.peakMB.toFixed(0)} MB, B ${b.peakMB.toFixed(0)} MB; B's largest V8 heap ${(largest.nodejs_heap_size_total_bytes ?? 0).toFixed(0)} MB, external ${(largest.nodejs_external_memory_bytes ?? 0).toFixed(0)} MB`)
  }
} finally {
  await pair.stop()
  await rm(compiled.dir, { recursive: true, force: true })
}
