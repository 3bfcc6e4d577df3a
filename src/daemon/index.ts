/**
 * Wires one host's peerix: config → local store → libp2p node → substituter → HTTP shim, and
 * takes them down in the reverse order.
 */
import { mkdir } from 'node:fs/promises'
import type { AddressInfo } from 'node:net'
import { hostname } from 'node:os'
import { Registry } from 'prom-client'
import { LocalStore } from '../store/local-store.js'
import { NixDb } from '../store/db.js'
import { createPeerixNode, type PeerixNode } from '../p2p/node.js'
import { loadOrCreatePrivateKey } from '../p2p/identity.js'
import { Libp2pPeerClient } from '../p2p/libp2p-peer-client.js'
import { STARTUP_GRACE_MS, Substituter } from '../substituter/substituter.js'
import { createShim, listenShim } from '../http/server.js'
import { TrustedKeys, formatPublicKey, parsePublicKey, publicKeyOf } from '../nix/signing.js'
import { DEFAULT_SERVE_DENY, ServingPolicy } from '../store/serving-policy.js'
import { StoreSummary } from '../store/summary.js'
import type { DaemonConfig } from '../config.js'
import type { Logger } from '../log.js'
import { loadSigningKey, nixTrustedKeys, publicCacheKeys } from './keys.js'
import { ServedLog } from './served.js'
import { PeerTraffic } from './peer-traffic.js'
import { daemonIntrospection } from './introspection.js'
import { applyRuntimeV8Flags } from './node-flags.js'

export interface Daemon {
  readonly peerId: string
  readonly publicKey: string
  readonly httpAddress: AddressInfo
  readonly node: PeerixNode
  readonly served: ServedLog
  stop: () => Promise<void>
}

export async function startDaemon (config: DaemonConfig, log: Logger): Promise<Daemon> {
  applyRuntimeV8Flags()
  const startedAt = Date.now()
  await mkdir(config.stateDir, { recursive: true, mode: 0o700 })
  const signingKey = await loadSigningKey(config.signingKeyFile, config.stateDir, log)
  const publicKey = formatPublicKey(publicKeyOf(signingKey))
  const trustedKeys = config.trustedPublicKeys.length > 0 ? config.trustedPublicKeys.map(text => parsePublicKey(text)) : await nixTrustedKeys()
  const trusted = new TrustedKeys(trustedKeys)
  if (trusted.size === 0) log.warn('no trusted public keys (--trusted-public-keys, or nix.conf\'s trusted-public-keys): nothing from peers will be accepted')
  else log.info(`trusting narinfos signed by ${trustedKeys.map(k => k.name).join(', ')} (read at start: restart after changing them)`)

  // Only a public cache's signature makes a path public: a host's (ours or a peer's) is on
  // what it built or keeps to trusted peers, and a trusted peer that fetched such a path must
  // pass it on neither to a stranger peer nor to another machine's Nix.
  const publicCaches = publicCacheKeys(config.publicCacheKeys, publicKeyOf(signingKey))
  if (publicCaches.ignored) log.warn('--public-cache-keys names this host\'s own signing key: ignored (what this host signs is not public for that)')
  const publicKeys = new TrustedKeys(publicCaches.keys)
  const deny = [...DEFAULT_SERVE_DENY, ...config.serveDeny]
  const policy = new ServingPolicy({ mode: config.serve, deny, trustedPeers: config.trustedPeers, publicKeys })
  // One database connection for the store and its summary; a private copy, when the WAL
  // files cannot be created, goes to the state directory (on disk, not a tmpfs).
  const db = NixDb.open(config.storeRoot, { snapshotDir: config.stateDir })
  const store = LocalStore.open({ storeRoot: config.storeRoot, signingKey, policy, db })
  const traffic = new PeerTraffic(store)
  const served = new ServedLog(traffic, log)
  const cleanups: Array<() => Promise<void> | void> = [() => { db.close() }, () => { store.close() }]
  const stop = async (): Promise<void> => {
    for (const cleanup of cleanups.reverse()) {
      try { await cleanup() } catch (err) { log.warn(`while stopping: ${(err as Error).message}`) }
    }
    cleanups.length = 0
  }

  try {
    const privateKey = await loadOrCreatePrivateKey(config.stateDir)
    const registry = new Registry()
    const summary = config.index ? new StoreSummary({ db, policy, trustedPeers: config.trustedPeers, log }) : undefined
    if (summary !== undefined) {
      summary.start(config.indexIntervalMs, config.indexResyncMs)
      cleanups.push(async () => { await summary.close() })
    }
    const node = await createPeerixNode({
      privateKey,
      listen: config.p2pListen,
      staticPeers: config.peers,
      mdns: config.mdns,
      source: served,
      summary,
      useIndex: config.index,
      trustedPeers: config.trustedPeers,
      peersOnly: config.peersOnly,
      compressNars: config.wireCompression !== 'off',
      metricsRegistry: registry,
      log
    })
    cleanups.push(async () => { await node.stop() })

    const substituter = new Substituter({ client: new Libp2pPeerClient(node), index: config.index ? node.services.index : undefined, trusted, timeoutMs: config.timeoutMs, startupGraceMs: STARTUP_GRACE_MS, wireCompression: config.wireCompression, prefetch: config.narPrefetch ? undefined : false, readAhead: config.narInfoReadAhead ? undefined : false, isLocal: hashPart => store.info(hashPart) !== undefined, log: (line) => { log.info(line) } })
    cleanups.push(() => { substituter.stop() })
    let httpUrl = ''
    const introspection = daemonIntrospection({
      node, substituter, served: served.counters, traffic, trusted, registry, publicKey, startedAt, httpUrl: () => httpUrl,
      policy: { mode: config.serve, deny, trustedPeers: config.trustedPeers.length, peersOnly: config.peersOnly },
      keys: { trusted: trustedKeys.map(k => k.name), publicCaches: publicCaches.keys.map(k => k.name) },
      timeoutMs: config.timeoutMs
    })
    const remote = config.allowRemote ? { publicKeys, hostNames: [config.listen.host, hostname(), `${hostname()}.local`] } : undefined
    const server = createShim({ substituter, priority: config.priority, remote, log: (line) => { log.info(line) }, introspection })
    const httpAddress = await listenShim(server, config.listen.host, config.listen.port)
    httpUrl = `http://${httpAddress.family === 'IPv6' ? `[${httpAddress.address}]` : httpAddress.address}:${httpAddress.port}`
    cleanups.push(async () => { await new Promise<void>((resolve) => { server.close(() => { resolve() }); server.closeAllConnections() }) })

    const peerId = node.peerId.toString()
    log.info(`peer id ${peerId}; p2p on ${node.getMultiaddrs().map(String).join(' ')}`)
    log.info(`signing key ${publicKey}`)
    log.info(`substituter on ${httpUrl}`)
    return { peerId, publicKey, httpAddress, node, served, stop }
  } catch (err) {
    await stop()
    throw err
  }
}
