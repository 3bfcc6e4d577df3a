/** The real daemon (dist/cli.js) over a store of 100,000 paths, as a long-running service sees it. */
import assert from 'node:assert/strict'
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { NixEnv } from '../helpers/nix.js'
import { addSyntheticPaths } from '../helpers/large-store.js'
import { startDaemon, type DaemonProcess } from '../helpers/daemon.js'

describe('daemon over a store of 100,000 paths', function () {
  this.timeout(300_000)
  let nix: NixEnv
  let root: string
  const daemons: DaemonProcess[] = []

  before(async () => {
    nix = await NixEnv.create('peerix-large-')
    root = await nix.initStore('large')
    // Signed by cache.nixos.org's key name: the default policy checks every one of them.
    addSyntheticPaths(root, 100_000)
  })
  afterEach(async () => { await Promise.all(daemons.splice(0).map(async d => await d.stop(30_000))) })
  after(async () => { await nix?.cleanup() })

  it('stops at once on SIGTERM while its first summary of the store is still being built', async () => {
    // The first summary checks 100,000 signatures (5 s on a 2-core VM); a daemon told to stop
    // waited for it to finish before it closed the database and exited.
    const state = join(nix.dir, 'state')
    await mkdir(state, { recursive: true })
    const daemon = await startDaemon(['--state-dir', state, '--store-root', root, '--listen', '127.0.0.1:0', '--p2p-listen', '/ip4/127.0.0.1/tcp/0', '--no-mdns'], { env: nix.env })
    daemons.push(daemon)
    const exited = new Promise<number | null>(resolve => daemon.child.once('exit', (code) => { resolve(code) }))
    const sent = Date.now()
    daemon.child.kill('SIGTERM')
    const code = await exited
    const tookMs = Date.now() - sent
    const log = daemon.lines.join('\n')
    assert.equal(code, 0, log)
    assert.match(log, /info stopped/)
    assert.doesNotMatch(log, /summary of \d+ paths ready/, `the daemon finished the summary before it stopped (after ${tookMs} ms):\n${log}`)
    assert.ok(tookMs < 10_000, `stopping took ${tookMs} ms`)
  })
})
