/**
 * Load through one shim with real daemons: host A has 40 real paths (16 of them NARs of 6 MiB),
 * host B's shim gets 500 concurrent narinfo requests (half for paths A has, half for paths
 * nobody has), then 16 parallel NAR downloads. Every answer must be right, and both daemons'
 * peak RSS (VmHWM) must stay bounded; the figures are printed for the record.
 */
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { NixEnv } from '../helpers/nix.js'
import { Lab } from '../helpers/netns.js'
import { LabDaemons } from '../helpers/daemon.js'
import { toNix32 } from '../../src/nix/nix32.js'
import { parseStorePath } from '../../src/nix/store-path.js'
import type { LoadArgs, LoadResult } from './load-client.fixture.js'

const BIG_PATHS = 16
const BIG_MIB = 6
const SMALL_PATHS = 24
const NARINFO_REQUESTS = 500
/** Generous: the NARs alone are 96 MiB; a daemon that buffered them all twice would pass 400. */
const RSS_BOUND_MIB = 400
const REPO = fileURLToPath(new URL('../..', import.meta.url))

/** Peak and current resident memory of a process, in MiB. */
function memoryOf (pid: number): { peakMiB: number, nowMiB: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const kib = (field: string): number => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1])
  return { peakMiB: Math.round(kib('VmHWM') / 1024), nowMiB: Math.round(kib('VmRSS') / 1024) }
}

describe('load through one shim (real daemons in namespaces)', function () {
  this.timeout(300_000)
  let nix: NixEnv
  let lab: Lab
  const daemons = new LabDaemons()

  before(async () => {
    nix = await NixEnv.create()
    lab = await Lab.create(2)
  })

  after(async () => {
    await daemons.stopAll()
    await lab?.cleanup()
    await nix?.cleanup()
  })

  it(`answers ${NARINFO_REQUESTS} concurrent narinfo requests and ${BIG_PATHS} parallel NAR downloads correctly, in bounded memory`, async () => {
    const [hostA, hostB] = lab.hosts
    const rootA = nix.storeRoot('hostA')
    const files: string[] = []
    for (let i = 0; i < BIG_PATHS + SMALL_PATHS; i++) files.push(join(nix.dir, `${i < BIG_PATHS ? 'big' : 'small'}-${i}.bin`))
    await nix.run('sh', ['-c', files.map((f, i) => `head -c ${i < BIG_PATHS ? `${BIG_MIB}M` : '1000'} /dev/urandom > ${f}`).join('; ')])
    const paths = (await nix.run('nix-store', ['--store', rootA, '--add', ...files])).stdout.trim().split('\n')
    const hashes = (await nix.run('nix-store', ['--store', rootA, '-q', '--hash', ...paths])).stdout.trim().split('\n')
    const sizes = (await nix.run('nix-store', ['--store', rootA, '-q', '--size', ...paths])).stdout.trim().split('\n').map(Number)
    const { secretFile: skA, publicKey: pkA } = await nix.generateKey('hostA-1')

    for (const [host, args] of [[hostA, ['--store-root', rootA, '--signing-key-file', skA, '--serve', 'all']], [hostB, ['--store-root', await nix.initStore('hostB'), '--trusted-public-keys', pkA]]] as const) {
      await daemons.start(lab, host, nix, ['--timeout', '10000', ...args])
    }
    const [a, b] = daemons.running
    await b.waitFor(/peer found/, 30_000)
    const before = { a: memoryOf(a.child.pid as number), b: memoryOf(b.child.pid as number) }

    const absent = (i: number): string => toNix32(createHash('sha256').update(`absent-${i}`).digest().subarray(0, 20))
    const args: LoadArgs = {
      url: b.url,
      narinfos: Array.from({ length: NARINFO_REQUESTS }, (_, i) => i % 2 === 0
        ? { hashPart: parseStorePath(paths[(i / 2) % paths.length]).hashPart, narHash: hashes[(i / 2) % paths.length] }
        : { hashPart: absent(i), narHash: null }),
      nars: paths.slice(0, BIG_PATHS).map((p, i) => ({ hashPart: parseStorePath(p).hashPart, narHash: hashes[i], narSize: sizes[i] }))
    }
    const client = fileURLToPath(new URL('./load-client.fixture.ts', import.meta.url))
    const { stdout } = await lab.exec(hostB, process.execPath, ['--import', 'tsx', client, JSON.stringify(args)], { env: { ...process.env, NODE_PATH: REPO }, timeout: 240_000 })
    const result = JSON.parse(stdout) as LoadResult
    const after = { a: memoryOf(a.child.pid as number), b: memoryOf(b.child.pid as number) }

    console.log(`      narinfo: ${result.narinfo.correct}/${result.narinfo.requests} correct, ${result.narinfo.peakInFlight} in flight at once, ${result.narinfo.ms} ms`)
    console.log(`      NAR: ${result.nar.correct}/${result.nar.requests} correct, ${result.nar.peakInFlight} in flight at once, ${Math.round(result.nar.bytes / 2 ** 20)} MiB in ${result.nar.ms} ms`)
    console.log(`      RSS MiB (before load → after, peak VmHWM): A ${before.a.nowMiB} → ${after.a.nowMiB}, peak ${after.a.peakMiB}; B ${before.b.nowMiB} → ${after.b.nowMiB}, peak ${after.b.peakMiB}`)

    assert.deepEqual(result.narinfo.wrong, [])
    assert.equal(result.narinfo.correct, NARINFO_REQUESTS)
    assert.equal(result.narinfo.peakInFlight, NARINFO_REQUESTS, 'the client did not hold every request open at once')
    assert.deepEqual(result.nar.wrong, [])
    assert.equal(result.nar.correct, BIG_PATHS)
    assert.equal(result.nar.peakInFlight, BIG_PATHS)
    assert.equal(result.nar.bytes, sizes.slice(0, BIG_PATHS).reduce((x, y) => x + y, 0))
    for (const [name, m] of Object.entries(after)) assert.ok(m.peakMiB < RSS_BOUND_MIB, `daemon ${name} peaked at ${m.peakMiB} MiB (bound ${RSS_BOUND_MIB})`)
  })
})
