/**
 * A host restarting its daemon (nixos-rebuild switch, systemctl restart) while another host's
 * Nix fetches a NAR only it has: the NAR comes once the daemon is back, whether its transfer
 * had sent bytes or not yet any. A 404 there is final for Nix: it drops the substitute and
 * builds the path (or fails, when it cannot), though the peer is back a second later. The
 * same for a narinfo asked while the only host that has the path restarts.
 */
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { NixEnv } from '../helpers/nix.js'
import { Lab, type LabHost } from '../helpers/netns.js'
import { LabDaemons, type DaemonProcess } from '../helpers/daemon.js'
import { parseStorePath } from '../../src/nix/store-path.js'

const BIG_MIB = 20

describe('a peer restarting while Nix asks for a path only it has (real daemons, real Nix)', function () {
  this.timeout(240_000)
  let nix: NixEnv
  let lab: Lab
  let big: string
  /** Small paths only A has, asked once each. */
  const small: string[] = []
  let key: { secretFile: string, publicKey: string }
  const daemons = new LabDaemons()

  before(async () => {
    nix = await NixEnv.create()
    lab = await Lab.create(2)
    const file = join(nix.dir, 'big.bin')
    await nix.run('sh', ['-c', `head -c ${BIG_MIB}M /dev/urandom > ${file}`])
    big = (await nix.run('nix-store', ['--store', nix.storeRoot('hostA'), '--add', file])).stdout.trim()
    key = await nix.generateKey('hostA-1')
    for (let i = 0; i < 3; i++) {
      const f = join(nix.dir, `small-${i}`)
      await nix.run('sh', ['-c', `head -c 100000 /dev/urandom > ${f}`])
      small.push((await nix.run('nix-store', ['--store', nix.storeRoot('hostA'), '--add', f])).stdout.trim())
    }
  })

  afterEach(async () => {
    await daemons.stopAll()
  })

  after(async () => {
    await lab?.cleanup()
    await nix?.cleanup()
  })

  async function daemon (host: LabHost, state: string, args: string[]): Promise<DaemonProcess> {
    return await daemons.start(lab, host, nix, args, state)
  }

  /** A's daemon; the same state dir each time, so the same peer ID. */
  const peerA = async (): Promise<DaemonProcess> => await daemon(lab.hosts[0], 'A', ['--store-root', nix.storeRoot('hostA'), '--signing-key-file', key.secretFile, '--serve', 'all'])

  it('A killed before the first byte of the NAR and started again: Nix gets the NAR, no 404', async () => {
    const [, hostB] = lab.hosts
    let a = await peerA()
    const b = await daemon(hostB, 'B', ['--store-root', await nix.initStore('hostB'), '--trusted-public-keys', key.publicKey])
    await b.waitFor(/peer found/, 30_000)
    const { hashPart } = parseStorePath(big)
    const curl = async (path: string): Promise<string> => (await lab.exec(hostB, 'curl', ['-sS', '--max-time', '10', `${b.url}${path}`])).stdout
    // B learns A's narinfo while A answers; then A freezes, so that the NAR Nix asks for next
    // is asked of A and none of it comes
    assert.match(await curl(`/${hashPart}.narinfo`), /^StorePath: /m)
    a.child.kill('SIGSTOP')

    const fetch = lab.spawn(hostB, 'timeout', ['120', 'nix-store', '--store', nix.storeRoot('client'), '--realise', big,
      '--option', 'substituters', b.url, '--option', 'trusted-public-keys', key.publicKey], { env: nix.env })
    let stderr = ''
    fetch.stderr?.on('data', (d: Buffer) => { stderr += d.toString() })
    const done = new Promise<number | null>(resolve => fetch.once('exit', code => { resolve(code) }))
    let ended = false
    void done.then(() => { ended = true })

    // B's transfer of the NAR has begun, at byte 0 (read off its /status)
    for (let t0 = Date.now(); ;) {
      assert.ok(!ended, `Nix ended before B asked A for the NAR: ${stderr}`)
      assert.ok(Date.now() - t0 < 30_000, 'B never started the NAR transfer')
      const status = JSON.parse(await curl('/status')) as { transfers: Array<{ hashPart: string, received: number }> }
      const transfer = status.transfers.find(t => t.hashPart === hashPart)
      if (transfer !== undefined) { assert.equal(transfer.received, 0); break }
      await new Promise(resolve => setTimeout(resolve, 100))
    }
    // A dies (its connections close) and is started again, as systemd would
    a.child.kill('SIGKILL')
    await new Promise(resolve => a.child.once('exit', resolve))
    a = await peerA()

    assert.equal(await done, 0, `nix-store --realise failed: ${stderr}`)
    assert.doesNotMatch(stderr, /does not exist in binary cache/)
    const got = JSON.parse((await nix.run('nix', ['path-info', '--json', '--store', nix.storeRoot('client'), big])).stdout)[0]
    const want = JSON.parse((await nix.run('nix', ['path-info', '--json', '--store', nix.storeRoot('hostA'), big])).stdout)[0]
    assert.equal(got.narHash, want.narHash)
    await nix.run('nix-store', ['--store', nix.storeRoot('client'), '--verify-path', big])
  })

  it('a narinfo asked while A restarts waits for A (Nix gets the path); once A is gone for good, one wait, then 404s at once', async () => {
    const [, hostB] = lab.hosts
    let a = await peerA()
    const b = await daemon(hostB, 'B-narinfo', ['--store-root', await nix.initStore('hostB-narinfo'), '--trusted-public-keys', key.publicKey])
    await b.waitFor(/peer found/, 30_000)
    await b.waitFor(/index: summary/)
    // past B's startup grace (STARTUP_GRACE_MS), during which a host without peers waits anyway
    await new Promise(resolve => setTimeout(resolve, 6000))
    const realise = async (path: string): Promise<{ code: number, stderr: string, ms: number }> => await new Promise(resolve => {
      const t0 = Date.now()
      const child = lab.spawn(hostB, 'timeout', ['60', 'nix-store', '--store', nix.storeRoot('client-narinfo'), '--realise', path,
        '--option', 'substituters', b.url, '--option', 'trusted-public-keys', key.publicKey], { env: nix.env })
      let stderr = ''
      child.stderr?.on('data', (d: Buffer) => { stderr += d.toString() })
      child.once('exit', code => { resolve({ code: code ?? -1, stderr, ms: Date.now() - t0 }) })
    })

    // A restarts (stopped as systemd stops it, started again) while Nix on B asks for its path
    await a.stop()
    await b.waitFor(/peer lost/)
    const during = realise(small[0])
    a = await peerA()
    const got = await during
    assert.equal(got.code, 0, `nix-store --realise failed while A restarted: ${got.stderr}`)
    await nix.run('nix-store', ['--store', nix.storeRoot('client-narinfo'), '--verify-path', small[0]])

    // A gone for good: the first path only it had waits for it (5 s) once, the next not at all
    await b.waitFor(/peer found/, 30_000, 2)
    await a.stop()
    await b.waitFor(/peer lost/, 10_000, 2)
    const first = await realise(small[1])
    assert.notEqual(first.code, 0)
    assert.match(first.stderr, /path .* is required, but there is no substituter that can build it|does not exist|not valid|don.t know how to build/, first.stderr)
    assert.ok(first.ms < 15_000, `the first path of a peer gone for good took ${first.ms} ms`)
    const second = await realise(small[2])
    assert.notEqual(second.code, 0)
    assert.ok(second.ms < first.ms - 2000, `the second path of a peer gone for good took ${second.ms} ms, the first ${first.ms} ms`)
    console.log(`      A gone for good: Nix gave up after ${first.ms} ms, then ${second.ms} ms`)
  })
})
