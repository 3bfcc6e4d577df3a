/**
 * The heart of peerix, through real parts only: daemons in network namespaces with their own
 * chroot stores, and the real Nix client asking its host's daemon for what another host built.
 */
import assert from 'node:assert/strict'
import { NixEnv, sampleClosureExpr } from '../helpers/nix.js'
import { Lab, type LabHost } from '../helpers/netns.js'
import { LabDaemons, type DaemonProcess } from '../helpers/daemon.js'

describe('substitution over the LAN (two hosts in network namespaces, real Nix client)', function () {
  this.timeout(180_000)
  let nix: NixEnv
  let lab: Lab
  let rootA: string
  let top: string
  let closure: string[]
  let pkA: string
  let skA: string
  const daemons = new LabDaemons()

  before(async () => {
    nix = await NixEnv.create()
    lab = await Lab.create(3)
    rootA = nix.storeRoot('hostA')
    ;[top] = await nix.build(rootA, sampleClosureExpr('lan'))
    closure = await nix.closure(rootA, top)
    ;({ secretFile: skA, publicKey: pkA } = await nix.generateKey('hostA-1'))
  })

  afterEach(async () => {
    await daemons.stopAll()
  })

  after(async () => {
    await lab?.cleanup()
    await nix?.cleanup()
  })

  /** A daemon on `host` serving the chroot store `root`, with its own state dir. */
  async function daemonOn (host: LabHost, root: string, args: string[]): Promise<DaemonProcess> {
    return await daemons.start(lab, host, nix, ['--store-root', root, '--timeout', '1500', ...args])
  }

  /** `nix copy --from <host's peerix> --to <fresh store> top` run inside `host`'s namespace. */
  async function copyThrough (host: LabHost, daemon: DaemonProcess, trustedKey: string, dest: string): Promise<void> {
    await lab.exec(host, 'nix', ['copy', '--from', daemon.url, '--to', nix.storeRoot(dest), top,
      '--option', 'trusted-public-keys', trustedKey], { env: nix.env })
  }

  async function waitForPeers (d: DaemonProcess, count: number): Promise<void> {
    await d.waitFor(/peer found/, 20_000, count)
  }

  async function assertHasClosure (dest: string): Promise<void> {
    const got = await nix.closure(nix.storeRoot(dest), top)
    assert.deepEqual([...got].sort(), [...closure].sort())
    await nix.run('nix', ['store', 'verify', '--store', nix.storeRoot(dest), '--trusted-public-keys', pkA, '-r', top])
  }

  it('finds the other host by mDNS and brings a closure only A has into a third store, checking A\'s signatures', async () => {
    const [hostA, hostB] = lab.hosts
    await daemonOn(hostA, rootA, ['--signing-key-file', skA, '--serve', 'all'])
    const b = await daemonOn(hostB, await nix.initStore('hostB'), ['--trusted-public-keys', pkA])
    await waitForPeers(b, 1)
    await copyThrough(hostB, b, pkA, 'client-mdns')
    await assertHasClosure('client-mdns')
  })

  it('refuses A\'s paths when B does not trust A\'s key, and Nix refuses them when it does not', async () => {
    const [hostA, hostB] = lab.hosts
    await daemonOn(hostA, rootA, ['--signing-key-file', skA, '--serve', 'all'])
    const otherPk = (await nix.generateKey('other-1')).publicKey

    const untrusting = await daemonOn(hostB, await nix.initStore('hostB-untrusting'), ['--trusted-public-keys', otherPk])
    await waitForPeers(untrusting, 1)
    await assert.rejects(copyThrough(hostB, untrusting, otherPk, 'client-untrusting'), /there is no substituter that can build it/)
    await untrusting.stop()

    const trusting = await daemonOn(hostB, await nix.initStore('hostB-trusting'), ['--trusted-public-keys', pkA])
    await waitForPeers(trusting, 1)
    await assert.rejects(copyThrough(hostB, trusting, otherPk, 'client-nix-untrusting'), /lacks a valid signature|not signed/)
  })

  it('works with --no-mdns and a static --peer multiaddr', async () => {
    const [hostA, hostB] = lab.hosts
    await daemonOn(hostA, rootA, ['--signing-key-file', skA, '--serve', 'all', '--no-mdns'])
    const b = await daemonOn(hostB, await nix.initStore('hostB-static'), ['--trusted-public-keys', pkA, '--no-mdns', '--peer', `/ip4/${hostA.ip}/tcp/12305`])
    await waitForPeers(b, 1)
    await copyThrough(hostB, b, pkA, 'client-static')
    await assertHasClosure('client-static')
  })

  it('is not stopped by a third, untrusted daemon that answers with a narinfo signed by an unknown key', async () => {
    const [hostA, hostB, hostC] = lab.hosts
    const rootC = nix.storeRoot('hostC-untrusted')
    await nix.run('nix', ['copy', '--no-check-sigs', '--from', rootA, '--to', rootC, top])
    await daemonOn(hostA, rootA, ['--signing-key-file', skA, '--serve', 'all'])
    await daemonOn(hostC, rootC, ['--serve', 'all'])
    const b = await daemonOn(hostB, await nix.initStore('hostB-3'), ['--trusted-public-keys', pkA])
    await waitForPeers(b, 2)
    await copyThrough(hostB, b, pkA, 'client-3')
    await assertHasClosure('client-3')
  })

  it('by default serves paths only A has to --trusted-peer peers only (refused, not absent, to others)', async () => {
    const [hostA, hostB] = lab.hosts
    // Without the index B asks A, and A answers "refused" (with the index B would not even ask:
    // the summary A gives an untrusted peer leaves out what only A has).
    const b = await daemonOn(hostB, await nix.initStore('hostB-policy'), ['--trusted-public-keys', pkA, '--no-index'])
    const a = await daemonOn(hostA, rootA, ['--signing-key-file', skA])
    await waitForPeers(b, 1)
    await assert.rejects(copyThrough(hostB, b, pkA, 'client-policy-refused'))
    await a.waitFor(/refused \S+ to \S+: only this host has it/)
    await a.stop()

    await daemonOn(hostA, rootA, ['--signing-key-file', skA, '--trusted-peer', b.peerId])
    await b.waitFor(/peer lost/)
    await waitForPeers(b, 2)
    await copyThrough(hostB, b, pkA, 'client-policy-trusted')
    await assertHasClosure('client-policy-trusted')

    // B now holds A's private paths, signed by A's key, which B trusts. A host's signature does
    // not make a path public: B passes them on to no stranger.
    await daemons.stopAll()
    const [, , hostC] = lab.hosts
    const holder = await daemonOn(hostB, nix.storeRoot('client-policy-trusted'), ['--trusted-public-keys', pkA])
    const stranger = await daemonOn(hostC, await nix.initStore('hostC-stranger'), ['--trusted-public-keys', pkA, '--no-index'])
    await waitForPeers(stranger, 1)
    await assert.rejects(lab.exec(hostC, 'nix', ['copy', '--from', stranger.url, '--to', nix.storeRoot('client-stranger'), top, '--option', 'trusted-public-keys', pkA], { env: nix.env }))
    await holder.waitFor(/refused \S+ to \S+: only this host has it/)
  })

  it('with --listen on a LAN address, serves this host\'s Nix everything and other machines only what a public cache signed', async () => {
    const [hostA, hostB, hostC] = lab.hosts
    const b = await daemonOn(hostB, await nix.initStore('hostB-lan-listen'), ['--trusted-public-keys', pkA, '--listen', `${hostB.ip}:12399`])
    await daemonOn(hostA, rootA, ['--signing-key-file', skA, '--trusted-peer', b.peerId])
    await waitForPeers(b, 1)
    const url = `http://${hostB.ip}:12399`
    // Nix on B itself, through the LAN address: A's private closure, as B is A's trusted peer.
    await lab.exec(hostB, 'nix', ['copy', '--from', url, '--to', nix.storeRoot('client-lan-listen-b'), top, '--option', 'trusted-public-keys', pkA], { env: nix.env })
    await assertHasClosure('client-lan-listen-b')
    // Another machine: none of it (only a public cache's signature would do), and no status.
    const curl = async (path: string): Promise<string> => (await lab.exec(hostC, 'curl', ['-sS', '-w', ' %{http_code}', `${url}${path}`])).stdout
    assert.match(await curl(`/${top.slice('/nix/store/'.length, '/nix/store/'.length + 32)}.narinfo`), /for this host only: no public cache signed it\s+404$/)
    assert.match(await curl('/status'), /\s403$/)
    assert.match(await curl('/nix-cache-info'), /StoreDir: \/nix\/store[\s\S]* 200$/)
    await assert.rejects(lab.exec(hostC, 'nix', ['copy', '--from', url, '--to', nix.storeRoot('client-lan-listen-c'), top, '--option', 'trusted-public-keys', pkA], { env: nix.env }))
  })

  it('answers 404 for a path no peer has within the wait budget, also when a peer is frozen (SIGSTOP)', async () => {
    const [hostA, hostB, hostC] = lab.hosts
    await daemonOn(hostA, rootA, ['--signing-key-file', skA, '--serve', 'all'])
    const c = await daemonOn(hostC, await nix.initStore('hostC-frozen'), [])
    const b = await daemonOn(hostB, await nix.initStore('hostB-404'), ['--trusted-public-keys', pkA])
    await waitForPeers(b, 2)
    const missing = `${b.url}/${'0'.repeat(32)}.narinfo`
    const time = async (): Promise<{ code: string, ms: number }> => {
      const t0 = Date.now()
      const { stdout } = await lab.exec(hostB, 'curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code}', missing])
      return { code: stdout, ms: Date.now() - t0 }
    }
    const live = await time()
    assert.equal(live.code, '404')
    c.child.kill('SIGSTOP')
    const frozen = await time()
    assert.equal(frozen.code, '404')
    assert.ok(frozen.ms < 1500 + 1000, `404 took ${frozen.ms} ms with a frozen peer (budget 1500 ms)`)
  })
})
