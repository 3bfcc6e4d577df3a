/**
 * The peerix libp2p node: TCP (IPv4 and IPv6), Noise, yamux; identify and ping so standard
 * libp2p tools can see and probe it; mDNS under a peerix-only service tag; static peers kept
 * connected; and the peerix services that answer from this host's store.
 */
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { identify, type Identify } from '@libp2p/identify'
import { peerIdFromString } from '@libp2p/peer-id'
import { ping, type Ping } from '@libp2p/ping'
import { prometheusMetrics } from '@libp2p/prometheus-metrics'
import { tcp } from '@libp2p/tcp'
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr'
import { createLibp2p } from 'libp2p'
import { FormatError } from '../nix/errors.js'
import { silentLogger, type Logger } from '../log.js'
import { VERSION } from '../version.js'
import { AGENT_VERSION, DEFAULT_LISTEN } from './constants.js'
import { mdnsDiscovery } from './discovery.js'
import { trustedPeersOnly } from './gater.js'
import { peerIndex, type PeerIndex, type SummarySource } from './index/index.js'
import { nar, type NarService } from './nar/index.js'
import { narinfo, NARINFO_PROTOCOL, type NarinfoService } from './narinfo/index.js'
import { peerixPeers, type PeerixPeers } from './peerix-peers.js'
import { staticPeers, type StaticPeers } from './static-peers.js'
import { batchYamuxWindowUpdates } from './yamux-window.js'
import { fairMuxerTurns } from './yamux-fair-turns.js'
import { corkedSends } from './corked-sends.js'
import { noiseWithoutCopies } from './noise-copies.js'
import { PeerLiveness } from './peer-liveness.js'
import { quietStop } from './quiet-stop.js'
import type { PathSource } from '../store/source.js'
import type { Libp2p, PeerId, PrivateKey, Startable } from '@libp2p/interface'
import type { Registry } from 'prom-client'

export interface PeerixNodeOptions {
  privateKey: PrivateKey
  /** Multiaddrs to listen on; default TCP 12305 on every IPv4 and IPv6 address. */
  listen?: string[]
  /** Multiaddrs of peers to keep connected, with or without `/p2p/<id>`. */
  staticPeers?: string[]
  /** Find peers on the LAN by mDNS (and let them find this node). */
  mdns: boolean
  /** What this host serves to peers. */
  source: PathSource
  /** The summary of it sent to peers over /peerix/index/1; without one peers ask us for everything. */
  summary?: SummarySource
  /** Receive peers' summaries (default true; --no-index neither sends nor uses them). */
  useIndex?: boolean
  /** Peer ID strings (`--trusted-peer`). */
  trustedPeers?: string[]
  /** Refuse connections to and from peers not in `trustedPeers`. */
  peersOnly?: boolean
  /** Compress NARs for peers that accept zstd (default true). */
  compressNars?: boolean
  /** How long a narinfo query to one peer may take at most (ms). */
  narinfoTimeout?: number
  /** Redial delays for static peers (ms); shorter ones make tests quick. */
  staticPeerBackoff?: { minMs: number, maxMs: number }
  log?: Logger
  /** Where libp2p's own metrics go (one registry per daemon, not prom-client's global one). */
  metricsRegistry?: Registry
}

// A type alias, not an interface: libp2p's ServiceMap needs an index signature.
export type PeerixServices = {
  identify: Identify
  ping: Ping
  narinfo: NarinfoService
  nar: NarService
  index: PeerIndex
  peerixPeers: PeerixPeers
  staticPeers: StaticPeers
  liveness: PeerLiveness
  quietStop: Startable
}

/**
 * libp2p pings every connection every 10 s and aborts it when a ping takes longer than an
 * adaptive timeout of at least 5 s. Behind 16 parallel NARs a ping waits for the data queued
 * ahead of it on the connection, and 5 s was measured to be too little (test/e2e/load.test.ts):
 * the connection, and every download on it, was cut. A dead peer is still found within 40 s.
 * The answering side must allow as long: @libp2p/ping resets a ping stream it has not seen
 * through within 10 s, and the pinging side aborts the connection on that reset. On a lossy
 * link (10 % loss) or after the link was down for 12 s, that cut connections (and their NARs)
 * that were working.
 */
const MIN_PING_TIMEOUT_MS = 30_000
/**
 * The connection monitor starts a ping every 10 s whether or not the last one has finished, and
 * @libp2p/ping allows one outbound and two inbound ping streams per connection: a ping that
 * takes longer than 10 s (allowed above) made the next one fail to open its stream, and the
 * monitor aborted the connection for that (seen right after a 12 s link outage). Room for every
 * ping that may be running at once (30 s / 10 s, and one more).
 */
const PING_STREAMS = 4
/**
 * How long the other side of a stream has to name its protocol (libp2p: 10 s) before the stream
 * is reset. A ping stream opened just before a 12 s link outage had its protocol arrive late,
 * was reset for it, and the pinging side aborted the connection on that reset: as long as the
 * ping itself may take.
 */
