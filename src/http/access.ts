/**
 * Who may use the shim: by default only this host. It hands out whatever any peer has, so
 * answering the LAN would make this host an open relay for the whole peer network.
 */
import { isIPv4 } from 'node:net'

/** True for 127.0.0.0/8, ::1 and IPv4-mapped loopback (::ffff:127.x.x.x). */
export function isLoopback (address: string | undefined): boolean {
  if (address === undefined) return false
  if (address === '::1') return true
  const v4 = address.startsWith('::ffff:') ? address.slice('::ffff:'.length) : address
  return isIPv4(v4) && v4.startsWith('127.')
}

/**
 * True when the Host header names this host by a loopback name or address. A web page in a
 * browser here could otherwise reach the shim through DNS rebinding (a name it controls that
 * resolves to 127.0.0.1) and read /status; its requests carry that name as Host.
 */
export function isLoopbackHost (host: string | undefined): boolean {
  if (host === undefined) return true // HTTP/1.0 clients send none; the address check still applies
  const name = /^\[([^\]]+)\](?::\d+)?$/.exec(host)?.[1] ?? host.replace(/:\d+$/, '')
  return name.toLowerCase() === 'localhost' || isLoopback(name)
}
