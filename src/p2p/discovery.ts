/**
 * mDNS discovery that also dials what it finds: libp2p 3 only records discovered peers in
 * the peer store and leaves connecting to the application. Dialling on every mDNS answer
 * (not only on the first sighting, as `peer:discovery` would) reconnects a host that went
 * away and came back with the same PeerId. The peer's addresses are dialled in the order
 * `lanAddressesFirst` gives them: the one on a link this host shares with it first.
 */
import { networkInterfaces } from 'node:os'
import { mdns } from '@libp2p/mdns'
import { shortPeer, type Logger } from '../log.js'
import { MDNS_SERVICE_TAG } from './constants.js'
import { lanAddressesFirst, type Interfaces } from './lan-addrs.js'
import type { MulticastDNSComponents, MulticastDNSInit } from '@libp2p/mdns'
import type { AbortOptions, Connection, PeerDiscovery, PeerId, PeerInfo } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'

export interface MdnsDiscoveryComponents extends MulticastDNSComponents {
  connectionManager: {
    openConnection: (peer: Multiaddr[], options?: AbortOptions) => Promise<Connection>
    getConnections: (peerId?: PeerId) => Connection[]
  }
}

export interface MdnsDiscoveryInit extends MulticastDNSInit {
  log: Logger
  /** This host's interfaces, read at each dial (`os.networkInterfaces` by default). */
  interfaces?: () => Interfaces
}

/** mDNS with the peerix service tag, dialling each peer it finds that is not connected yet. */
export function mdnsDiscovery (init: MdnsDiscoveryInit): (components: MdnsDiscoveryComponents) => PeerDiscovery {
  const { log, interfaces = networkInterfaces, ...mdnsInit } = init
  const createMdns = mdns({ serviceTag: MDNS_SERVICE_TAG, ...mdnsInit })
  return (components) => {
    const discovery = createMdns(components)
    const dialling = new Set<string>()
    discovery.addEventListener('peer', (evt: CustomEvent<PeerInfo>) => {
      const { id, multiaddrs } = evt.detail
      const key = id.toString()
      if (dialling.has(key) || components.connectionManager.getConnections(id).length > 0) return
      dialling.add(key)
      const ordered = lanAddressesFirst(multiaddrs, readInterfaces(interfaces))
      log.debug(`mDNS: dialling ${shortPeer(key)} at ${ordered.join(' ')}`)
      components.connectionManager.openConnection(ordered.map(ma => ma.encapsulate(`/p2p/${key}`)))
        .catch((err: Error) => { log.debug(`mDNS: could not dial ${shortPeer(key)} (${err.message})`) })
        .finally(() => { dialling.delete(key) })
    })
    return discovery
  }
}

/** This host's interfaces, or none when they cannot be read (the peer's order is kept then). */
function readInterfaces (interfaces: () => Interfaces): Interfaces {
  try {
    return interfaces()
  } catch {
    return {}
  }
}
