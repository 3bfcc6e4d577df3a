/**
 * mDNS between hosts that also have addresses the other cannot use: a docker bridge with the
 * same address on both (a dial to it reaches the dialer itself) and a VPN and a VM network of
 * their own, which the other host's packets to never reach (they are dropped on the way, so a
 * dial hangs until it times out). Each daemon announces all of them, ahead of its LAN address
 * (those interfaces are older than the LAN link here). libp2p dials a peer's addresses one at a
 * time, 6 s each and 10 s in all: dialled in the announced order, the two hosts never connected
 * (measured: not within 60 s, README "Finding peers"). Real daemons, real mDNS, in network
 * namespaces.
 */
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { NixEnv } from '../helpers/nix.js'
import { Lab, type LabHost } from '../helpers/netns.js'
import { LabDaemons, type DaemonProcess } from '../helpers/daemon.js'

const run = promisify(execFile)

/** From a daemon's start to its first peer; the hosts connect in 1–3 s when nothing is in the way. */
const CONNECT_BOUND_MS = 15_000

/** The networks only host `i` has: a VPN and a VM network. */
function ownNetworks (i: number): string[] {
  return [`10.${90 + i}.0.1/24`, `192.168.${90 + i}.1/24`]
}

/** An interface that is up (a veth pair inside the namespace, so it has a carrier) with an address. */
async function addInterface (ns: string, name: string, cidr: string): Promise<void> {
  await run('ip', ['-n', ns, 'link', 'add', name, 'type', 'veth', 'peer', 'name', `${name}p`])
  await run('ip', ['-n', ns, 'link', 'set', name, 'up'])
  await run('ip', ['-n', ns, 'link', 'set', `${name}p`, 'up'])
  await run('ip', ['-n', ns, 'addr', 'add', cidr, 'dev', name])
}

/** Packets from `host` to `cidr` leave by its LAN link and are dropped on the way out: a connect hangs. */
async function blackhole (host: LabHost, cidrs: string[]): Promise<void> {
  const nft = async (...args: string[]): Promise<unknown> => await run('ip', ['netns', 'exec', host.ns, 'nft', ...args])
  await nft('add', 'table', 'inet', 'blackhole')
  await nft('add', 'chain', 'inet', 'blackhole', 'out', '{ type filter hook output priority 0; }')
  for (const cidr of cidrs) {
    const net = cidr.replace(/\.1\/24$/, '.0/24')
    await run('ip', ['-n', host.ns, 'route', 'add', net, 'dev', host.dev])
    await nft('add', 'rule', 'inet', 'blackhole', 'out', 'ip', 'daddr', net, 'drop')
  }
}

describe('mDNS between hosts with addresses the other cannot reach (network namespaces)', function () {
  this.timeout(120_000)
  let nix: NixEnv
  let lab: Lab
  const daemons = new LabDaemons()

  before(async () => {
    nix = await NixEnv.create()
    lab = await Lab.create(2, {
      beforeLink: async (ns, i) => {
        await addInterface(ns, 'docker0', '172.17.0.1/16')
        const [vpn, vms] = ownNetworks(i)
        await addInterface(ns, 'vpn0', vpn)
        await addInterface(ns, 'virbr0', vms)
      }
    })
    const [hostA, hostB] = lab.hosts
    await blackhole(hostA, ownNetworks(2))
    await blackhole(hostB, ownNetworks(1))
  })

  afterEach(async () => {
    await daemons.stopAll()
  })

  after(async () => {
    await lab?.cleanup()
    await nix?.cleanup()
  })

  async function daemonOn (host: LabHost, name: string): Promise<DaemonProcess> {
    return await daemons.start(lab, host, nix, ['--store-root', await nix.initStore(name), '--log-level', 'debug'])
  }

  /** Waits for `d`'s first peer, at most until CONNECT_BOUND_MS after `since`; the address it logged. */
  async function connectedWithinBound (d: DaemonProcess, since: number, what: string): Promise<string> {
    const line = await d.waitFor(/peer found/, Math.max(1, since + CONNECT_BOUND_MS - Date.now()))
      .catch((err: Error) => { throw new Error(`${what} not connected within ${CONNECT_BOUND_MS} ms of starting: ${err.message}`) })
    return /at (\S+)\)/.exec(line)?.[1] ?? ''
  }

  it('announces every address, and the hosts still connect at once over their shared link', async () => {
    const [hostA, hostB] = lab.hosts
    const since = Date.now()
    const [a, b] = await Promise.all([daemonOn(hostA, 'a1'), daemonOn(hostB, 'b1')])
    // Each announces the bridge, its VPN and VM networks ahead of the LAN address.
    assert.match(a.lines.join('\n'), /p2p on .*\/ip4\/172\.17\.0\.1\/tcp\/12305.*\/ip4\/10\.91\.0\.1\/tcp\/12305.*\/ip4\/192\.168\.91\.1\/tcp\/12305.*\/ip4\/10\.77\.0\.1\/tcp\/12305/)
    const [atA, atB] = await Promise.all([connectedWithinBound(a, since, 'A'), connectedWithinBound(b, since, 'B')])
    assert.match(atA, /^\/ip4\/10\.77\.0\.2\//)
    assert.match(atB, /^\/ip4\/10\.77\.0\.1\//)
  })

  it('connects a host that joins while the other runs', async () => {
    const [hostA, hostB] = lab.hosts
    const a = await daemonOn(hostA, 'a2')
    const since = Date.now()
    const b = await daemonOn(hostB, 'b2')
    await Promise.all([connectedWithinBound(b, since, 'B'), connectedWithinBound(a, since, 'A')])
  })
})
