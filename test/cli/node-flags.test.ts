/**
 * The daemon's V8 flags (src/daemon/node-flags.ts) are given wherever a daemon starts, since
 * V8 reads them only at process start: the `peerix` shebang, the NixOS unit's NODE_OPTIONS —
 * and they take effect: a daemon started through the shebang runs with them. Those
 * NODE_OPTIONS refuses the daemon sets on itself as it starts.
 */
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { chmod, readFile, writeFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { promisify } from 'node:util'
import { DAEMON_NODE_FLAGS, DAEMON_RUNTIME_V8_FLAGS } from '../../src/daemon/node-flags.js'
import { evaluateModule } from '../nixos/evaluate-module.js'
import { NixEnv } from '../helpers/nix.js'

const REPO = resolve(import.meta.dirname, '../..')
const run = promisify(execFile)

describe('the daemon\'s V8 flags', function () {
  this.timeout(120_000)
  let nix: NixEnv
  before(async () => { nix = await NixEnv.create('peerix-node-flags-') })
  after(async () => { await nix?.cleanup() })

  it('are in the shebang of `peerix`, source and build', async () => {
    const shebang = `#!/usr/bin/env -S node ${DAEMON_NODE_FLAGS.join(' ')}`
    assert.equal((await readFile(join(REPO, 'src/cli.ts'), 'utf8')).split('\n')[0], shebang)
    assert.equal((await readFile(join(REPO, 'dist/cli.js'), 'utf8')).split('\n')[0], shebang)
  })

  it('reach V8 when `peerix` is run as a program', async () => {
    // npm makes a package's bin executable when it installs it; the build leaves it 0644
    const cli = join(REPO, 'dist/cli.js')
    await chmod(cli, 0o755)
    const probe = join(nix.dir, 'probe.cjs')
    await writeFile(probe, 'process.on("exit", () => { process.stderr.write("execArgv=" + JSON.stringify(process.execArgv) + "\\n") })\n')
    const { stderr } = await run(cli, ['--version'], { env: { ...process.env, NODE_OPTIONS: `--require ${probe}` } })
    const line = stderr.split('\n').find(l => l.startsWith('execArgv='))
    assert.ok(line !== undefined, `no execArgv line in ${JSON.stringify(stderr)}`)
    assert.deepEqual(JSON.parse(line.slice('execArgv='.length)), [...DAEMON_NODE_FLAGS])
  })

  it('set at run time are flags V8 knows, and the daemon sets them', async () => {
    // V8 ignores an unknown flag given at run time and only prints a complaint
    const flags = join(REPO, 'dist/daemon/node-flags.js')
    const { stdout, stderr } = await run(process.execPath, ['--input-type=module', '-e', `(await import(${JSON.stringify(flags)})).applyRuntimeV8Flags()`])
    assert.doesNotMatch(stdout + stderr, /unrecognized|Error/i)
    assert.ok(DAEMON_RUNTIME_V8_FLAGS.length > 0)
    const daemon = await readFile(join(REPO, 'src/daemon/index.ts'), 'utf8')
    assert.match(daemon, /startDaemon \([^)]*\)[^{]*\{\n\s*applyRuntimeV8Flags\(\)/, 'startDaemon sets them before anything else')
  })

  it('are in the NixOS unit\'s NODE_OPTIONS', async () => {
    const { serviceConfig } = await evaluateModule(nix, nix.dir, 'services.peerix.enable = true;')
    assert.deepEqual(serviceConfig.Environment, [`NODE_OPTIONS=${DAEMON_NODE_FLAGS.join(' ')}`])
  })
})
