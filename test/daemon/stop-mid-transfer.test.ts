/**
 * A daemon stopped (SIGTERM, as `systemctl restart` does) while many NARs are on their way
 * between two hosts: it exits 0 and logs no MaxListenersExceededWarning. An operator restarting
 * the daemon during a big copy saw Node's "Possible EventTarget memory leak detected. 11 abort
 * listeners added to [AbortSignal]" in the journal. A's link is throttled (tc tbf) while the
 * NARs go, so they are still streaming when the signal comes, whatever the machine's load; the
 * test checks that the stop cut more than 10 of them.
 */
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { NixEnv } from '../helpers/nix.js'
import { Lab } from '../helpers/netns.js'
import { LabDaemons, type DaemonProcess } from '../helpers/daemon.js'
import { parseStorePath } from '../../src/nix/store-path.js'

/** NARs fetched at once: more than Node's limit of 10 listeners per signal. */
const NARS = 24
const NAR_BYTES = 2 * 1024 * 1024
/** A's link while the NARs go the second time: 48 MiB take 20 s. */
const RATE = '20mbit'
/** B keeps up to 16 idle streams to A: the NARs asked on them go at once. */
const POOLED = 16
/** A NAR being served: its first line in A's log, and its last when it was cut short. */
const SERVING = /info serving \S+ to \S+: \d+ bytes/
const CUT = /info serving \S+ to \S+ stopped after \d+ of/

describe('a daemon stopped mid-transfer (real daemons, a throttled link)', function () {
  this.timeout(180_000)
  let nix: NixEnv
  let lab: Lab
  const daemons = new LabDaemons()
  let paths: string[]
  let keys: string

  before(async () => {
    nix = await NixEnv.create('peerix-stop-mid-')
    lab = await Lab.create(2)
    const files = Array.from({ length: NARS }, (_, i) => join(nix.dir, `blob-${i}`))
    await nix.run('sh', ['-c', files.map(f => `head -c ${NAR_BYTES} /dev/urandom > ${f}`).join('; ')])
    paths = (await nix.run('nix-store', ['--store', nix.storeRoot('hostA'), '--add', ...files])).stdout.trim().split('\n')
    keys = (await nix.generateKey('hostA-1')).publicKey
    // A small TCP send buffer on A (64 KB), as on a slow uplink: A's bytes wait in its streams.
    await lab.exec(lab.hosts[0], 'sh', ['-c', 'echo "4096 16384 65536" > /proc/sys/net/ipv4/tcp_wmem'])
  })

  afterEach(async () => {
    await daemons.stopAll()
    await lab?.exec(lab.hosts[0], 'tc', ['qdisc', 'del', 'dev', lab.hosts[0].dev, 'root']).catch(() => {})
  })
  after(async () => {
    await daemons.stopAll()
    await lab?.cleanup()
    await nix?.cleanup()
  })

  /** A serving, B fetching for Nix; `--trace-warnings` so a warning names where it came from. */
  async function startPair (): Promise<{ a: DaemonProcess, b: DaemonProcess }> {
    const env = { dir: nix.dir, env: { ...nix.env, NODE_OPTIONS: '--trace-warnings' } }
    const a = await daemons.start(lab, lab.hosts[0], env, ['--store-root', nix.storeRoot('hostA'), '--signing-key-file', join(nix.dir, 'hostA-1.sec'), '--serve', 'all', '--no-mdns'])
    const b = await daemons.start(lab, lab.hosts[1], env, ['--store-root', await nix.initStore(`hostB-${Date.now()}`), '--trusted-public-keys', keys, '--no-mdns', '--peer', `/ip4/${lab.hosts[0].ip}/tcp/12305`, '--wire-compression', 'off'])
    await b.waitFor(/peer found/, 30_000)
    return { a, b }
  }

  /** Starts one curl per NAR through B's shim; resolves to how many came whole. */
  async function fetchAll (b: DaemonProcess): Promise<() => Promise<number>> {
    const urls: string[] = []
    for (const path of paths) {
      const { stdout } = await lab.exec(lab.hosts[1], 'curl', ['-sS', '--max-time', '30', `${b.url}/${parseStorePath(path).hashPart}.narinfo`])
      const url = /^URL: (\S+)$/m.exec(stdout)?.[1]
      assert.ok(url !== undefined, `no narinfo for ${path}: ${stdout}`)
      urls.push(`${b.url}/${url}`)
    }
    const curls = urls.map(async url => await lab.exec(lab.hosts[1], 'curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code} %{size_download}', '--max-time', '60', url])
      .then(({ stdout }) => stdout, () => 'failed'))
    return async () => (await Promise.all(curls)).filter(out => /^200 /.test(out) && Number(out.split(' ')[1]) > NAR_BYTES).length
  }

  /**
   * Fetches the NARs once, so that B holds open streams to A; then again on the throttled link,
   * and stops `stopped` (A or B) once A serves those on B's open streams. (A new stream waits
   * for its protocol to be agreed behind the other streams' bytes on a saturated link.)
   */
  async function stopMidTransfer (stopped: DaemonProcess, a: DaemonProcess, b: DaemonProcess): Promise<void> {
    assert.equal(await (await fetchAll(b))(), NARS, 'the NARs did not all come the first time')
    await lab.exec(lab.hosts[0], 'tc', ['qdisc', 'add', 'dev', lab.hosts[0].dev, 'root', 'tbf', 'rate', RATE, 'burst', '32kb', 'limit', '256kb'])
    const whole = await fetchAll(b)
    await a.waitFor(SERVING, 20_000, NARS + POOLED)
    const code = await stopped.stop(10_000)
    const log = stopped.lines.join('\n')
    const came = await whole()
    const cut = a.lines.filter(line => CUT.test(line)).length
    assert.ok(cut > 10, `the stop cut ${cut} NARs (${came} of ${NARS} came whole): too few to show anything`)
    assert.equal(code, 0, `exit code ${String(code)}:\n${log}`)
    assert.match(log, /info stopped/)
    assert.doesNotMatch(log, /MaxListenersExceededWarning|memory leak detected/, log)
  }

  it('exits 0 without a MaxListenersExceededWarning when stopped while it serves many NARs to a peer', async () => {
    const { a, b } = await startPair()
    await stopMidTransfer(a, a, b)
  })

  it('exits 0 without a MaxListenersExceededWarning when stopped while it fetches many NARs for Nix', async () => {
    const { a, b } = await startPair()
    await stopMidTransfer(b, a, b)
  })
})
