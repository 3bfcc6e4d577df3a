/**
 * `peerix daemon` refuses a configuration it cannot run with before it starts anything, in one
 * line naming the flag and the value (the built CLI, as a user or systemd runs it), and says
 * in its own words why it cannot listen where it was told to.
 */
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { createServer, type Server } from 'node:net'
import { join } from 'node:path'
import { CLI } from '../helpers/daemon.js'
import { NixEnv } from '../helpers/nix.js'

interface Run { code: number, stderr: string }

async function daemon (args: string[], env: NodeJS.ProcessEnv): Promise<Run> {
  return await new Promise(resolve => {
    execFile(process.execPath, [CLI, 'daemon', '--no-mdns', ...args], { timeout: 60_000, env }, (err, _stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : -1, stderr })
    })
  })
}

describe('peerix daemon: a configuration it cannot run with', function () {
  this.timeout(120_000)
  let nix: NixEnv
  let base: string[]

  before(async () => {
    nix = await NixEnv.create()
    base = ['--store-root', await nix.initStore('host'), '--state-dir', join(nix.dir, 'state'), '--listen', '127.0.0.1:0']
  })
  after(async () => { await nix?.cleanup() })

  const refusals: Array<[string[], RegExp]> = [
    [['--listen', 'foo bar:12304'], /^peerix: --listen "foo bar:12304": expected HOST:PORT/],
    [['--listen', '127.0.0.1:70000'], /^peerix: --listen "127.0.0.1:70000": expected HOST:PORT/],
    [['--state-dir', ''], /^peerix: --state-dir "": expected a path/],
    [['--store-root', ''], /^peerix: --store-root "": expected a path/],
    [['--signing-key-file', ' '], /^peerix: --signing-key-file " ": expected a path/],
    [['--priority', '5000'], /^peerix: --priority "5000": expected a whole number from 0 to 1000/],
    [['--p2p-listen', '/ip4/1.2.3.4/udp/5'], /^peerix: --p2p-listen "\/ip4\/1.2.3.4\/udp\/5": not a TCP multiaddr/],
    [['--trusted-public-keys', 'bogus'], /^peerix: --trusted-public-keys/]
  ]
  for (const [args, message] of refusals) {
    it(`refuses ${args.map(a => JSON.stringify(a)).join(' ')} in one line, exit 1`, async () => {
      const run = await daemon([...base, ...args], nix.env)
      assert.equal(run.code, 1, run.stderr)
      assert.match(run.stderr, message)
      assert.equal(run.stderr.trim().split('\n').length, 1, run.stderr)
    })
  }

  it('says which peer address it cannot listen on, and why, without libp2p\'s options or a stack', async () => {
    const taken: Server = createServer()
    await new Promise<void>(resolve => taken.listen(0, '127.0.0.1', resolve))
    const { port } = taken.address() as { port: number }
    try {
      const run = await daemon([...base, '--p2p-listen', `/ip4/127.0.0.1/tcp/${port}`], nix.env)
      assert.equal(run.code, 1, run.stderr)
      const last = run.stderr.trim().split('\n').at(-1) ?? ''
      assert.equal(last, `peerix: cannot listen for peers on /ip4/127.0.0.1/tcp/${port} (listen EADDRINUSE: address already in use 127.0.0.1:${port})`)
      assert.doesNotMatch(run.stderr, /faultTolerance|\n\s+at \S+ \(/)
    } finally {
      taken.close()
    }
  })
})
