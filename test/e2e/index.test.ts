/**
 * The peer index between real daemons in network namespaces: a path A builds after B
 * connected reaches B within the index interval, and B answers a path A's summary rules out
 * with a 404 without asking A (A, which would refuse it, logs no refusal). Against an A
 * without the index (an older peerix) B asks as before, and A's refusal shows that it did.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { NixEnv } from '../helpers/nix.js'
import { Lab, type LabHost } from '../helpers/netns.js'
import { LabDaemons, type DaemonProcess } from '../helpers/daemon.js'
import { parseStorePath } from '../../src/nix/store-path.js'
import { toNix32 } from '../../src/nix/nix32.js'
import { shortPeer } from '../../src/log.js'

const INDEX_INTERVAL_MS = 300
const mk = (name: string): string => `builtins.derivation { name = "${name}"; builder = "/bin/sh"; args = [ "-c" "echo ${name} ${Math.random()} > $out" ]; system = builtins.currentSystem; }`

describe('peer index between daemons (two hosts in network namespaces)', function () {
  this.timeout(180_000)
  let nix: NixEnv
  let lab: Lab
  let rootA: string
  let skA: string
  let pkA: string
  const daemons = new LabDaemons()

  before(async () => {
    nix = await NixEnv.create()
    lab = await Lab.create(2)
    rootA = await nix.initStore('hostA')
    await nix.build(rootA, mk('already-there'))
    ;({ secretFile: skA, publicKey: pkA } = await nix.generateKey('hostA-1'))
  })

  afterEach(async () => {
    await daemons.stopAll()
  })

  after(async () => {
    await lab?.cleanup()
    await nix?.cleanup()
  })

  async function daemonOn (host: LabHost, root: string, args: string[]): Promise<DaemonProcess> {
    return await daemons.start(lab, host, nix, ['--store-root', root, '--timeout', '3000', '--log-level', 'debug',
      '--index-interval', String(INDEX_INTERVAL_MS), ...args])
  }

  /** A serves everything but names matching *private* to every peer. */
  async function startPair (aArgs: string[] = []): Promise<{ a: DaemonProcess, b: DaemonProcess }> {
    const [hostA, hostB] = lab.hosts
    const a = await daemonOn(hostA, rootA, ['--signing-key-file', skA, '--serve', 'all', '--serve-deny', '*private*', ...aArgs])
    const b = await daemonOn(hostB, await nix.initStore(`hostB-${daemons.running.length}`), ['--trusted-public-keys', pkA])
    await b.waitFor(/peer found/)
    return { a, b }
  }

  /** The HTTP status and seconds B's shim took for a narinfo, asked from inside B's namespace. */
  async function narinfoStatus (b: DaemonProcess, hashPart: string): Promise<{ status: number, seconds: number }> {
    const { stdout } = await lab.exec(lab.hosts[1], 'curl', ['-s', '-o', '/dev/null', '-w', '%{http_code} %{time_total}', `${b.url}/${hashPart}.narinfo`])
    const [status, seconds] = stdout.trim().split(' ')
    return { status: Number(status), seconds: Number(seconds) }
  }

  const hashOf = (path: string): string => parseStorePath(path).hashPart

  it('a path A builds after B connected reaches B within the index interval; a path A would refuse is a 404 without asking A', async () => {
    const { a, b } = await startPair()
    const aId = a.peerId
    await b.waitFor(new RegExp(`index: ${shortPeer(aId).replace('…', '.')} full v\\d+`))

    const [fresh] = await nix.build(rootA, mk('fresh-after-connect'))
    const [secret] = await nix.build(rootA, mk('my-private-notes'))
    const built = Date.now()
    // B learns of it by A's next poll and delta; a miss before that is a quick 404, so poll B.
    let status = 0
    while (status !== 200 && Date.now() - built < 30_000) {
      status = (await narinfoStatus(b, hashOf(fresh))).status
      if (status !== 200) await new Promise(resolve => setTimeout(resolve, 100))
    }
    const reachedAfter = Date.now() - built
    assert.equal(status, 200, 'B never found the fresh path')
    console.log(`      the fresh path reached B ${reachedAfter} ms after nix-build returned (index interval ${INDEX_INTERVAL_MS} ms)`)
    // The interval plus the time to deliver it, with room for a loaded machine.
    assert.ok(reachedAfter < INDEX_INTERVAL_MS + 10_000, `reached B after ${reachedAfter} ms`)
    await lab.exec(lab.hosts[1], 'nix', ['copy', '--from', b.url, '--to', nix.storeRoot('client-fresh'), fresh, '--option', 'trusted-public-keys', pkA], { env: nix.env })
    await nix.run('nix', ['store', 'verify', '--store', nix.storeRoot('client-fresh'), '--trusted-public-keys', pkA, fresh])

    // By now A's summary has had several intervals to include `secret` if it ever would.
    await new Promise(resolve => setTimeout(resolve, 3 * INDEX_INTERVAL_MS))
    assert.equal((await narinfoStatus(b, hashOf(secret))).status, 404)
    const unknown = await narinfoStatus(b, toNix32(randomBytes(20)))
    assert.equal(unknown.status, 404)
    console.log(`      a miss answered by B in ${(unknown.seconds * 1000).toFixed(1)} ms (curl's total, inside B's namespace)`)
    // Give a refusal line time to show up if B had asked.
    await new Promise(resolve => setTimeout(resolve, 1000))
    assert.deepEqual(a.lines.filter(l => l.includes(`refused ${hashOf(secret)}`)), [], 'A was asked for a path its summary left out')
  })

  it('against an A without the index, B asks A for everything (and A refuses the private path)', async () => {
    const [secret] = await nix.build(rootA, mk('more-private-notes'))
    const { a, b } = await startPair(['--no-index'])
    await new Promise(resolve => setTimeout(resolve, 3 * INDEX_INTERVAL_MS))
    assert.equal(b.lines.filter(l => /index: \S+ full/.test(l)).length, 0, 'A sent no summary')
    assert.equal((await narinfoStatus(b, hashOf(secret))).status, 404)
    await a.waitFor(new RegExp(`refused ${hashOf(secret)} to \\S+: name matches --serve-deny`), 10_000)
    const [fresh] = await nix.build(rootA, mk('fresh-without-index'))
    assert.equal((await narinfoStatus(b, hashOf(fresh))).status, 200)
  })
})
