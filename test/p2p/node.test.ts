import '../../src/polyfill.js'
import assert from 'node:assert/strict'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { VERSION } from '../../src/version.js'
import { Libp2pPeerClient } from '../../src/p2p/libp2p-peer-client.js'
import { MDNS_SERVICE_TAG } from '../../src/p2p/constants.js'
import { Lab, type LabHost } from '../helpers/netns.js'
import { LogLines, Nodes, eventually } from './node-helpers.js'
import type { FixtureArgs } from './mdns-node.fixture.js'
import type { Connection, IdentifyResult, PeerId, Stream } from '@libp2p/interface'

describe('peerix node', () => {
  const nodes = new Nodes()
  afterEach(async () => { await nodes.stopAll() })

  it('announces peerix/<version> and its protocols through identify', async () => {
    const a = await nodes.peerix()
    const other = await nodes.plain()
    const identified = new Promise<IdentifyResult>((resolve) => {
      other.addEventListener('peer:identify', (evt) => { if (evt.detail.peerId.equals(a.peerId)) resolve(evt.detail) })
    })
    await other.dial(a.getMultiaddrs()[0])
    const result = await identified
    assert.equal(result.agentVersion, `peerix/${VERSION}`)
    for (const protocol of ['/peerix/narinfo/1', '/peerix/nar/1', '/ipfs/ping/1.0.0', '/ipfs/id/1.0.0']) {
      assert.ok(result.protocols.includes(protocol), `${protocol} in ${result.protocols.join(', ')}`)
    }
  })

  it('answers ping', async () => {
    const a = await nodes.peerix()
    const b = await nodes.peerix()
    const rtt = await b.services.ping.ping(a.getMultiaddrs()[0])
    assert.ok(rtt >= 0 && rtt < 5000, `rtt ${rtt}`)
  })

  it('lists a connected peer only once identify shows it speaks /peerix/narinfo/1, and drops it when it goes', async () => {
    const logA = new LogLines()
    const a = await nodes.peerix({ log: logA.logger })
    const b = await nodes.peerix()
    const plain = await nodes.plain()
    const client = new Libp2pPeerClient(a)
    assert.deepEqual(client.peers(), [])

    let listedBeforeIdentify = false
    a.addEventListener('peer:connect', () => { if (client.peers().length > 0) listedBeforeIdentify = true })
    const identified = (peer: PeerId): Promise<IdentifyResult> => new Promise((resolve) => {
      a.addEventListener('peer:identify', (evt) => { if (evt.detail.peerId.equals(peer)) resolve(evt.detail) })
    })
    const identifiedB = identified(b.peerId)
    const identifiedPlain = identified(plain.peerId)
    await b.dial(a.getMultiaddrs()[0])
    await plain.dial(a.getMultiaddrs()[0])
    await identifiedB
    await eventually('A to list B', () => client.peers().length === 1)
    assert.equal(listedBeforeIdentify, false)
    assert.deepEqual(client.peers(), [b.peerId.toString()])

    // The plain node is connected and identified, but not a peerix peer.
    assert.ok((await identifiedPlain).protocols.includes('/ipfs/id/1.0.0'))
    assert.ok(a.getConnections(plain.peerId).length > 0)
    assert.deepEqual(client.peers(), [b.peerId.toString()])
    assert.equal(logA.matching(/^info peer found \S+ \(peerix\//).length, 1, logA.lines.map(l => l.line).join('\n'))

    await b.stop()
    await eventually('A to drop B', () => client.peers().length === 0)
    assert.equal(logA.matching(/^info peer lost \S+$/).length, 1)
    assert.ok(a.getConnections(plain.peerId).length > 0, 'the plain node is still connected')
  })

  it('lists a peer whose first identify timed out (its event loop was busy), by running identify again', async function () {
    this.timeout(30_000)
    const a = await nodes.peerix()
    const busy = await nodes.peerix()
    // The busy node answers its first identify after libp2p's 5 s timeout, then at once.
    let first = true
    const identify = busy.services.identify as unknown as { handleProtocol: (stream: Stream, connection: Connection) => Promise<void> }
    await busy.unhandle('/ipfs/id/1.0.0')
    await busy.handle('/ipfs/id/1.0.0', async (stream, connection) => {
      if (first) {
        first = false
        await new Promise(resolve => setTimeout(resolve, 6000))
      }
      await identify.handleProtocol(stream, connection)
    })
    await busy.dial(a.getMultiaddrs()[0])
    const client = new Libp2pPeerClient(a)
    await eventually('A to list the busy peer', () => client.peers().length === 1, 20_000)
    assert.equal(a.getConnections(busy.peerId).length, 1)
  })

  it('with peersOnly, refuses untrusted peers both ways and accepts a trusted one', async () => {
    const trustedKey = await generateKeyPair('Ed25519')
    const a = await nodes.peerix({ peersOnly: true, trustedPeers: [peerIdFromPrivateKey(trustedKey).toString()] })
    const trusted = await nodes.peerix({ privateKey: trustedKey })
    const stranger = await nodes.peerix()
    const client = new Libp2pPeerClient(a)

    const connectedToA: string[] = []
    a.addEventListener('peer:connect', (evt) => { connectedToA.push(evt.detail.toString()) })

    // Noise lets the dialer finish its handshake before the listener knows who it is, so the
    // stranger's dial may resolve; A closes the connection before it is upgraded.
    await stranger.dial(a.getMultiaddrs()[0]).catch(() => {})
    await assert.rejects(a.dial(stranger.getMultiaddrs()[0]))
    await trusted.dial(a.getMultiaddrs()[0])
    await eventually('A to list the trusted peer', () => client.peers().length === 1)
    await eventually('the stranger to see its connection closed', () => stranger.getConnections(a.peerId).length === 0)
    assert.deepEqual(client.peers(), [trusted.peerId.toString()])
    assert.deepEqual(connectedToA, [trusted.peerId.toString()])
    assert.equal(a.getConnections(stranger.peerId).length, 0)
  })

  it('listens on IPv4 and IPv6', async () => {
    const a = await nodes.peerix({ listen: ['/ip4/127.0.0.1/tcp/0', '/ip6/::1/tcp/0'] })
    const addrs = a.getMultiaddrs().map(String)
    assert.ok(addrs.some(ma => ma.startsWith('/ip4/127.0.0.1/tcp/')), addrs.join(' '))
    assert.ok(addrs.some(ma => ma.startsWith('/ip6/::1/tcp/')), addrs.join(' '))
    const b = await nodes.peerix({ listen: ['/ip6/::1/tcp/0'] })
    await b.dial(a.getMultiaddrs().find(ma => ma.toString().startsWith('/ip6/'))!)
    await eventually('B to list A over IPv6', () => new Libp2pPeerClient(b).peers().length === 1)
  })

  it('rejects a bad listen address, static peer or trusted peer, naming it', async () => {
    const cases: Array<[Parameters<Nodes['peerix']>[0], RegExp]> = [
      [{ listen: ['/ip4/127.0.0.1/tcp/0', '/ip4/300.1.1.1/tcp/1'] }, /listen address "\/ip4\/300\.1\.1\.1\/tcp\/1" is not a multiaddr/],
      [{ listen: ['/ip4/127.0.0.1/udp/5'] }, /listen address "\/ip4\/127\.0\.0\.1\/udp\/5" has no \/tcp/],
      [{ staticPeers: ['10.0.0.5:12305'] }, /static peer "10\.0\.0\.5:12305" is not a multiaddr/],
      [{ staticPeers: ['/ip4/10.0.0.5/tcp/12305/p2p/notapeer'] }, /static peer .*notapeer/],
      [{ trustedPeers: ['12D3KooWnotapeer'] }, /"12D3KooWnotapeer" is not a libp2p peer ID/]
    ]
    for (const [opts, message] of cases) {
      await assert.rejects(nodes.peerix(opts), (err: Error) => {
        assert.equal(err.name, 'FormatError')
        assert.match(err.message, message)
        return true
      })
    }
  })
})

describe('peerix node on a LAN (mDNS, network namespaces)', function () {
  this.timeout(60_000)
  let lab: Lab | undefined
  after(async () => { await lab?.cleanup() })

  it('finds other peerix nodes by mDNS under its own tag, and asks only those; IPv6 is optional', async () => {
    lab = await Lab.create(4)
    // B's host has no IPv6: the default listen addresses include [::], and the node must start anyway.
    await lab.exec(lab.hosts[1], 'sysctl', ['-qw', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1'])
    const [peerixA, peerixB, plainPeerixTag, plainDefaultTag] = await Promise.all([
      { kind: 'peerix' },
      { kind: 'peerix' },
      { kind: 'plain', serviceTag: MDNS_SERVICE_TAG },
      { kind: 'plain', serviceTag: '_p2p._udp.local' }
    ].map(async (args, i) => await FixtureNode.start(lab!, lab!.hosts[i], args as FixtureArgs)))

    await eventually('A and B to list each other', () =>
      sameMembers(peerixA.state.peers, [peerixB.id]) && sameMembers(peerixB.state.peers, [peerixA.id]), 30_000)
    // A node that answers the peerix tag is dialled, but not asked: it does not speak peerix.
    await eventually('A to connect the plain node under the peerix tag', () => peerixA.state.connections.includes(plainPeerixTag.id), 30_000)
    assert.deepEqual(peerixA.state.peers, [peerixB.id])
    assert.ok(!peerixA.state.connections.includes(plainDefaultTag.id), 'a libp2p node under the default tag is not dialled')
    assert.ok(!peerixB.state.connections.includes(plainDefaultTag.id), 'a libp2p node under the default tag is not dialled')
    assert.ok(peerixA.addrs.some(a => a.startsWith('/ip6/')), `A listens on IPv6: ${peerixA.addrs.join(' ')}`)
    assert.ok(peerixB.addrs.every(a => a.startsWith('/ip4/')), `B, without IPv6, listens on IPv4 only: ${peerixB.addrs.join(' ')}`)
    assert.ok(peerixA.logs.some(l => l.startsWith('info peer found ') && l.includes(`(peerix/${VERSION} at /ip4/${lab!.hosts[1].ip}/tcp/`)), peerixA.logs.join('\n'))
  })
})

/** A fixture node in a lab host, and the last state it printed. */
class FixtureNode {
  id = ''
  addrs: string[] = []
  state: { peers: string[], connections: string[] } = { peers: [], connections: [] }
  readonly logs: string[] = []

  static async start (lab: Lab, host: LabHost, args: FixtureArgs): Promise<FixtureNode> {
    const fixture = fileURLToPath(new URL('./mdns-node.fixture.ts', import.meta.url))
    const child = lab.spawn(host, process.execPath, ['--import', 'tsx', fixture, JSON.stringify(args)], { cwd: fileURLToPath(new URL('../..', import.meta.url)) })
    const node = new FixtureNode()
    let stderr = ''
    child.stderr?.on('data', (data: Buffer) => { stderr += data.toString() })
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const message = JSON.parse(line) as { id?: string, addrs?: string[], log?: string, peers?: string[], connections?: string[] }
      if (message.id !== undefined) node.id = message.id
      if (message.addrs !== undefined) node.addrs = message.addrs
      if (message.log !== undefined) node.logs.push(message.log)
      if (message.peers !== undefined && message.connections !== undefined) node.state = { peers: message.peers, connections: message.connections }
    })
    await eventually(`the node in ${host.ns} to start`, () => {
      if (child.exitCode !== null) throw new Error(`fixture exited with ${child.exitCode}: ${stderr}`)
      return node.id !== ''
    }, 30_000)
    return node
  }
}

function sameMembers (actual: string[], expected: string[]): boolean {
  return actual.length === expected.length && expected.every(e => actual.includes(e))
}
