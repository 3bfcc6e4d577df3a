/**
 * Throughput of the NAR writer for several chunk sizes, to choose DEFAULT_CHUNK_SIZE in
 * src/nix/nar.ts. Streams the NAR of a 256 MiB random file (written once, read from the page
 * cache) with no consumer work ("raw") and hashed as it streams ("hashed", what serving and
 * verifying do); best of 5 runs each. Run: `npx tsx bench/nar-writer.ts [MiB]`.
 */
import { createReadStream } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { execFileSync } from 'node:child_process'
import { narStream } from '../src/nix/nar.js'
import { hashNar } from '../src/nix/nar-hash.js'

const MiB = 1024 * 1024
const sizeMiB = Number(process.argv[2] ?? 256)
const chunkSizes = [64 * 1024, 256 * 1024, 1024 * 1024, 4 * 1024 * 1024]
const runs = 5

async function best (run: () => Promise<void>): Promise<number> {
  let fastest = Infinity
  for (let i = 0; i < runs; i++) {
    const start = process.hrtime.bigint()
    await run()
    fastest = Math.min(fastest, Number(process.hrtime.bigint() - start) / 1e9)
  }
  return sizeMiB / fastest
}

const dir = await mkdtemp(join(tmpdir(), 'peerix-bench-nar-'))
try {
  const file = join(dir, 'big')
  execFileSync('sh', ['-c', `head -c ${sizeMiB * MiB} /dev/urandom > ${file}`])
  for await (const _ of createReadStream(file)) { /* warm the page cache */ }
  await hashNar(narStream(file)) // and the JIT

  console.log(`NAR of a ${sizeMiB} MiB file, best of ${runs}, MiB/s`)
  console.log('chunk      raw   hashed')
  for (const chunkSize of chunkSizes) {
    const raw = await best(async () => { for await (const _ of narStream(file, { chunkSize })) { /* drain */ } })
    const hashed = await best(async () => { await hashNar(narStream(file, { chunkSize })) })
    console.log(`${String(chunkSize / 1024).padStart(5)} KiB ${raw.toFixed(0).padStart(6)} ${hashed.toFixed(0).padStart(8)}`)
  }
  const nix = await best(async () => { execFileSync('sh', ['-c', `nix-store --dump ${file} | sha256sum > /dev/null`]) })
  console.log(`reference: nix-store --dump | sha256sum ${nix.toFixed(0)} MiB/s`)
} finally {
  await rm(dir, { recursive: true, force: true })
}
