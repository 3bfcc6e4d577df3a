/**
 * Who may use the shim: by default only this host. It hands out whatever any peer has, so
 * answering the LAN would make this host an open relay for the whole peer network.
 */
import { isIP, isIPv4 } from 'node:net'
import { networkInterfaces } from 'node:os'

/** True for 127.0.0.0/8, ::1 and IPv4-mapped loopback (::ffff:127.x.x.x). */
export function isLoopback (address: string | undefined): boolean {
  if (address === undefined) return false
  if (address === '::1') return true
  const v4 = address.startsWith('::ffff:') ? address.slice('::ffff:'.length) : address
  return isIPv4(v4) && v4.startsWith('127.')
}

/**
 * True when `address` is this host's: loopback, or one of its interfaces' addresses (Nix here
 * reaching a shim that listens on the LAN address comes from that address, not loopback).
 */
export function isThisHost (address: string | undefined): boolean {
  if (address === undefined) return false
  if (isLoopback(address)) return true
  const plain = address.startsWith('::ffff:') ? address.slice('::ffff:'.length) : address
  try {
    return Object.values(networkInterfaces()).some(list => list?.some(i => i.address === plain) === true)
  } catch {
    return false // the interfaces cannot be listed (a sandbox without netlink): another host, then
  }
}

/**
 * True when the Host header names this host by a loopback name or address. A web page in a
 * browser here could otherwise reach the shim through DNS rebinding (a name it controls that
 * resolves to 127.0.0.1) and read /status; its requests carry that name as Host.
 */
export function isLoopbackHost (host: string | undefined): boolean {
  if (host === undefined) return true // HTTP/1.0 clients send none; the address check still applies
  const name = hostName(host)
  return name === 'localhost' || isLoopback(name)
}

/** The name or address of a Host header, without port or IPv6 brackets, in lower case. */
function hostName (host: string): string {
  return (/^\[([^\]]+)\](?::\d+)?$/.exec(host)?.[1] ?? host.replace(/:\d+$/, '')).toLowerCase()
}

/**
 * True when the Host header may reach a shim that also serves other hosts: a loopback name,
 * an IP address, or one of this host's names. Not any name: a name a web page controls is
 * how DNS rebinding reaches a server, from this host's browser or another's.
 */
export function isHostForRemote (host: string | undefined, hostNames: readonly string[]): boolean {
  if (host === undefined || isLoopbackHost(host)) return true
  const name = hostName(host)
  return isIP(name) !== 0 || hostNames.some(n => n.toLowerCase() === name)
}
