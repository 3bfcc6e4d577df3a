import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { createInterface } from 'node:readline'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseStorePath } from '../../src/nix/store-path.js'
import { NixEnv, SANDBOX_PATHS, sampleClosureExpr } from '../helpers/nix.js'

const READER = fileURLToPath(new URL('./db-reader.ts', import.meta.url))
const PARTS = 12

/** Independent paths that each take a moment to build, so Nix writes to its database for a while. */
const slowExpr = `
let
  mk = name: script: builtins.derivation { inherit name; builder = "/bin/sh"; args = [ "-c" script ]; system = builtins.currentSystem; PATH = "/bin:/usr/bin"; };
  parts = builtins.genList (i: mk "part-\${toString i}" "mkdir $out; sleep 0.2; echo \${toString i} > $out/i") ${PARTS};
  top = mk "parts" "mkdir $out; echo \${toString parts} > $out/all";
in { inherit top; outs = map (d: d.outPath) (parts ++ [ top ]); }
`

describe('NixDb as an unprivileged reader while nix-build writes to the same store', function () {
  let nix: NixEnv
  let reader: ChildProcess | undefined

  before(async () => { nix = await NixEnv.create() })
  after(async () => {
    if (reader?.exitCode === null) reader.kill('SIGKILL')
    await nix?.cleanup()
  })

  it('reads every path as `nobody`, from before Nix opens its WAL files to while it writes, without errors', async function () {
    this.timeout(180_000)
    const root = nix.storeRoot('host')
    await nix.build(root, sampleClosureExpr('concurrent'))
    const exprFile = join(nix.dir, 'slow.nix')
    await writeFile(exprFile, slowExpr)
    const outs = JSON.parse((await nix.run('nix-instantiate', ['--store', root, '--eval', '--strict', '--json', exprFile, '-A', 'outs'])).stdout) as string[]
    assert.equal(outs.length, PARTS + 1)
    // nobody may read the store and its database but write nothing: not the db directory, not the -shm.
    await nix.run('chmod', ['o+rx', nix.dir, root, join(root, 'nix'), join(root, 'nix/var'), join(root, 'nix/var/nix'), join(root, 'nix/var/nix/db')])
    await nix.run('chmod', ['o-w', join(root, 'nix/var/nix/db')])

    reader = spawn('setpriv', ['--reuid=nobody', '--regid=nogroup', '--clear-groups',
      process.execPath, '--import', 'tsx', READER, root, '60000', ...outs.map(p => parseStorePath(p).hashPart)],
    { cwd: fileURLToPath(new URL('../..', import.meta.url)), env: { PATH: process.env.PATH, TMPDIR: '/tmp' }, stdio: ['ignore', 'pipe', 'pipe'] })
    let stderr = ''
    reader.stderr?.on('data', (d: Buffer) => { stderr += d.toString() })
    const lines = createInterface({ input: reader.stdout! })[Symbol.asyncIterator]()
    const first = await lines.next()
    assert.equal(first.value, 'ready', `reader did not start: ${stderr}`)

    await nix.run('nix-build', ['--store', root, exprFile, '-A', 'top', '--no-out-link', '--option', 'extra-sandbox-paths', SANDBOX_PATHS])
    const buildEnd = Date.now()
    const last = await lines.next()
    assert.ok(last.done !== true, `reader gave no report: ${stderr}`)
    const report = JSON.parse(last.value) as { uid: number, lookups: number, found: number, firstFoundAt: number, roundsWithWal: number, startedOnSnapshot: boolean, liveAtEnd: boolean, errors: string[] }
    assert.equal(report.uid, 65534)
    assert.deepEqual(report.errors, [])
    assert.equal(report.found, outs.length, 'every path built was seen by the reader')
    assert.ok(report.firstFoundAt < buildEnd, 'the reader saw paths appear while nix-build was still writing')
    assert.ok(report.roundsWithWal > 0, 'the reader read while Nix had its write-ahead log open')
    assert.ok(report.startedOnSnapshot, 'with no Nix running, nobody could only read a copy at first')
    assert.ok(report.liveAtEnd, 'once Nix opened its WAL files the reader went live')
  })
})
