/** Node-wide constants of the peerix libp2p node. */
import { VERSION } from '../version.js'

/**
 * The mDNS service name peerix nodes ask for and answer to. Not libp2p's default
 * `_p2p._udp.local`, so a peerix node does not find (and dial) every libp2p program on the LAN.
 */
export const MDNS_SERVICE_TAG = '_peerix._udp.local'

/** The TCP port peerix listens on for libp2p when `--p2p-listen` is not given. */
export const DEFAULT_P2P_PORT = 12305

/** Where the node listens by default: every IPv4 and every IPv6 address. */
export const DEFAULT_LISTEN = [`/ip4/0.0.0.0/tcp/${DEFAULT_P2P_PORT}`, `/ip6/::/tcp/${DEFAULT_P2P_PORT}`]

/** What identify announces as the agent version, so libp2p tools can tell a peerix node. */
export const AGENT_VERSION = `peerix/${VERSION}`

/** The file in the state directory that holds the node's libp2p private key (its PeerId). */
export const PEER_KEY_FILE = 'peer-key'
