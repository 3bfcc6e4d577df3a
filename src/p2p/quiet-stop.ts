/**
 * libp2p (3.3) refreshes this node's own addresses in its peer store a second after a transport
 * stops listening (a debounced call in its address manager), and nothing cancels that when the
 * node stops: the timer kept each stopped daemon alive for a second more (`systemctl restart`,
 * every test's daemon). Once the node has stopped, the pending refresh is dropped: nobody is
 * left to tell. Without that private member (another libp2p version) this does nothing.
 */
import type { Startable } from '@libp2p/interface'
import type { AddressManager } from '@libp2p/interface-internal'

interface WithDebouncedRefresh {
  _updatePeerStoreAddresses?: { stop?: () => void }
}

export function quietStop (): (components: { addressManager: AddressManager }) => Startable {
  return (components) => ({
    start () {},
    stop () {},
    afterStop () {
      (components.addressManager as AddressManager & WithDebouncedRefresh)._updatePeerStoreAddresses?.stop?.()
    }
  })
}
