/**
 * One node for the mDNS test, run in a lab host's network namespace (so multicast stays on
 * the lab's bridge): a peerix node, or a plain libp2p node answering mDNS under a given tag.
 * Prints JSON lines: `{ id }` once started, then `{ peers, connections }` on every change.
 * Stops on SIGTERM.
 */
import '../../src/polyfill.js'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { identify } from '@libp2p/identify'
import { mdns } from '@libp2p/mdns'
import { tcp } from '@libp2p/tcp'
import { createLibp2p } from 'libp2p'
import { createLogger } from '../../src/log.js'
import { Libp2pPeerClient } from '../../src/p2p/libp2p-peer-client.js'
import { createPeerixNode } from '../../src/p2p/node.js'
import { MemorySource } from './node-helpers.js'
import type { Libp2p } from '@libp2p/interface'

export type FixtureArgs = { kind: 'peerix' } | { kind: 'plain', serviceTag: string }

const print = (value: unknown): void => { process.stdout.write(JSON.stringify(value) + '\n') }
const args = JSON.parse(process.argv[2]) as FixtureArgs

let node: Libp2p
let peers: () => string[] = () => []
if (args.kind === 'peerix') {
  const peerix = await createPeerixNode({
    privateKey: await generateKeyPair('Ed25519'),
    mdns: true,
    source: new MemorySource(),
    log: createLogger('debug', (line) => { print({ log: line }) })
  })
  const client = new Libp2pPeerClient(peerix)
  node = peerix
  peers = () => client.peers()
} else {
  node = await createLibp2p({
    addresses: { listen: ['/ip4/0.0.0.0/tcp/12305'] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    peerDiscovery: [mdns({ serviceTag: args.serviceTag })],
    services: { identify: identify() }
  })
}
print({ id: node.peerId.toString(), addrs: node.getMultiaddrs().map(String) })

let last = ''
const report = setInterval(() => {
  const state = JSON.stringify({ peers: peers().sort(), connections: [...new Set(node.getConnections().map(c => c.remotePeer.toString()))].sort() })
  if (state !== last) process.stdout.write(state + '\n')
  last = state
}, 50)

process.once('SIGTERM', () => {
  clearInterval(report)
  void Promise.resolve(node.stop()).then(() => { process.exit(0) })
})
