/**
 * A NAR asked while other NARs fill a slow link gets its turn. libp2p's muxer let the oldest
 * streams with bytes queued go first, so a stream opened while NARs were streaming (its protocol
 * reply, its NAR header; a ping too) waited until the older ones had nothing left to send: with
 * Nix substituting 25 NARs at once over 20 Mbit/s, NAR streams got no byte for 20 s, A's pings
 * timed out and the connection was closed, and Nix got 404s (src/p2p/yamux-fair-turns.ts). Real
 * daemons in two namespaces, A's link throttled (tc tbf); the NARs are fetched through B's shim
 * with curl.
 */
import assert from 'node:assert/strict'
import type { ChildProcess } from 'node:child_process'
import { NixEnv } from '../helpers/nix.js'
import { Lab } from '../helpers/netns.js'
import { LabDaemons } from '../helpers/daemon.js'
import { parseStorePath } from '../../src/nix/store-path.js'

const BUSY = 10
const MiB = 1024 * 1024
/** A's link: 20 Mbit/s, 2.5 MB/s: the busy NARs (30 MiB) take about 13 s. */
const RATE = '20mbit'

function blobsExpr (): string {
  const mk = (name: string, bytes: number): string => `(builtins.derivation { name = "${name}"; builder = "/bin/sh"; args = [ "-c" "/bin/mkdir $out; /usr/bin/head -c ${bytes} /dev/urandom > $out/f" ]; system = builtins.currentSystem; })`
  return `[ ${Array.from({ length: BUSY }, (_, i) => mk(`busy-${i}`, 3 * MiB)).join(' ')} ${mk('late', MiB / 4)} ]`
}

describe('a NAR asked while others fill a slow link (real daemons, a throttled link)', function () {
  this.timeout(120_000)
  let nix: NixEnv
  let lab: Lab
  const daemons = new LabDaemons()
  const downloads: ChildProcess[] = []

  before(async () => {
    nix = await NixEnv.create('peerix-turns-')
    lab = await Lab.create(2)
  })

  after(async () => {
    for (const d of downloads) d.kill()
    await daemons.stopAll()
    await lab?.cleanup()
    await nix?.cleanup()
  })

  it('gets its first bytes in its turn, not after the NARs asked before it', async () => {
    const rootA = nix.storeRoot('hostA')
    const paths = await nix.build(rootA, blobsExpr())
    const late = paths.find(p => p.endsWith('-late')) as string
    const busy = paths.filter(p => p !== late)
    const key = await nix.generateKey('turns-a-1')
    await daemons.start(lab, lab.hosts[0], nix, ['--store-root', rootA, '--signing-key-file', key.secretFile, '--serve', 'all'])
    const b = await daemons.start(lab, lab.hosts[1], nix, ['--store-root', await nix.initStore('hostB'), '--trusted-public-keys', key.publicKey])
    await b.waitFor(/peer found/, 30_000)
    const hostA = lab.hosts[0]
    await lab.exec(hostA, 'tc', ['qdisc', 'add', 'dev', hostA.dev, 'root', 'tbf', 'rate', RATE, 'burst', '32kb', 'limit', '256kb'])
    const curl = async (...args: string[]): Promise<string> => (await lab.exec(lab.hosts[1], 'curl', ['-sS', '--max-time', '60', ...args])).stdout
    const narUrl = async (path: string): Promise<string> => {
      const url = /^URL: (\S+)$/m.exec(await curl(`${b.url}/${parseStorePath(path).hashPart}.narinfo`))?.[1]
      assert.ok(url !== undefined, `no narinfo for ${path}`)
      return `${b.url}/${url}`
    }
    const busyUrls = await Promise.all(busy.map(narUrl))
    const lateUrl = await narUrl(late)

    for (const url of busyUrls) downloads.push(lab.spawn(lab.hosts[1], 'curl', ['-sS', '-o', '/dev/null', url]))
    await new Promise(resolve => setTimeout(resolve, 2000))
    const [firstByte, total] = (await curl('-o', '/dev/null', '-w', '%{time_starttransfer} %{time_total}', lateUrl)).split(' ').map(Number)
    const busyLeft = downloads.filter(d => d.exitCode === null).length
    console.log(`      the late NAR (256 KiB): first byte after ${firstByte.toFixed(2)} s, whole after ${total.toFixed(2)} s; busy NARs still streaming then: ${busyLeft} of ${BUSY}`)
    assert.ok(busyLeft > 0, 'the busy NARs were done before the late one: the link was not busy enough to show anything')
    // Its fair share: its handshake and header wait for one frame (64 KiB) of each busy stream,
    // about 0.3 s here, and its 256 KiB come at a 1/11 share, about 1.1 s. Before, it waited
    // for the busy NARs to finish (about 11 s).
    assert.ok(total < 5, `the late NAR took ${total} s: it waited behind the NARs asked before it`)
  })
})
