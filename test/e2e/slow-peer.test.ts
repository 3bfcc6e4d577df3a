/**
 * A peer on a slow link: its answers come late, behind the NAR it is sending, but its bytes
 * keep coming. Through B's shim, a narinfo only that peer has is found, not given up on at the
 * wait budget (Nix would build the path, or fail a build that had planned to substitute it).
 * A's link is throttled for real (tc tbf in A's namespace, a small TCP send buffer), and the
 * big NAR is fetched through B's shim with curl.
 */
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { NixEnv } from '../helpers/nix.js'
import { Lab } from '../helpers/netns.js'
import { LabDaemons, type DaemonProcess } from '../helpers/daemon.js'
import { parseStorePath } from '../../src/nix/store-path.js'
import type { ChildProcess } from 'node:child_process'

const BUDGET_MS = 1000
/** A's link: 300 kbit/s (37.5 KB/s). Its answer to the narinfo asked comes about 4 s late. */
const RATE = '300kbit'

describe('a peer on a slow link (real daemons, a throttled link)', function () {
  this.timeout(180_000)
  let nix: NixEnv
  let lab: Lab
  const daemons = new LabDaemons()
  let download: ChildProcess | undefined
  let big: string
  let small: string
  let keys: string

  before(async () => {
    nix = await NixEnv.create()
    lab = await Lab.create(2)
    const rootA = nix.storeRoot('hostA')
    const add = async (name: string, bytes: number): Promise<string> => {
      const file = join(nix.dir, name)
      await nix.run('sh', ['-c', `head -c ${bytes} /dev/urandom > ${file}`])
      return (await nix.run('nix-store', ['--store', rootA, '--add', file])).stdout.trim()
    }
    big = await add('big', 8 * 1024 * 1024)
    small = await add('small', 1000)
    keys = (await nix.generateKey('hostA-1')).publicKey
  })

  after(async () => {
    download?.kill()
    await daemons.stopAll()
    await lab?.cleanup()
    await nix?.cleanup()
  })

  it('finds a path only the slow peer has, though its answer comes after the wait budget', async () => {
    const daemon = async (host: number, args: string[]): Promise<DaemonProcess> => await daemons.start(lab, lab.hosts[host], nix, ['--timeout', String(BUDGET_MS), ...args])
    await daemon(0, ['--store-root', nix.storeRoot('hostA'), '--signing-key-file', join(nix.dir, 'hostA-1.sec'), '--serve', 'all'])
    const b = await daemon(1, ['--store-root', await nix.initStore('hostB'), '--trusted-public-keys', keys])
    await b.waitFor(/peer found/, 30_000)
    const shim = b.url
    const curl = async (...args: string[]): Promise<string> => (await lab.exec(lab.hosts[1], 'curl', ['-sS', '--max-time', '60', ...args])).stdout
    const narInfo = async (path: string): Promise<{ code: string, ms: number }> => {
      const t0 = Date.now()
      const code = await curl('-o', '/dev/null', '-w', '%{http_code}', `${shim}/${parseStorePath(path).hashPart}.narinfo`)
      return { code, ms: Date.now() - t0 }
    }

    // The link slows down. A's answers queue behind the NAR's bytes in its TCP send buffer,
    // kept small (64 KB), and in the qdisc.
    const hostA = lab.hosts[0]
    await lab.exec(hostA, 'sh', ['-c', 'echo "4096 16384 65536" > /proc/sys/net/ipv4/tcp_wmem'])
    await lab.exec(hostA, 'tc', ['qdisc', 'add', 'dev', hostA.dev, 'root', 'tbf', 'rate', RATE, 'burst', '16kb', 'limit', '64kb'])

    const url = /^URL: (\S+)$/m.exec(await curl(`${shim}/${parseStorePath(big).hashPart}.narinfo`))?.[1]
    assert.ok(url !== undefined, 'no narinfo for the big path')
    download = lab.spawn(lab.hosts[1], 'curl', ['-sS', '-o', '/dev/null', `${shim}/${url}`])
    await new Promise(resolve => setTimeout(resolve, 3000))

    const answer = await narInfo(small)
    const status = JSON.parse(await curl(`${shim}/status`))
    console.log(`      the slow peer's path: HTTP ${answer.code} after ${answer.ms} ms (budget ${BUDGET_MS} ms); lookups that waited for a slow peer: ${status.counters.narInfoSlowPeerWaits}`)
    assert.equal(answer.code, '200', `the slow peer's path was given up on after ${answer.ms} ms`)
    assert.ok(status.counters.narInfoSlowPeerWaits >= 1, 'the answer came within the budget: the link was not slow enough to show anything')
  })
})
