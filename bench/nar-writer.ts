/**
 * Throughput of the NAR writer for several chunk sizes, to choose DEFAULT_CHUNK_SIZE in
 * src/nix/nar.ts. Streams the NAR of a 256 MiB random file (written once, read from the page
 * cache) with no consumer work ("raw") and hashed as it streams ("hashed", what serving and
 * verifying do); best of 5 runs each. Then the NAR of a tree of small files, as most store
 * paths are (3,000 files of 0.5–32 KiB in 30 directories), against `nix-store --dump` of it.
 * Run: `npx tsx bench/nar-writer.ts [MiB]`.
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

/** The fastest of `runs` runs, in seconds. */
async function fastest (run: () => Promise<void>): Promise<number> {
  let least = Infinity
  for (let i = 0; i < runs; i++) {
    const start = process.hrtime.bigint()
    await run()
    least = Math.min(least, Number(process.hrtime.bigint() - start) / 1e9)
  }
  return least
}

async function best (run: () => Promise<void>): Promise<number> {
  return sizeMiB / await fastest(run)
}

/** 3,000 files of 0.5–32 KiB (random bytes, sizes from a fixed sequence) in 30 directories. */
function writeSmallFiles (root: string): void {
  const script = 'for d in $(seq 30); do mkdir -p "$0/d$d"; for f in $(seq 100); do head -c $(( (d * 7919 + f * 104729) % 32256 + 512 )) /dev/urandom > "$0/d$d/f$f"; done; done'
  execFileSync('bash', ['-c', script, root])
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

  const tree = join(dir, 'tree')
  writeSmallFiles(tree)
  let treeBytes = 0
  for await (const chunk of narStream(tree)) treeBytes += chunk.byteLength
  const ours = await fastest(async () => { for await (const _ of narStream(tree)) { /* drain */ } })
  const theirs = await fastest(async () => { execFileSync('sh', ['-c', `nix-store --dump ${tree} > /dev/null`]) })
  console.log(`\nNAR of a tree of 3,000 small files (${(treeBytes / MiB).toFixed(1)} MiB), best of ${runs}: ${(ours * 1000).toFixed(0)} ms; nix-store --dump > /dev/null ${(theirs * 1000).toFixed(0)} ms`)
} finally {
  await rm(dir, { recursive: true, force: true })
}
