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
