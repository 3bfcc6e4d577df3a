/** The real daemon (dist/cli.js) told to stop by a signal. */
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { DAEMON_NODE_FLAGS } from '../../src/daemon/node-flags.js'
import { CLI, DaemonProcess } from '../helpers/daemon.js'
import { startFetchedPair } from '../helpers/daemon-pair.js'
import { NixEnv } from '../helpers/nix.js'

describe('daemon signals', function () {
  this.timeout(60_000)
  let nix: NixEnv
  let root: string
  const daemons: DaemonProcess[] = []

  before(async () => {
    nix = await NixEnv.create('peerix-signals-')
    root = await nix.initStore('store')
  })
  afterEach(async () => { await Promise.all(daemons.splice(0).map(async d => await d.stop())) })
  after(async () => { await nix?.cleanup() })

  it('stops cleanly on a SIGTERM that comes while it is still starting', async () => {
    // A `systemctl stop` right after the start: the signal handlers were installed only once
    // the daemon had started, and Node's default killed it halfway.
    const state = join(nix.dir, 'state')
    await mkdir(state, { recursive: true })
    const args = ['daemon', '--state-dir', state, '--store-root', root, '--listen', '127.0.0.1:0', '--p2p-listen', '/ip4/127.0.0.1/tcp/0', '--no-mdns']
    const daemon = new DaemonProcess(spawn(process.execPath, [...DAEMON_NODE_FLAGS, CLI, ...args], { env: { ...process.env, ...nix.env }, stdio: ['ignore', 'pipe', 'pipe'] }))
    daemons.push(daemon)
    const exited = new Promise<{ code: number | null, signal: string | null }>(resolve => daemon.child.once('exit', (code, signal) => { resolve({ code, signal }) }))
    // Logged while it starts, before its libp2p node and its HTTP server.
    await daemon.waitFor(/trusting narinfos signed by|no trusted public keys/)
    daemon.child.kill('SIGTERM')
    const { code, signal } = await exited
    const log = daemon.lines.join('\n')
    assert.equal(signal, null, `killed by ${String(signal)}, not stopped:\n${log}`)
    assert.equal(code, 0, log)
    assert.match(log, /SIGTERM: stopping/)
    assert.match(log, /info stopped/)
  })

  it('exits as soon as it has stopped, peers connected: no libp2p timer keeps it running', async () => {
    // libp2p refreshes the node's own addresses a second after its listeners close, and each
    // stop waited for that (about 1,020 ms from SIGTERM to exit; 17–28 ms without it).
    const pair = await startFetchedPair('signals')
    try {
      for (const daemon of [pair.b, pair.a]) {
        const began = Date.now()
        const code = await daemon.stop()
        const ms = Date.now() - began
        assert.equal(code, 0, daemon.lines.join('\n'))
        assert.ok(ms < 600, `exited ${ms} ms after SIGTERM:\n${daemon.lines.join('\n')}`)
      }
    } finally {
      await pair.cleanup()
    }
  })
})
