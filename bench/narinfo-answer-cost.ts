/**
 * What a peer's narinfo answer costs when it carries the path's NAR (`/peerix/narinfo/1` r2):
 * the local store (the daemon's LocalStore over a chroot store of `--count` × 2 × 4 small
 * paths, each a file of `--bytes` bytes, signing with a key of its own) answers each path's
 * narinfo, formatted as sent, alone or followed by the NAR read whole, as the responder does.
 * Four rounds, the two ways alternating, on paths not asked before; prints per round the wall
 * time and CPU per answer. Run: `npx tsx bench/narinfo-answer-cost.ts [--count N] [--bytes N]`
 * (default 500 paths per way and round, 512 bytes).
 */
import { NixEnv } from '../test/helpers/nix.js'
import { formatNarInfo } from '../src/nix/narinfo.js'
import { MAX_INLINE_NAR_BYTES } from '../src/p2p/narinfo/constants.js'
import { generateSecretKey } from '../src/nix/signing.js'
import { parseStorePath } from '../src/nix/store-path.js'
import { LocalStore } from '../src/store/local-store.js'
import { takeNumberOption } from './args.js'
import { formatTable } from './report.js'
import { addSmallPaths } from './stores.js'

const ROUNDS = 4
const PEER = '12D3KooWBenchPeer'
const args = process.argv.slice(2)
const count = takeNumberOption(args, '--count', 500)
const bytes = takeNumberOption(args, '--bytes', 512)

type Way = 'narinfo' | 'narinfo and NAR'

/** The narinfo as the responder formats it, and with `withNar` the NAR handed out with it, read whole. */
async function answer (store: LocalStore, hashPart: string, withNar: boolean): Promise<void> {
  const served = await store.narInfo(hashPart, PEER, withNar ? { narUpTo: MAX_INLINE_NAR_BYTES } : {})
  if (served.status !== 'found') throw new Error(`${hashPart}: ${served.status}`)
  formatNarInfo(served.value)
  if (!withNar) return
  if (served.nar === undefined) throw new Error(`${hashPart}: no NAR with the narinfo`)
  const whole = new Uint8Array(served.nar.length)
  let at = 0
  for await (const chunk of served.nar.stream) {
    whole.set(chunk, at)
    at += chunk.length
  }
}

const nix = await NixEnv.create('peerix-bench-answer-cost-')
try {
  const root = await nix.initStore('peer')
  const hashParts = (await addSmallPaths(nix, root, count * 2 * ROUNDS, bytes)).map(p => parseStorePath(p).hashPart)
  const store = LocalStore.open({ storeRoot: root, signingKey: generateSecretKey('bench-answer-1') })
  const rows: string[][] = []
  try {
    for (let round = 0; round < ROUNDS; round++) {
      const ways: Way[] = round % 2 === 0 ? ['narinfo', 'narinfo and NAR'] : ['narinfo and NAR', 'narinfo']
      for (const [i, way] of ways.entries()) {
        const start = (round * 2 + i) * count
        const paths = hashParts.slice(start, start + count)
        const cpu = process.cpuUsage()
        const began = performance.now()
        for (const hashPart of paths) await answer(store, hashPart, way !== 'narinfo')
        const wall = performance.now() - began
        const used = process.cpuUsage(cpu)
        rows.push([String(round + 1), way, (wall * 1000 / count).toFixed(0), ((used.user + used.system) / count).toFixed(0)])
      }
    }
  } finally {
    store.close()
  }
  console.log(formatTable({
    title: `A peer's narinfo answer, with and without the NAR (${bytes}-byte paths, ${count} per way and round)`,
    columns: ['round', 'answer', 'µs wall per answer', 'µs CPU per answer'],
    rows,
    notes: ['The first rounds also measure V8 compiling the code; compare the ways within the later rounds.', 'CPU is the whole process\'s, libuv and GC threads included.']
  }))
} finally {
  await nix.cleanup()
}
