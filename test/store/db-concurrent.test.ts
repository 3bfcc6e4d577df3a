import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { createInterface } from 'node:readline'
import { writeFile } from 'node:fs/promises'
import { join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseStorePath } from '../../src/nix/store-path.js'
import { NixEnv, SANDBOX_PATHS, sampleClosureExpr } from '../helpers/nix.js'

const READER = fileURLToPath(new URL('./db-reader.ts', import.meta.url))
/** Where the readers see this checkout (an empty directory on Debian, covered only in their mount namespace). */
const CHECKOUT_MOUNT = '/mnt'
const ASKER = fileURLToPath(new URL('./db-asker.ts', import.meta.url))
const REPO = fileURLToPath(new URL('../..', import.meta.url))

/** Independent paths that each take a moment to build, so Nix writes to its database for a while. */
function slowExpr (tag: string, parts: number): string {
  return `
let
  mk = name: script: builtins.derivation { inherit name; builder = "/bin/sh"; args = [ "-c" script ]; system = builtins.currentSystem; PATH = "/bin:/usr/bin"; };
  parts = builtins.genList (i: mk "${tag}-\${toString i}" "mkdir $out; sleep 0.2; echo \${toString i} > $out/i") ${parts};
  top = mk "${tag}" "mkdir $out; echo \${toString parts} > $out/all";
in { inherit top; outs = map (d: d.outPath) (parts ++ [ top ]); }
`
}

describe('NixDb as an unprivileged reader while Nix writes to the same store', function () {
  this.timeout(180_000)
  let nix: NixEnv
  let root: string
  const children: ChildProcess[] = []

  before(async () => {
    nix = await NixEnv.create()
    root = nix.storeRoot('host')
    await nix.build(root, sampleClosureExpr('concurrent'))
    // nobody may read the store and its database but write nothing: not the db directory, not the -shm.
    await nix.run('chmod', ['o+rx', nix.dir, root, join(root, 'nix'), join(root, 'nix/var'), join(root, 'nix/var/nix'), join(root, 'nix/var/nix/db')])
    await nix.run('chmod', ['o-w', join(root, 'nix/var/nix/db')])
  })
  after(async () => {
    for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    await nix?.cleanup()
  })

  /** Writes an expression of `parts` slow paths and returns their output paths (not built yet). */
  async function prepare (tag: string, parts: number): Promise<{ exprFile: string, hashParts: string[] }> {
    const exprFile = join(nix.dir, `${tag}.nix`)
    await writeFile(exprFile, slowExpr(tag, parts))
    const outs = JSON.parse((await nix.run('nix-instantiate', ['--store', root, '--eval', '--strict', '--json', exprFile, '-A', 'outs'])).stdout) as string[]
    assert.equal(outs.length, parts + 1)
    return { exprFile, hashParts: outs.map(p => parseStorePath(p).hashPart) }
  }

  async function build (exprFile: string): Promise<void> {
    await nix.run('nix-build', ['--store', root, exprFile, '-A', 'top', '--no-out-link', '--option', 'extra-sandbox-paths', SANDBOX_PATHS])
  }

  /**
   * Runs a script of this checkout as nobody:nogroup with no supplementary groups; returns it
   * and its stdout lines. The checkout is bound at /mnt in a private mount namespace first:
   * nobody could not reach it where a CI clones it (e.g. under a 0700 `mktemp -d`).
   */
  function asNobody (script: string, args: string[]): { child: ChildProcess, lines: AsyncIterator<string>, stderr: () => string } {
    const inMount = join(CHECKOUT_MOUNT, relative(REPO, script))
    const shell = `mount --bind "$0" ${CHECKOUT_MOUNT} && cd ${CHECKOUT_MOUNT} && exec setpriv --reuid=nobody --regid=nogroup --clear-groups "$@"`
    const child = spawn('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', shell, REPO, process.execPath, '--import', 'tsx', inMount, ...args],
      { cwd: '/', env: { PATH: process.env.PATH, TMPDIR: '/tmp' }, stdio: ['pipe', 'pipe', 'pipe'] })
    children.push(child)
    let stderr = ''
    child.stderr?.on('data', (d: Buffer) => { stderr += d.toString() })
    return { child, lines: createInterface({ input: child.stdout! })[Symbol.asyncIterator](), stderr: () => stderr }
  }

  it('reads every path, from before Nix opens its WAL files to while it writes, without errors', async () => {
    const { exprFile, hashParts } = await prepare('parts', 12)
    const reader = asNobody(READER, [root, '60000', ...hashParts])
    const first = await reader.lines.next()
    assert.equal(first.value, 'ready', `reader did not start: ${reader.stderr()}`)

    await build(exprFile)
    const buildEnd = Date.now()
    const last = await reader.lines.next()
    assert.ok(last.done !== true, `reader gave no report: ${reader.stderr()}`)
    const report = JSON.parse(last.value) as { uid: number, found: number, firstFoundAt: number, roundsWithWal: number, startedOnSnapshot: boolean, liveAtEnd: boolean, errors: string[] }
    assert.equal(report.uid, 65534)
    assert.deepEqual(report.errors, [])
    assert.equal(report.found, hashParts.length, 'every path built was seen by the reader')
    assert.ok(report.firstFoundAt < buildEnd, 'the reader saw paths appear while nix-build was still writing')
    assert.ok(report.roundsWithWal > 0, 'the reader read while Nix had its write-ahead log open')
    assert.ok(report.startedOnSnapshot, 'with no Nix running, nobody could only read a copy at first')
    assert.ok(report.liveAtEnd, 'once Nix opened its WAL files the reader went live')
  })

  it('notices paths added by a Nix run that came and went between two reads of its copy', async () => {
    // The first test's live reader left WAL files behind; the next Nix to close removes them.
    await nix.run('nix-store', ['--store', root, '--verify'])
    const { exprFile, hashParts } = await prepare('later', 2)
    const asker = asNobody(ASKER, [root, ...hashParts])
    const ask = async (): Promise<{ found: number, snapshot: boolean }> => {
      asker.child.stdin?.write('\n')
      const line = await asker.lines.next()
      assert.ok(line.done !== true, `asker ended: ${asker.stderr()}`)
      return JSON.parse(line.value)
    }
    assert.deepEqual(await ask(), { found: 0, snapshot: true })
    await build(exprFile)
    assert.deepEqual(await ask(), { found: hashParts.length, snapshot: true })
    asker.child.stdin?.end()
  })
})
