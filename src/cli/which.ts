/** `peerix which`: which peers have a store path, and whose signature on it we accept. */
import { Command } from 'commander'
import { FormatError } from '../nix/errors.js'
import { parseHashPart, STORE_DIR } from '../nix/store-path.js'
import type { PeerHolding } from '../substituter/which.js'
import { getJson, parseDaemonUrl } from './client.js'
import { printable, table } from './format.js'
import { withDaemonOptions } from './status.js'

export function whichCommand (): Command {
  return withDaemonOptions(new Command('which')
    .description('ask every connected peer for a store path; exits 1 when none has a copy signed by a trusted key')
    .argument('<path>', `a store path (${STORE_DIR}/<hash>-<name>[/...]), <hash>-<name>, or the 32-character hash`))
    .action(async (path: string, flags: { url: string, json: boolean }) => {
      const hashPart = hashPartOf(path)
      const holdings = await getJson<PeerHolding[]>(parseDaemonUrl(flags.url), `/which/${hashPart}`)
      process.stdout.write(flags.json ? JSON.stringify(holdings, null, 2) + '\n' : formatWhich(hashPart, holdings))
      if (!holdings.some(h => h.status === 'verified')) process.exitCode = 1
    })
}

/** The hash part of a store path (or of a file inside one), a base name, or a bare hash. */
export function hashPartOf (text: string): string {
  const rest = text.startsWith(`${STORE_DIR}/`) ? text.slice(STORE_DIR.length + 1) : text
  const hash = rest.split('/')[0].split('-')[0]
  try {
    return parseHashPart(hash)
  } catch (err) {
    if (err instanceof FormatError) throw new FormatError(`${JSON.stringify(text)} is neither a store path nor a store hash: ${err.message}`)
    throw err
  }
}

export function formatWhich (hashPart: string, holdings: PeerHolding[]): string {
  if (holdings.length === 0) return `no peers connected to ask for ${hashPart}\n`
  const verified = holdings.filter(h => h.status === 'verified')
  const name = verified[0]?.storePath ?? hashPart
  const head = `${printable(name)}: ${verified.length} of ${holdings.length} peers have it signed by a trusted key\n`
  return head + table(['PEER', 'STATUS', 'DETAILS'], holdings.map(h => [h.peer, h.status, details(h)]))
}

function details (h: PeerHolding): string {
  switch (h.status) {
    case 'verified':
      return `verified by ${h.verifiedBy}; signed by ${h.signatures.join(', ')}`
    case 'unverified':
      return `${h.reason}${h.signatures.length > 0 ? `; signed by ${h.signatures.join(', ')}` : '; no signatures'}`
    case 'absent':
      return 'does not have it'
    case 'refused':
    case 'error':
      return h.reason
  }
}
