/**
 * scripts/test.sh, the one test command, with npm, npx and the tools it looks for stubbed:
 * when it reinstalls node_modules and when it must not.
 */
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { chmod, copyFile, mkdir, mkdtemp, readFile, rm, symlink, utimes, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'

const run = promisify(execFile)
const SCRIPT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'scripts', 'test.sh')
/** Every command the script runs or looks for; each stub only notes that it was called. */
const STUBS = ['npm', 'npx', 'apt-get', 'nix-store', 'ip', 'nft', 'curl', 'gcc', 'systemd-analyze', 'setpriv']

describe('scripts/test.sh', function () {
  this.timeout(30_000)
  let dir: string
  beforeEach(async () => { dir = await mkdtemp(join(tmpdir(), 'peerix-test-sh-')) })
  afterEach(async () => { await rm(dir, { recursive: true, force: true }) })

  /** A checkout in `dir`/checkout whose lock file is newer than `modules`' record of it; returns the commands run. */
  async function runIn (setup: (checkout: string) => Promise<void>): Promise<{ calls: string[], stderr: string }> {
    const checkout = join(dir, 'checkout')
    const bin = join(dir, 'bin')
    await mkdir(join(checkout, 'scripts'), { recursive: true })
    await mkdir(bin)
    await copyFile(SCRIPT, join(checkout, 'scripts', 'test.sh'))
    for (const name of STUBS) {
      await writeFile(join(bin, name), `#!/bin/sh\necho "${name} $*" >> ${join(dir, 'calls')}\n`)
      await chmod(join(bin, name), 0o755)
    }
    await setup(checkout)
    await writeFile(join(checkout, 'package-lock.json'), '{}\n')
    const { stderr } = await run('bash', [join(checkout, 'scripts', 'test.sh'), 'test/one.test.ts'], { env: { ...process.env, PATH: `${bin}:${process.env.PATH ?? ''}` } })
    const calls = (await readFile(join(dir, 'calls'), 'utf8').catch(() => '')).split('\n').filter(l => l !== '')
    return { calls, stderr }
  }

  /** node_modules as npm leaves it, its record of the lock an hour old. */
  async function modules (at: string): Promise<void> {
    await mkdir(at, { recursive: true })
    await writeFile(join(at, '.package-lock.json'), '{}\n')
    const hourAgo = new Date(Date.now() - 3_600_000)
    await utimes(join(at, '.package-lock.json'), hourAgo, hourAgo)
  }

  it('reinstalls a checkout\'s own node_modules that is older than the lock file', async () => {
    const { calls } = await runIn(async checkout => { await modules(join(checkout, 'node_modules')) })
    assert.ok(calls.includes('npm ci --no-audit --no-fund'), calls.join('\n'))
    assert.ok(calls.includes('npx mocha test/one.test.ts'), calls.join('\n'))
  })

  it('leaves alone a node_modules that links to another checkout\'s (npm ci would empty it through the link)', async () => {
    const shared = join(dir, 'main', 'node_modules')
    const { calls, stderr } = await runIn(async checkout => {
      await modules(shared)
      await symlink(shared, join(checkout, 'node_modules'))
    })
    assert.ok(!calls.some(c => c.startsWith('npm ci')), calls.join('\n'))
    assert.ok(calls.includes('npx mocha test/one.test.ts'), calls.join('\n'))
    assert.match(stderr, /node_modules links to .*main\/node_modules, older than package-lock.json: not reinstalled here/)
  })
})