const STREAM_NEGOTIATION_TIMEOUT_MS = MIN_PING_TIMEOUT_MS

export type PeerixNode = Libp2p<PeerixServices>

/** A started node. Bad multiaddrs or peer IDs are a FormatError naming the value. */
export async function createPeerixNode (opts: PeerixNodeOptions): Promise<PeerixNode> {
  batchYamuxWindowUpdates()
  fairMuxerTurns()
  const liveness = new PeerLiveness()
  const log = opts.log ?? silentLogger
  const listen = (opts.listen ?? DEFAULT_LISTEN).map(text => parseTcpMultiaddr('listen address', text))
  const statics = (opts.staticPeers ?? []).map(text => parseTcpMultiaddr('static peer', text))
  const trusted = (opts.trustedPeers ?? []).map(parsePeerId)
  if (opts.peersOnly === true && trusted.length === 0) log.warn('peers-only with no trusted peers: every connection will be refused')

  try {
    return await createLibp2p<PeerixServices>({
      privateKey: opts.privateKey,
      nodeInfo: { name: 'peerix', version: VERSION, userAgent: AGENT_VERSION },
      addresses: { listen: listen.map(String) },
      transports: [tcp()],
      connectionEncrypters: [liveness.watching(noiseWithoutCopies(corkedSends(noise())))],
      // Nix asks for many narinfos at once right after a peer connects, and a yamux that limits
      // streams opened before the other side set them up (10 by default) resets the whole
      // connection past that. 8.0.1 keeps the option but does not read it; set for one that does.
      streamMuxers: [yamux({ maxEarlyStreams: 256 })],
      connectionMonitor: { pingTimeout: { minTimeout: MIN_PING_TIMEOUT_MS } },
      connectionManager: { inboundStreamProtocolNegotiationTimeout: STREAM_NEGOTIATION_TIMEOUT_MS, outboundStreamProtocolNegotiationTimeout: STREAM_NEGOTIATION_TIMEOUT_MS },
      metrics: opts.metricsRegistry === undefined ? undefined : prometheusMetrics({ registry: opts.metricsRegistry }),
      connectionGater: opts.peersOnly === true ? trustedPeersOnly(trusted) : undefined,
      peerDiscovery: opts.mdns ? [mdnsDiscovery({ log })] : [],
      services: {
        identify: identify(),
        ping: ping({ timeout: MIN_PING_TIMEOUT_MS, maxInboundStreams: PING_STREAMS, maxOutboundStreams: PING_STREAMS }),
        narinfo: narinfo({ source: opts.source, timeout: opts.narinfoTimeout, log }),
        nar: nar({ source: opts.source, compress: opts.compressNars, log }),
        index: peerIndex({ summary: opts.summary, subscribe: opts.useIndex, log }),
        peerixPeers: peerixPeers({ protocol: NARINFO_PROTOCOL, log }),
        staticPeers: staticPeers({
          addrs: statics,
          log,
          minBackoffMs: opts.staticPeerBackoff?.minMs,
          maxBackoffMs: opts.staticPeerBackoff?.maxMs
        }),
        liveness: () => liveness,
        quietStop: quietStop()
      }
    })
  } catch (err) {
    throw listenFailure(err)
  }
}

/**
 * libp2p's error for addresses it could not listen on names its own option (faultTolerance),
 * which a peerix user cannot set, and carries stack traces: said again as the address and why.
 */
function listenFailure (err: unknown): unknown {
  if (!(err instanceof Error) || err.name !== 'UnsupportedListenAddressesError') return err
  const failed = [...err.message.matchAll(/^\s+(\/\S+): (?:Error: )?(.*)$/gm)].map(m => `${m[1]} (${m[2]})`)
  return new Error(`cannot listen for peers on ${failed.length > 0 ? failed.join(', ') : 'the listen addresses'}`)
}

function parseTcpMultiaddr (what: string, text: string): Multiaddr {
  let ma: Multiaddr
  try {
    ma = multiaddr(text)
  } catch (err) {
    throw new FormatError(`${what} ${JSON.stringify(text)} is not a multiaddr (${(err as Error).message})`)
  }
  const names = ma.getComponents().map(c => c.name)
  if (!names.includes('tcp')) throw new FormatError(`${what} ${JSON.stringify(text)} has no /tcp/<port>: peerix speaks libp2p over TCP`)
  const id = ma.getComponents().findLast(c => c.name === 'p2p')?.value
  if (id !== undefined) {
    try {
      parsePeerId(id)
    } catch (err) {
      throw new FormatError(`${what} ${JSON.stringify(text)}: ${(err as Error).message}`)
    }
  }
  return ma
}

function parsePeerId (text: string): PeerId {
  try {
    return peerIdFromString(text)
  } catch {
    throw new FormatError(`${JSON.stringify(text)} is not a libp2p peer ID`)
  }
}
