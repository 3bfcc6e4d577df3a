/**
 * The daemon's state as one JSON document (GET /status), read by `peerix status`/`peers` and
 * the dashboard: who this node is, how it serves, each connected peer with what we exchanged
 * with it, the totals, and the NAR downloads in progress.
 */
import type { Connection, PeerId } from '@libp2p/interface'
import type { PeerixNode } from '../p2p/node.js'
import { AGENT_VERSION } from '../p2p/constants.js'
import type { Substituter } from '../substituter/substituter.js'
import type { ServedCounters } from './served.js'
import type { PeerTraffic } from './peer-traffic.js'
import type { PeerLatency } from './latency.js'
import type { ServeMode } from '../store/serving-policy.js'
import { VERSION } from '../version.js'

export interface PeerStatus {
  id: string
  /** Asked for paths: connected and identify listed /peerix/narinfo/1. */
  peerix: boolean
  /** Remote addresses of the open connections. */
  addresses: string[]
  protocols: string[]
  agent: string | null
  /** Ping round trip in ms; null when unknown or the last ping failed. */
  latencyMs: number | null
  /** When the oldest open connection was opened (ms since the epoch, by the daemon's clock). */
  connectedSince: number
  /**
   * How long that connection has been open, by the daemon's clock: what the dashboard and
   * `peerix peers` show, since the machine they run on (through `ssh -L`) may keep other time.
   */
  connectedSeconds: number
  /** Paths in the peer's index summary; null when it sent none (or no index is kept). */
  indexSize: number | null
  /** What it gave us: verified narinfos, answers we dropped, failed asks, NAR bytes. */
  fetched: { narInfos: number, rejected: number, errors: number, narBytes: number }
  /** What we gave it. */
  served: { narInfos: number, refusals: number, narBytes: number }
}

export interface TransferStatus {
  hashPart: string
  narHash: string
  narSize: number
  received: number
  peer: string | null
}

export interface StatusReport {
  peerId: string
  version: string
  agent: string
  publicKey: string
  startedAt: number
  uptimeSeconds: number
  listen: { p2p: string[], http: string }
  policy: { mode: ServeMode, deny: string[], trustedPeers: number, peersOnly: boolean }
  /**
   * Names of the keys a peer's narinfo may be signed by, and of the public caches' keys (what
   * they signed goes to any peer). Read at start: a change to nix.conf needs a restart.
   */
  keys: { trusted: string[], publicCaches: string[] }
  peers: PeerStatus[]
  counters: {
    narInfoRequests: number
    narInfoHits: number
    narInfoMisses: number
    /** Lookups of another host's Nix (the shim on the LAN) refused a path no public cache signed: not hits. */
    narInfoRefusals: number
    /** Peers' answers that were "refused" (their serving policy). */
    refusalsReceived: number
    /** Our refusals to peers (our serving policy). */
    refusalsGiven: number
    verificationFailures: number
    peerErrors: number
    /** Lookups that waited past the budget for a slow peer (one still sending bytes). */
    narInfoSlowPeerWaits: number
    narDownloads: number
    narCompleted: number
    narFailed: number
    narFailovers: number
    /** NARs Nix got from what was fetched with their narinfo. */
    narPrefetchHits: number
    /** Small NARs that came in their narinfo's answer (verified), not downloaded. */
    narsInline: number
    /** Narinfos of references looked up before Nix asked for them. */
    narInfoReadAheads: number
    /** Nix's narinfo requests for a path read ahead. */
    narInfoReadAheadHits: number
    /** Hits answered with a narinfo verified before, its peer not answering again in time. */
    narInfoKeptUnanswered: number
    narBytesIn: number
    narBytesOut: number
    narInfosServed: number
    narsServed: number
  }
  transfers: TransferStatus[]
}

export interface StatusSources {
  node: PeerixNode
  substituter: Substituter
  served: ServedCounters
  traffic: PeerTraffic
  latency: PeerLatency
  publicKey: string
  httpUrl: string
  startedAt: number
  policy: StatusReport['policy']
  keys: StatusReport['keys']
  /** Paths in the index summary a peer sent us, if it sent one. */
  peerIndexSize: (peer: string) => number | undefined
}

