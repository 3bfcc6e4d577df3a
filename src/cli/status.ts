/** `peerix status`: the running daemon at a glance, from its /status. */
import { Command, Option } from 'commander'
import type { StatusReport } from '../daemon/status.js'
import { shortPeer } from '../log.js'
import { DEFAULT_URL, getJson, parseDaemonUrl } from './client.js'
import { formatBytes, formatDuration, printable, table } from './format.js'

/** `--url` and `--json`, shared by the commands that read a daemon. */
export function withDaemonOptions (command: Command): Command {
  return command
    .addOption(new Option('--url <url>', 'the daemon\'s substituter URL').default(DEFAULT_URL))
    .option('--json', 'print the daemon\'s JSON as is, for scripts', false)
}

export function statusCommand (): Command {
  return withDaemonOptions(new Command('status').description('show what the running daemon is, whom it is connected to and what it fetched and served'))
    .action(async (flags: { url: string, json: boolean }) => {
      const status = await getJson<StatusReport>(parseDaemonUrl(flags.url), '/status')
      process.stdout.write(flags.json ? JSON.stringify(status, null, 2) + '\n' : formatStatus(status))
    })
}

export function formatStatus (s: StatusReport): string {
  const c = s.counters
  // A daemon from before narInfoRefusals has none: its refusals were counted as hits.
  const refused = c.narInfoRefusals ?? 0
  const asked = c.narInfoHits + c.narInfoMisses + refused
  const hitRate = asked === 0 ? 'no lookups yet' : `${Math.round(100 * c.narInfoHits / asked)} % hit rate`
  const peerix = s.peers.filter(p => p.peerix).length
  const { policy } = s
  const lines: Array<[string, string]> = [
    ['peer id', s.peerId],
    ['agent', s.agent],
    ['uptime', formatDuration(s.uptimeSeconds)],
    ['substituter', s.listen.http],
    ...s.listen.p2p.map((a, i): [string, string] => [i === 0 ? 'p2p' : '', a]),
    ['signing key', s.publicKey],
    ['serving', `${policy.mode}; ${policy.deny.length} deny globs; ${policy.trustedPeers} trusted peers; peers-only ${policy.peersOnly ? 'on' : 'off'}`],
    ['trusts', `${s.keys.trusted.length === 0 ? 'no keys' : s.keys.trusted.join(', ')}; public caches: ${s.keys.publicCaches.length === 0 ? 'none' : s.keys.publicCaches.join(', ')}`],
    ['peers', `${s.peers.length} connected (${peerix} peerix)`],
    ['narinfo', `${c.narInfoHits} hits, ${c.narInfoMisses} misses${refused > 0 ? `, ${refused} refused to other hosts` : ''} (${hitRate}); ${c.verificationFailures} verification failures${(c.narInfoSlowPeerWaits ?? 0) > 0 ? `; ${c.narInfoSlowPeerWaits} waits for slow peers` : ''}${(c.narInfoKeptUnanswered ?? 0) > 0 ? `; ${c.narInfoKeptUnanswered} earlier answers kept` : ''}`],
    ['refusals', `${c.refusalsReceived} received from peers, ${c.refusalsGiven} given to peers`],
    ['fetched', `${c.narCompleted + c.narsInline} NARs${c.narsInline > 0 ? ` (${c.narsInline} with their narinfo)` : ''}, ${formatBytes(c.narBytesIn)} from peers${c.narFailed > 0 ? `; ${c.narFailed} failed` : ''}`],
    ['served', `${c.narsServed} NARs, ${formatBytes(c.narBytesOut)} to peers; ${c.narInfosServed} narinfos`],
    ['transfers', s.transfers.length === 0 ? 'none' : `${s.transfers.length} in progress`]
  ]
  const width = Math.max(...lines.map(([k]) => k.length))
  let out = lines.map(([k, v]) => `${k.padEnd(width)}  ${printable(v)}`).join('\n') + '\n'
  if (s.transfers.length > 0) {
    out += '\n' + table(['PATH', 'PEER', 'PROGRESS'], s.transfers.map(t => [
      t.hashPart,
      t.peer === null ? '' : shortPeer(t.peer),
      `${formatBytes(t.received)} / ${formatBytes(t.narSize)} (${t.narSize === 0 ? 100 : Math.floor(100 * t.received / t.narSize)} %)`
    ]))
  }
  return out
}
