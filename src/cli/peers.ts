/** `peerix peers`: the connected peers as a table, from the daemon's /status. */
import { Command } from 'commander'
import type { PeerStatus, StatusReport } from '../daemon/status.js'
import { getJson, parseDaemonUrl } from './client.js'
import { formatBytes, formatDuration, table } from './format.js'
import { withDaemonOptions } from './status.js'

export function peersCommand (): Command {
  return withDaemonOptions(new Command('peers').description('list the peers the running daemon is connected to, with what was exchanged with each'))
    .action(async (flags: { url: string, json: boolean }) => {
      const status = await getJson<StatusReport>(parseDaemonUrl(flags.url), '/status')
      process.stdout.write(flags.json ? JSON.stringify(status.peers, null, 2) + '\n' : formatPeers(status.peers))
    })
}

/**
 * One row per peer; INDEX is the size of the summary of its store it sent us, "in" is what it
 * gave us, "out" what we gave it.
 */
export function formatPeers (peers: PeerStatus[]): string {
  if (peers.length === 0) return 'no peers connected\n'
  return table(
    ['PEER', 'AGENT', 'ADDRESS', 'PING', 'CONNECTED', 'INDEX', 'NARINFOS IN/OUT', 'BYTES IN/OUT'],
    peers.map(p => [
      p.peerix ? p.id : `${p.id} (not peerix)`,
      p.agent ?? '?',
      // The peer ID is in the first column already.
      p.addresses.map(a => a.replace(`/p2p/${p.id}`, '')).join(' '),
      p.latencyMs === null ? '-' : `${p.latencyMs} ms`,
      formatDuration(p.connectedSeconds),
      p.indexSize === null ? '-' : `${p.indexSize} paths`,
      `${p.fetched.narInfos}/${p.served.narInfos}`,
      `${formatBytes(p.fetched.narBytes)}/${formatBytes(p.served.narBytes)}`
    ])
  )
}
