/**
 * The order in which to dial the addresses a peer announced over mDNS. A daemon listening on
 * every address announces all its private ones: its LAN address, but also docker and libvirt
 * bridges, VPN addresses and loopback, in the order of its interfaces. libp2p dials them one
 * at a time (6 s each, 10 s in all), so an unreachable address ahead of the LAN one delayed
 * the connection by 6 s, and two made it fail every time (README "Finding peers").
 *
 * mDNS only reaches hosts on a link this host is on, so the peer's address in the subnet of
 * one of this host's interfaces is the one most likely to answer: those come first. An address
 * this host has itself (the same docker bridge, 172.17.0.1, on both hosts; loopback) reaches
 * this host, not the peer, unless both run on one host: those come last. The rest keep the
 * peer's order in between. libp2p sorts the addresses it is handed again (loopback last,
 * public first), which leaves private addresses, all that mDNS announces, in this order.
 */
import { BlockList, isIPv4, isIPv6 } from 'node:net'
import type { NetworkInterfaceInfo } from 'node:os'
import type { Multiaddr } from '@multiformats/multiaddr'

/** What `os.networkInterfaces()` returns. */
export type Interfaces = NodeJS.Dict<NetworkInterfaceInfo[]>

const ON_LINK = 0
const ELSEWHERE = 1
const OWN = 2

/** `addrs` in the order to dial them from a host with these interfaces; the sort is stable. */
export function lanAddressesFirst (addrs: Multiaddr[], interfaces: Interfaces): Multiaddr[] {
  const own = new BlockList()
  const onLink = new BlockList()
  for (const info of Object.values(interfaces).flat()) {
    if (info === undefined) continue
    const type = info.family === 'IPv4' ? 'ipv4' : 'ipv6'
    own.addAddress(info.address, type)
    const prefix = Number(info.cidr?.split('/')[1])
    // Loopback and IPv6 link-local subnets say nothing about the peer's addresses.
    if (info.internal || isLinkLocal(info.address) || !Number.isInteger(prefix)) continue
    onLink.addSubnet(info.address, prefix, type)
  }
  const rank = (ma: Multiaddr): number => {
    const ip = ipOf(ma)
    if (ip === undefined) return ELSEWHERE
    const type = isIPv4(ip) ? 'ipv4' : 'ipv6'
    if (own.check(ip, type) || isLoopback(ip)) return OWN
    return onLink.check(ip, type) ? ON_LINK : ELSEWHERE
  }
  return addrs
    .map((ma, index) => ({ ma, index, rank: rank(ma) }))
    .sort((x, y) => x.rank - y.rank || x.index - y.index)
    .map(({ ma }) => ma)
}

/** The IP address a multiaddr starts with (`/ip4/…`, `/ip6/…`), if it does. */
function ipOf (ma: Multiaddr): string | undefined {
  const first = ma.getComponents()[0]
  if (first === undefined || (first.name !== 'ip4' && first.name !== 'ip6') || first.value === undefined) return undefined
  return isIPv4(first.value) || isIPv6(first.value) ? first.value : undefined
}

function isLoopback (ip: string): boolean {
  return ip.startsWith('127.') || ip === '::1'
}

function isLinkLocal (ip: string): boolean {
  return /^fe[89ab]/i.test(ip)
}
