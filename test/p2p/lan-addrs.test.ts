import assert from 'node:assert/strict'
import { multiaddr } from '@multiformats/multiaddr'
import { lanAddressesFirst, type Interfaces } from '../../src/p2p/lan-addrs.js'

/** An interface address as os.networkInterfaces() gives it. */
function iface (cidr: string, internal = false): NonNullable<Interfaces[string]>[number] {
  const [address] = cidr.split('/')
  const v4 = address.includes('.')
  return v4
    ? { address, cidr, family: 'IPv4', netmask: '', mac: '00:00:00:00:00:00', internal }
    : { address, cidr, family: 'IPv6', netmask: '', mac: '00:00:00:00:00:00', internal, scopeid: 0 }
}

/** A host on 192.168.1.0/24 and fd00:1::/64 with docker, a link-local address and loopback. */
const HOST: Interfaces = {
  lo: [iface('127.0.0.1/8', true), iface('::1/128', true)],
  docker0: [iface('172.17.0.1/16')],
  wlan0: [iface('192.168.1.20/24'), iface('fd00:1::20/64'), iface('fe80::1234/64')]
}

const order = (addrs: string[], interfaces = HOST): string[] =>
  lanAddressesFirst(addrs.map(a => multiaddr(a)), interfaces).map(String)

describe('lanAddressesFirst (the order a peer found by mDNS is dialled in)', () => {
  it('puts the address on a shared link first and this host\'s own addresses last', () => {
    assert.deepEqual(order([
      '/ip4/127.0.0.1/tcp/12305',
      '/ip4/172.17.0.1/tcp/12305', // the same docker bridge address: this host
      '/ip4/10.8.0.2/tcp/12305', // the peer's VPN: maybe routed, maybe not
      '/ip4/192.168.122.1/tcp/12305', // its libvirt network
      '/ip4/192.168.1.10/tcp/12305', // the LAN
      '/ip6/::1/tcp/12305'
    ]), [
      '/ip4/192.168.1.10/tcp/12305',
      '/ip4/10.8.0.2/tcp/12305',
      '/ip4/192.168.122.1/tcp/12305',
      '/ip4/127.0.0.1/tcp/12305',
      '/ip4/172.17.0.1/tcp/12305',
      '/ip6/::1/tcp/12305'
    ])
  })

  it('knows IPv6 subnets, and takes no peer address for on-link by a link-local or loopback subnet', () => {
    assert.deepEqual(order([
      '/ip6/fe80::99/tcp/12305',
      '/ip6/fd00:2::5/tcp/12305',
      '/ip4/127.0.0.2/tcp/12305',
      '/ip6/fd00:1::5/tcp/12305'
    ]), [
      '/ip6/fd00:1::5/tcp/12305',
      '/ip6/fe80::99/tcp/12305',
      '/ip6/fd00:2::5/tcp/12305',
      '/ip4/127.0.0.2/tcp/12305'
    ])
  })

  it('keeps the peer\'s order within each group, and leaves addresses without an IP in the middle', () => {
    assert.deepEqual(order([
      '/dns4/peer.local/tcp/12305',
      '/ip4/192.168.1.11/tcp/12305',
      '/ip4/10.0.0.1/tcp/12305',
      '/ip4/192.168.1.10/tcp/12305'
    ]), [
      '/ip4/192.168.1.11/tcp/12305',
      '/ip4/192.168.1.10/tcp/12305',
      '/dns4/peer.local/tcp/12305',
      '/ip4/10.0.0.1/tcp/12305'
    ])
  })

  it('leaves the order as it is on a host without interfaces it can tell anything by', () => {
    const addrs = ['/ip4/10.0.0.1/tcp/1', '/ip4/192.168.1.10/tcp/1', '/ip6/fd00:1::5/tcp/1']
    assert.deepEqual(order(addrs, {}), addrs)
    assert.deepEqual(order(addrs, { lo: [iface('127.0.0.1/8', true)], eth0: undefined }), addrs)
  })
})
