/**
 * Lying peers through real daemons and the real Nix client: a liar (liar-peer.fixture.ts) holds
 * the same genuinely signed paths as an honest host and lies about each one differently. Its
 * answers are detected and dropped, the next peer is used, the event is logged, and Nix never
 * imports a wrong path.
 */
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { NixEnv } from '../helpers/nix.js'
import { Lab } from '../helpers/netns.js'
import { LabDaemons, type DaemonProcess } from '../helpers/daemon.js'
import { parseStorePath } from '../../src/nix/store-path.js'
import { NARINFO_CACHE_MS } from '../../src/substituter/narinfo-cache.js'
import type { LiarArgs, Lie } from './liar-peer.fixture.js'

const LIES: Lie[] = ['other-path', 'nar-size', 'wrong-bytes', 'small-wrong-bytes', 'short', 'endless', 'stall']
const MID_STREAM: Lie[] = ['short', 'endless', 'stall']
const sleep = async (ms: number): Promise<void> => { await new Promise(resolve => setTimeout(resolve, ms)) }
const REPO = fileURLToPath(new URL('../..', import.meta.url))

describe('lying peers (real daemons in namespaces, a liar with genuinely signed paths, real Nix client)', function () {
  this.timeout(240_000)
  let nix: NixEnv
  let lab: Lab
  let pkA: string
  let source: string
  let rootA: string
  /** One store path per lie, in LIES order. */
  const paths: Record<string, string> = {}
  const hashOf = (lie: Lie): string => parseStorePath(paths[lie]).hashPart
  let b: DaemonProcess
  const liarLines: string[] = []
  const daemons = new LabDaemons()

  before(async () => {
    nix = await NixEnv.create()
    lab = await Lab.create(3)
    const [hostA, hostB, hostC] = lab.hosts
    const keyA = await nix.generateKey('hostA-1')
    const skA = keyA.secretFile
    pkA = keyA.publicKey

    // A path per lie, of a few MiB each (of 10 kB for the small NAR), signed by A's key in a
    // source store the liar copies whole.
    source = nix.storeRoot('source')
    for (const [i, lie] of LIES.entries()) {
      const file = join(nix.dir, `${lie}.bin`)
      await nix.run('sh', ['-c', `head -c ${(lie === 'small-wrong-bytes' ? 10_000 : 2 * 1024 * 1024) + 1000 * i + 7} /dev/urandom > ${file}`])
      paths[lie] = (await nix.run('nix-store', ['--store', source, '--add', file])).stdout.trim()
    }
    await nix.run('nix', ['store', 'sign', '--store', source, '--key-file', skA, ...Object.values(paths)])
    const rootC = nix.storeRoot('liar')
    await nix.run('nix', ['copy', '--no-check-sigs', '--from', source, '--to', rootC, ...Object.values(paths)])
    rootA = await nix.initStore('hostA')

    const args: LiarArgs = { storeRoot: rootC, lies: Object.fromEntries(LIES.map(lie => [hashOf(lie), lie])) }
    const liar = lab.spawn(hostC, process.execPath, ['--import', 'tsx', fileURLToPath(new URL('./liar-peer.fixture.ts', import.meta.url)), JSON.stringify(args)], { cwd: REPO, env: nix.env })
    let buf = ''
    liar.stdout?.on('data', (d: Buffer) => {
      buf += d.toString()
      const lines = buf.split('\n')
      buf = lines.pop() as string
      liarLines.push(...lines)
    })

    for (const [host, args] of [[hostA, ['--store-root', rootA, '--signing-key-file', skA, '--serve', 'all']], [hostB, ['--store-root', await nix.initStore('hostB'), '--trusted-public-keys', pkA]]] as const) {
      await daemons.start(lab, host, nix, ['--timeout', '3000', ...args])
    }
    b = daemons.running[1]
    await b.waitFor(/peer found/, 30_000, 2)
  })

  after(async () => {
    await daemons.stopAll()
    await lab?.cleanup()
    await nix?.cleanup()
  })

  async function curlNarInfo (lie: Lie): Promise<string> {
    const { stdout } = await lab.exec(lab.hosts[1], 'curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code}', `${b.url}/${hashOf(lie)}.narinfo`])
    return stdout
  }

  async function copy (dest: string, lies: Lie[]): Promise<void> {
    await lab.exec(lab.hosts[1], 'nix', ['copy', '--from', b.url, '--to', nix.storeRoot(dest), ...lies.map(l => paths[l]),
      '--option', 'trusted-public-keys', pkA], { env: nix.env })
  }

  async function valid (dest: string, lie: Lie): Promise<boolean> {
    return await nix.run('nix-store', ['--store', nix.storeRoot(dest), '--check-validity', paths[lie]]).then(() => true, () => false)
  }

  /** Gives an honest host (A) the paths, as a host that downloads them later would. */
  async function honestHostGets (lies: Lie[]): Promise<void> {
    await nix.run('nix', ['copy', '--no-check-sigs', '--from', source, '--to', rootA, ...lies.map(l => paths[l])])
  }

  it('drops a narinfo for another path and one whose NarSize its signature does not cover: 404, logged', async () => {
    assert.equal(await curlNarInfo('other-path'), '404')
    assert.equal(await curlNarInfo('nar-size'), '404')
    await b.waitFor(new RegExp(`answer dropped for ${hashOf('other-path')}: narinfo is for /nix/store/\\S+, not the requested hash`))
    await b.waitFor(new RegExp(`answer dropped for ${hashOf('nar-size')}: narinfo for \\S+ has no valid signature by a trusted key`))
    assert.ok(liarLines.some(l => l.includes('"lied":"other-path"')) && liarLines.some(l => l.includes('"lied":"nar-size"')))
  })

  it('cuts the connection on a NAR with a flipped byte: Nix imports nothing, B logs the hash mismatch', async () => {
    await assert.rejects(copy('client-wrong', ['wrong-bytes']))
    assert.equal(await valid('client-wrong', 'wrong-bytes'), false)
    await b.waitFor(new RegExp(`nar ${hashOf('wrong-bytes')}: NAR ${hashOf('wrong-bytes')} hashed to sha256:\\S+, expected sha256:`))
  })

  it('drops a small NAR with a flipped byte sent with its narinfo: Nix imports nothing, B logs it', async () => {
    await assert.rejects(copy('client-wrong-small', ['small-wrong-bytes']))
    assert.equal(await valid('client-wrong-small', 'small-wrong-bytes'), false)
    await b.waitFor(new RegExp(`sent a wrong NAR for ${hashOf('small-wrong-bytes')}: the NAR sent with the narinfo hashes to sha256:\\S+, not NarHash sha256:`))
    assert.equal(liarLines.filter(l => l.includes('"lied":"small-wrong-bytes"')).length, 1, 'the liar is asked for that NAR once')
  })

  it('once an honest host has those paths, Nix gets them whole and verified; the liar is not used for them', async () => {
    // B learns of the liar's offers of the mid-stream lies first, so that the liar is asked first in the next test.
    for (const lie of MID_STREAM) assert.equal(await curlNarInfo(lie), '200')
    await honestHostGets(LIES)
    // B answers Nix's repeated narinfo requests from a 10 s cache, and A announces new paths in
    // its summary within 2 s: after this, B asks A too.
    await sleep(NARINFO_CACHE_MS + 500)
    for (let i = 0; await curlNarInfo('other-path') !== '200'; i++) {
      assert.ok(i < 40, 'B never learnt that A has the paths')
      await sleep(500)
    }
    const lies = (lie: Lie): number => liarLines.filter(l => l.includes(`"lied":"${lie}"`)).length
    const liesBefore = [lies('wrong-bytes'), lies('small-wrong-bytes')]
    const honest: Lie[] = ['other-path', 'nar-size', 'wrong-bytes', 'small-wrong-bytes']
    await copy('client-honest', honest)
    await nix.run('nix', ['store', 'verify', '--store', nix.storeRoot('client-honest'), '--trusted-public-keys', pkA, ...honest.map(l => paths[l])])
    assert.deepEqual([lies('wrong-bytes'), lies('small-wrong-bytes')], liesBefore, 'the liar was asked for a NAR it got wrong')
  })

  /** The peers B asks now (connected, speaking peerix), from its /status. */
  async function askedByB (): Promise<string[]> {
    const { stdout } = await lab.exec(lab.hosts[1], 'curl', ['-sS', `${b.url}/status`])
    return (JSON.parse(stdout) as { peers: Array<{ id: string, peerix: boolean }> }).peers.filter(p => p.peerix).map(p => p.id)
  }

  it('a short, an endless and a stalled NAR from the liar continue on the honest host from the same byte', async () => {
    // now both answer, and B remembers the liar's offers before A's
    for (const lie of MID_STREAM) assert.equal(await curlNarInfo(lie), '200')
    // one lie at a time, each once B has both peers again: a lie may cost the liar its
    // connection (B resets the stream while junk is in flight), and until it is back B rightly
    // asks A alone
    for (const lie of MID_STREAM) {
      for (let i = 0; (await askedByB()).length < 2; i++) {
        assert.ok(i < 60, 'the liar did not come back')
        await sleep(500)
      }
      await copy(`client-midstream-${lie}`, [lie])
      await nix.run('nix', ['store', 'verify', '--store', nix.storeRoot(`client-midstream-${lie}`), '--trusted-public-keys', pkA, paths[lie]])
      assert.ok(liarLines.some(l => l.includes(`"lied":"${lie}"`)), `the liar was never asked for the ${lie} NAR; B logged:\n${b.lines.filter(l => l.includes(hashOf(lie))).join('\n')}`)
    }
    await b.waitFor(new RegExp(`nar ${hashOf('short')}: peer \\S+ failed at byte \\d+ of \\d+: the stream ended early`))
    await b.waitFor(new RegExp(`nar ${hashOf('stall')}: peer \\S+ failed at byte \\d+ of \\d+: no data for \\d+ ms`))
    for (const lie of ['short', 'stall'] as const) await b.waitFor(new RegExp(`nar ${hashOf(lie)}: continuing at byte [1-9]\\d* of \\d+ from peer`))
    // The endless liar announces NarSize and keeps sending: B stops at NarSize, so the extra
    // bytes are seen (and the peer dropped) only when they arrive before B has all it needs.
    // Either way Nix got exactly the signed bytes (verified above).
    const endless = b.lines.filter(l => l.includes(`nar ${hashOf('endless')}: peer`))
    assert.ok(endless.every(l => /sent more than NarSize|more than the \d+ bytes/.test(l)), endless.join('\n'))
  })
})
