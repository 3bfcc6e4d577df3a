/**
 * `--peers-only`: a connection gater that lets only `--trusted-peer` peers in or out. Noise
 * has authenticated the remote PeerId by the time the gater is asked, so a peer cannot pass
 * by claiming another's ID; an untrusted peer never gets to open a stream.
 */
import type { ConnectionGater, PeerId } from '@libp2p/interface'

export function trustedPeersOnly (trusted: PeerId[]): ConnectionGater {
  const allowed = new Set(trusted.map(String))
  const deny = (peerId: PeerId): boolean => !allowed.has(peerId.toString())
  return {
    denyDialPeer: deny,
    denyInboundEncryptedConnection: deny,
    denyOutboundEncryptedConnection: deny
  }
}