/** The report now; pings peers whose round-trip figure is stale first. */
export async function statusReport (src: StatusSources): Promise<StatusReport> {
  const byPeer = new Map<string, { peerId: PeerId, connections: Connection[] }>()
  for (const connection of src.node.getConnections()) {
    const key = connection.remotePeer.toString()
    const entry = byPeer.get(key) ?? { peerId: connection.remotePeer, connections: [] }
    entry.connections.push(connection)
    byPeer.set(key, entry)
  }
  await src.latency.refresh([...byPeer.values()].map(e => e.peerId))
  const peerix = new Set(src.node.services.peerixPeers.list().map(String))
  const peers = await Promise.all([...byPeer.values()].map(async ({ peerId, connections }) => await peerStatus(src, peerId, connections, peerix.has(peerId.toString()))))
  const fetched = src.substituter.counters
  const { served } = src
  const now = Date.now()
  return {
    peerId: src.node.peerId.toString(),
    version: VERSION,
    agent: AGENT_VERSION,
    publicKey: src.publicKey,
    startedAt: src.startedAt,
    uptimeSeconds: Math.floor((now - src.startedAt) / 1000),
    listen: { p2p: src.node.getMultiaddrs().map(String), http: src.httpUrl },
    policy: src.policy,
    keys: src.keys,
    peers: peers.sort((a, b) => a.connectedSince - b.connectedSince),
    counters: {
      narInfoRequests: fetched.narInfoRequests,
      narInfoHits: fetched.narInfoHits,
      narInfoMisses: fetched.narInfoMisses,
      narInfoRefusals: fetched.narInfoRefusals,
      refusalsReceived: fetched.refusals,
      refusalsGiven: served.refusals,
      verificationFailures: fetched.verificationFailures,
      peerErrors: fetched.peerErrors,
      narInfoSlowPeerWaits: fetched.narInfoSlowPeerWaits,
      narDownloads: fetched.narDownloads,
      narCompleted: fetched.narCompleted,
      narFailed: fetched.narFailed,
      narFailovers: fetched.narFailovers,
      narPrefetchHits: fetched.narPrefetchHits,
      narsInline: fetched.narsInline,
      narInfoReadAheads: fetched.narInfoReadAheads,
      narInfoReadAheadHits: fetched.narInfoReadAheadHits,
      narInfoKeptUnanswered: fetched.narInfoKeptUnanswered,
      narBytesIn: fetched.narBytesIn,
      narBytesOut: served.narBytesOut,
      narInfosServed: served.narInfosServed,
      narsServed: served.narsServed
    },
    transfers: src.substituter.transfers().map(t => ({ hashPart: t.hashPart, narHash: t.narHash, narSize: t.narSize, received: t.received, peer: t.peer ?? null }))
  }
}

async function peerStatus (src: StatusSources, peerId: PeerId, connections: Connection[], speaksPeerix: boolean): Promise<PeerStatus> {
  const id = peerId.toString()
  let protocols: string[] = []
  let agent: string | null = null
  try {
    const stored = await src.node.peerStore.get(peerId)
    protocols = [...stored.protocols].sort()
    const raw = stored.metadata.get('AgentVersion')
    if (raw !== undefined) agent = new TextDecoder().decode(raw)
  } catch {
    // Not identified yet: no protocols or agent known.
  }
  const counted = src.substituter.counters.perPeer().get(id)
  const connectedSince = Math.min(...connections.map(c => c.timeline.open))
  return {
    id,
    peerix: speaksPeerix,
    addresses: [...new Set(connections.map(c => c.remoteAddr.toString()))],
    protocols,
    agent,
    latencyMs: src.latency.of(id)?.ms ?? null,
    connectedSince,
    connectedSeconds: Math.max(0, Math.floor((Date.now() - connectedSince) / 1000)),
    indexSize: src.peerIndexSize(id) ?? null,
    fetched: {
      narInfos: counted?.narInfosFound ?? 0,
      rejected: counted?.narInfosRejected ?? 0,
      errors: counted?.errors ?? 0,
      narBytes: counted?.narBytes ?? 0
    },
    served: { ...src.traffic.servedTo(id) }
  }
}
