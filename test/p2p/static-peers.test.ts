import '../../src/polyfill.js'
import assert from 'node:assert/strict'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { createServer } from 'node:net'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { identify } from '@libp2p/identify'
import { tcp } from '@libp2p/tcp'
import { createLibp2p } from 'libp2p'
import { Libp2pPeerClient } from '../../src/p2p/libp2p-peer-client.js'
import { LogLines, Nodes, eventually, portOf } from './node-helpers.js'

/** A TCP port nothing listens on right now. */
async function freePort (): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  await new Promise<void>((resolve) => server.close(() => { resolve() }))
  return port
}

describe('static peers', () => {
  const nodes = new Nodes()
  afterEach(async () => { await nodes.stopAll() })
  const backoff = { minMs: 100, maxMs: 800 }

  it('connect by a multiaddr without /p2p, and are redialled after the other host restarts', async () => {
    const keyA = await generateKeyPair('Ed25519')
    const a = await nodes.peerix({ privateKey: keyA })
    const port = portOf(a)
    const logB = new LogLines()
    const b = await nodes.peerix({ staticPeers: [`/ip4/127.0.0.1/tcp/${port}`], staticPeerBackoff: backoff, log: logB.logger })
    const clientB = new Libp2pPeerClient(b)
    await eventually('B to list A', () => clientB.peers().includes(a.peerId.toString()))
    assert.equal(logB.matching(/^info static peer \/ip4\/127\.0\.0\.1\/tcp\/\d+ connected/).length, 1)

    await a.stop()
    await eventually('B to drop A', () => clientB.peers().length === 0)
    await eventually('B to log the loss', () => logB.matching(/^info static peer .* lost; redialling/).length === 1)
    // Down for several backoff steps: B keeps trying without flooding the log.
    await new Promise(resolve => setTimeout(resolve, 1000))
    const again = await nodes.peerix({ privateKey: keyA, listen: [`/ip4/127.0.0.1/tcp/${port}`] })
    await eventually('B to list A again', () => clientB.peers().includes(again.peerId.toString()), 5000)
    assert.equal(logB.matching(/^info static peer .* connected/).length, 2)
    assert.equal(logB.matching(/^info static peer .* unreachable/).length, 1, 'one info line per outage')
  })

  it('back off from a host whose gater drops every connection at once', async () => {
    const refusing = await nodes.peerix({ peersOnly: true, trustedPeers: [] })
    const log = new LogLines()
    await nodes.peerix({ staticPeers: [`/ip4/127.0.0.1/tcp/${portOf(refusing)}`], staticPeerBackoff: { minMs: 50, maxMs: 10_000 }, log: log.logger })
    await new Promise(resolve => setTimeout(resolve, 2500))
    // With backoff doubling from 50 ms, 2.5 s holds at most ~7 attempts; redialling each loss
    // at the minimum delay would make dozens.
    const attempts = log.matching(/static peer .* (lost; redialling|unreachable)/).length
    assert.ok(attempts >= 2 && attempts <= 8, `${attempts} attempts in 2.5 s:\n${log.lines.map(l => l.line).join('\n')}`)
  })

  it('follow a host whose PeerId changed at the same address', async () => {
    const a = await nodes.peerix()
    const port = portOf(a)
    const b = await nodes.peerix({ staticPeers: [`/ip4/127.0.0.1/tcp/${port}`], staticPeerBackoff: backoff })
    const clientB = new Libp2pPeerClient(b)
    await eventually('B to list A', () => clientB.peers().length === 1)
    await a.stop()
    const reinstalled = await nodes.peerix({ listen: [`/ip4/127.0.0.1/tcp/${port}`] })
    await eventually('B to list the new A', () => clientB.peers().includes(reinstalled.peerId.toString()), 5000)
    assert.deepEqual(clientB.peers(), [reinstalled.peerId.toString()])
  })

  it('back off exponentially up to the cap while unreachable, and stop dialling when the node stops', async () => {
    const port = await freePort()
    const log = new LogLines()
    const b = await nodes.peerix({ staticPeers: [`/ip4/127.0.0.1/tcp/${port}`], staticPeerBackoff: { minMs: 50, maxMs: 400 }, log: log.logger })
    await eventually('eight failed dials', () => log.matching(/static peer .* unreachable/).length >= 8, 10_000)
    const times = log.matching(/static peer .* unreachable/).map(l => l.at)
    const gaps = times.slice(1).map((t, i) => t - times[i])
    // Step n is min(400, 50 * 2^n); each delay lies between half the step and the step (a gap
    // adds the failed dial and a late timer on a busy machine).
    gaps.forEach((gap, i) => {
      const step = Math.min(400, 50 * 2 ** i)
      assert.ok(gap >= step / 2 - 5 && gap <= step + 500, `gap ${i} = ${gap} ms for a step of ${step} ms (${gaps.join(', ')})`)
    })
    // uncapped, the last three steps would be 800, 1600 and 3200 ms: gaps of at least half that
    assert.ok(gaps.slice(-3).every(g => g < 800), `capped: ${gaps.join(', ')}`)

    await b.stop()
    const stoppedAt = log.lines.length
    await new Promise(resolve => setTimeout(resolve, 900))
    assert.deepEqual(log.lines.slice(stoppedAt), [], 'no dial after stop')
  })

  it('recognise a static peer without /p2p that dialled in first, by the address it announces', async () => {
    const portB = await freePort()
    const logA = new LogLines()
    const logB = new LogLines()
    // A's first dial fails (B is not up yet) and its next one is 1.5 to 3 s away.
    const a = await nodes.peerix({ staticPeers: [`/ip4/127.0.0.1/tcp/${portB}`], staticPeerBackoff: { minMs: 3000, maxMs: 3000 }, log: logA.logger })
    await eventually('A\'s first dial to fail', () => logA.matching(/static peer .* unreachable/).length === 1)
    const failedAt = Date.now()
    const b = await nodes.peerix({ listen: [`/ip4/127.0.0.1/tcp/${portB}`], staticPeers: [a.getMultiaddrs()[0].toString()], staticPeerBackoff: backoff, log: logB.logger })
    await eventually('A to count B as its static peer', () => logA.matching(/static peer .* connected/).length === 1, 1400)
    await eventually('both to list each other', () => new Libp2pPeerClient(a).peers().length === 1 && new Libp2pPeerClient(b).peers().length === 1)
    // Past A's redial time: it was cancelled, so there is still one connection and one line each.
    await new Promise(resolve => setTimeout(resolve, failedAt + 3500 - Date.now()))
    assert.equal(a.getConnections(b.peerId).length, 1)
    assert.equal(logA.matching(/static peer .* connected/).length, 1)
    assert.equal(logB.matching(/static peer .* connected/).length, 1)
    assert.equal(logA.matching(/lost/).length + logB.matching(/lost/).length, 0)
  })

  it('recognise a static peer given by name (/dns4) that dialled in first, by the address it announces', async () => {
    // Without it, A dialled the name anyway and the two hosts held two connections.
    const portB = await freePort()
    const logA = new LogLines()
    const a = await nodes.peerix({ staticPeers: [`/dns4/localhost/tcp/${portB}`], staticPeerBackoff: { minMs: 3000, maxMs: 3000 }, log: logA.logger })
    await eventually('A\'s first dial to fail', () => logA.matching(/static peer .* unreachable/).length === 1)
    const failedAt = Date.now()
    const b = await nodes.peerix({ listen: [`/ip4/127.0.0.1/tcp/${portB}`], staticPeers: [a.getMultiaddrs()[0].toString()], staticPeerBackoff: backoff })
    await eventually('A to count B as its static peer', () => logA.matching(/static peer \/dns4\/localhost.* connected/).length === 1, 1400)
    // Past A's redial time: it was cancelled, so there is still one connection.
    await new Promise(resolve => setTimeout(resolve, failedAt + 3500 - Date.now()))
    assert.equal(a.getConnections(b.peerId).length, 1)
    assert.equal(logA.matching(/static peer .* connected/).length, 1)
  })

  it('do not take a peer for a static one because it announces that address from another IP', async () => {
    const port = await freePort()
    const logA = new LogLines()
    const a = await nodes.peerix({ staticPeers: [`/ip4/127.0.0.2/tcp/${port}`], staticPeerBackoff: { minMs: 200, maxMs: 200 }, log: logA.logger })
    await eventually('A\'s first dial to fail', () => logA.matching(/static peer .* unreachable/).length >= 1)
    // An impostor on 127.0.0.1 that claims to listen where A's static peer is.
    const impostor = await createLibp2p({
      addresses: { listen: ['/ip4/127.0.0.1/tcp/0'], announce: [`/ip4/127.0.0.2/tcp/${port}`] },
      transports: [tcp()],
      connectionEncrypters: [noise()],
      streamMuxers: [yamux()],
      services: { identify: identify() }
    })
    try {
      await impostor.dial(a.getMultiaddrs()[0])
      await eventually('A to identify the impostor', () => a.getConnections(impostor.peerId).length === 1)
      const failures = logA.matching(/static peer .* unreachable/).length
      await eventually('A to keep dialling the real address', () => logA.matching(/static peer .* unreachable/).length > failures + 1, 5_000)
      assert.equal(logA.matching(/static peer .* connected/).length, 0, logA.lines.map(l => l.line).join('\n'))
    } finally {
      await impostor.stop()
    }
  })
})
