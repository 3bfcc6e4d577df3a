/**
 * What the daemon hands the shim for /status, /which and /metrics: its parts, read on demand.
 */
import type { Registry } from 'prom-client'
import type { PeerixNode } from '../p2p/node.js'
import { Libp2pPeerClient } from '../p2p/libp2p-peer-client.js'
import type { Substituter } from '../substituter/substituter.js'
import { whichPeers } from '../substituter/which.js'
import type { TrustedKeys } from '../nix/signing.js'
import { ShimMetrics } from '../http/metrics.js'
import type { Introspection } from '../http/status.js'
import type { ServedCounters } from './served.js'
import type { PeerTraffic } from './peer-traffic.js'
import { PeerLatency } from './latency.js'
import { statusReport, type StatusSources } from './status.js'

export interface DaemonParts {
  node: PeerixNode
  substituter: Substituter
  served: ServedCounters
  traffic: PeerTraffic
  trusted: TrustedKeys
  registry: Registry
  publicKey: string
  policy: StatusSources['policy']
  keys: StatusSources['keys']
  /** How long `which` waits for peers. */
  timeoutMs: number
  startedAt: number
  /** The shim's URL, known once it listens. */
  httpUrl: () => string
}

export function daemonIntrospection (parts: DaemonParts): Introspection {
  const latency = new PeerLatency(parts.node.services.ping)
  const client = new Libp2pPeerClient(parts.node)
  const counters = parts.substituter.counters
  return {
    status: async () => await statusReport({
      ...parts,
      latency,
      httpUrl: parts.httpUrl(),
      peerIndexSize: (peer) => parts.node.services.index.summaryOf(peer)?.keys
    }),
    which: async (hashPart, signal) => await whichPeers(client, parts.trusted, hashPart, parts.timeoutMs, signal),
    metrics: new ShimMetrics(parts.registry, () => ({
      narBytesIn: counters.narBytesIn,
      narBytesOut: parts.served.narBytesOut,
      peersConnected: client.peers().length,
      verificationFailures: counters.verificationFailures,
      narInfoHits: counters.narInfoHits,
      narInfoMisses: counters.narInfoMisses,
      narInfoRefusals: counters.narInfoRefusals,
      refusalsReceived: counters.refusals,
      refusalsGiven: parts.served.refusals
    }))
  }
}
