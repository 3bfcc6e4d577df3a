/**
 * `--peers-only` through real daemons: A serves everything (`--serve all`) but lets only the
 * peer named by `--trusted-peer` connect. That peer's Nix gets A's closure; another daemon on
 * the same LAN, found by mDNS and dialling A as a static peer too, never gets a connection, so
 * its Nix gets nothing: the connection gater, not the serving policy, is what stops it.
 */
import assert from 'node:assert/strict'
import { NixEnv, sampleClosureExpr } from '../helpers/nix.js'
import { Lab, type LabHost } from '../helpers/netns.js'
import { LabDaemons, type DaemonProcess } from '../helpers/daemon.js'
import { shortPeer } from '../../src/log.js'

describe('--peers-only through real daemons (three hosts in namespaces)', function () {
  this.timeout(180_000)
  let nix: NixEnv
  let lab: Lab
  let top: string
  let pkA: string
  let skA: string
  const daemons = new LabDaemons()

  before(async () => {
    nix = await NixEnv.create()
    lab = await Lab.create(3)
    ;[top] = await nix.build(nix.storeRoot('hostA'), sampleClosureExpr('peers-only'))
    ;({ secretFile: skA, publicKey: pkA } = await nix.generateKey('hostA-1'))
  })

  after(async () => {
    await daemons.stopAll()
    await lab?.cleanup()
    await nix?.cleanup()
  })

  async function daemonOn (host: LabHost, root: string, args: string[]): Promise<DaemonProcess> {
    return await daemons.start(lab, host, nix, ['--store-root', root, '--timeout', '2000', ...args])
  }

  async function copyThrough (host: LabHost, d: DaemonProcess, dest: string): Promise<void> {
    await lab.exec(host, 'nix', ['copy', '--from', d.url, '--to', nix.storeRoot(dest), top, '--option', 'trusted-public-keys', pkA], { env: nix.env })
  }

  it('the trusted peer connects and fetches; an untrusted daemon is never connected and gets nothing', async () => {
    const [hostA, hostB, hostC] = lab.hosts
    const staticA = ['--peer', `/ip4/${hostA.ip}/tcp/12305`]
    const trusted = await daemonOn(hostB, await nix.initStore('hostB'), ['--trusted-public-keys', pkA, ...staticA])
    const untrusted = await daemonOn(hostC, await nix.initStore('hostC'), ['--trusted-public-keys', pkA, ...staticA])
    const a = await daemonOn(hostA, nix.storeRoot('hostA'), ['--signing-key-file', skA, '--serve', 'all', '--peers-only', '--trusted-peer', trusted.peerId])

    await trusted.waitFor(new RegExp(`peer found ${shortPeer(a.peerId)}`), 30_000)
    await copyThrough(hostB, trusted, 'client-trusted')
    await nix.run('nix', ['store', 'verify', '--store', nix.storeRoot('client-trusted'), '--trusted-public-keys', pkA, '-r', top])

    // C's dials reach A's TCP port and finish Noise, then A's gater drops them: C sees its
    // static peer come and go, never identified as a peerix peer.
    await untrusted.waitFor(/static peer \S+ \(\S+\) lost; redialling/, 30_000, 2)
    const code = (await lab.exec(hostC, 'curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code}', `${untrusted.url}/${top.slice(11, 43)}.narinfo`])).stdout
    assert.equal(code, '404')
    await assert.rejects(copyThrough(hostC, untrusted, 'client-untrusted'))
    assert.ok(!untrusted.lines.some(l => l.includes(`peer found ${shortPeer(a.peerId)}`)), `C was connected to A:\n${untrusted.lines.join('\n')}`)
    assert.ok(!a.lines.some(l => l.includes(`peer found ${shortPeer(untrusted.peerId)}`)), `A accepted C:\n${a.lines.join('\n')}`)
    assert.ok(!a.lines.some(l => /refused .* to /.test(l)), 'C got as far as a request: the gater should have stopped it before')
  })
})
