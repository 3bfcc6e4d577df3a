/**
 * A peer that dies in the middle of a large NAR: the transfer continues from the same byte on
 * another host that has the path, and when no host can, the connection is cut so Nix never
 * takes a short NAR for a whole one.
 */
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { rm } from 'node:fs/promises'
import { join } from 'node:path'
import { NixEnv } from '../helpers/nix.js'
import { Lab, type LabHost } from '../helpers/netns.js'
import { LabDaemons, type DaemonProcess } from '../helpers/daemon.js'
import { parseNarInfo } from '../../src/nix/narinfo.js'
import { toNarHash } from '../../src/nix/hash.js'
import { parseStorePath } from '../../src/nix/store-path.js'

const BIG_MIB = 200

async function sha256File (file: string): Promise<string> {
  const hash = createHash('sha256')
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer)
  return toNarHash(`sha256:${hash.digest('hex')}`)
}

describe('a peer killed in the middle of a large NAR (three hosts, real daemons)', function () {
  this.timeout(300_000)
  let nix: NixEnv
  let lab: Lab
  let big: string
  let keys: string
  const roots: Record<string, string> = {}
  const daemons = new LabDaemons()

  before(async () => {
    nix = await NixEnv.create()
    lab = await Lab.create(3)
    const file = join(nix.dir, 'big.bin')
    await nix.run('sh', ['-c', `head -c ${BIG_MIB}M /dev/urandom > ${file}`])
    roots.A = nix.storeRoot('hostA')
    roots.C = nix.storeRoot('hostC')
    big = (await nix.run('nix-store', ['--store', roots.A, '--add', file])).stdout.trim()
    await nix.run('nix-store', ['--store', roots.C, '--add', file])
    await rm(file)
    const pks: string[] = []
    for (const h of ['A', 'C']) pks.push((await nix.generateKey(`host${h}-1`)).publicKey)
    keys = pks.join(' ')
  })

  afterEach(async () => { await daemons.stopAll() })
  after(async () => { await lab?.cleanup(); await nix?.cleanup() })

  async function daemonOn (host: LabHost, args: string[]): Promise<DaemonProcess> {
    return await daemons.start(lab, host, nix, ['--serve', 'all', ...args])
  }

  /** Three daemons: A and C have the big path, B has nothing and trusts both. */
  async function threeHosts (): Promise<{ a: DaemonProcess, b: DaemonProcess, c: DaemonProcess }> {
    const [hostA, hostB, hostC] = lab.hosts
    const a = await daemonOn(hostA, ['--store-root', roots.A, '--signing-key-file', join(nix.dir, 'hostA-1.sec')])
    const c = await daemonOn(hostC, ['--store-root', roots.C, '--signing-key-file', join(nix.dir, 'hostC-1.sec')])
    const b = await daemonOn(hostB, ['--store-root', await nix.initStore(`hostB-${daemons.running.length}`), '--trusted-public-keys', keys])
    await b.waitFor(/peer found/, 20_000, 2)
    return { a, b, c }
  }

  /** Asks B's shim for the narinfo, then downloads the NAR slowly with curl into `out`. */
  async function slowDownload (b: DaemonProcess, out: string): Promise<{ narHash: string, narSize: number, curl: Promise<{ code: number, stderr: string }> }> {
    const hostB = lab.hosts[1]
    const { hashPart } = parseStorePath(big)
    const text = (await lab.exec(hostB, 'curl', ['-sSf', `${b.url}/${hashPart}.narinfo`])).stdout
    const info = parseNarInfo(text)
    const child = lab.spawn(hostB, 'curl', ['-sS', '--limit-rate', '40M', '-o', out, `${b.url}/${info.url}`])
    let stderr = ''
    child.stderr?.on('data', (d: Buffer) => { stderr += d.toString() })
    const curl = new Promise<{ code: number, stderr: string }>((resolve) => child.once('exit', (code) => { resolve({ code: code ?? -1, stderr }) }))
    return { narHash: info.narHash, narSize: info.narSize, curl }
  }

  /** The daemon among `candidates` that logged serving the big path. */
  async function servingOne (candidates: DaemonProcess[]): Promise<DaemonProcess> {
    const { hashPart } = parseStorePath(big)
    return await Promise.any(candidates.map(async d => { await d.waitFor(new RegExp(`serving ${hashPart}`), 30_000); return d }))
  }

  it('continues from the same byte on another peer that has it: the NAR arrives whole and hashes right', async () => {
    const { a, b, c } = await threeHosts()
    const out = join(nix.dir, 'failover.nar')
    const dl = await slowDownload(b, out)
    const victim = await servingOne([a, c])
    await new Promise(resolve => setTimeout(resolve, 1500))
    victim.child.kill('SIGKILL')
    const { code, stderr } = await dl.curl
    assert.equal(code, 0, `curl failed: ${stderr}`)
    assert.equal(await sha256File(out), dl.narHash)
    await b.waitFor(/continuing at byte [1-9]\d* of/)
  })

  it('cuts the connection when no peer can finish, so the client sees a short transfer', async () => {
    const { a, b, c } = await threeHosts()
    const out = join(nix.dir, 'cut.nar')
    const dl = await slowDownload(b, out)
    await servingOne([a, c])
    await new Promise(resolve => setTimeout(resolve, 1500))
    a.child.kill('SIGKILL')
    c.child.kill('SIGKILL')
    const { code, stderr } = await dl.curl
    assert.equal(code, 18, `expected curl's "partial file" (18), got ${code}: ${stderr}`)

    // And the real Nix client imports nothing when asked through B now that no peer has it.
    await assert.rejects(lab.exec(lab.hosts[1], 'nix', ['copy', '--from', b.url, '--to', nix.storeRoot('client-cut'), big, '--option', 'trusted-public-keys', keys], { env: nix.env }))
    await assert.rejects(nix.run('nix', ['path-info', '--store', nix.storeRoot('client-cut'), big]))
  })
})
