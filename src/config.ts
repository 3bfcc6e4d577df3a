/**
 * The daemon's configuration: defaults and validation of every value that comes from the
 * command line. Each error names the flag and the bad value.
 */
import { homedir, hostname } from 'node:os'
import { join } from 'node:path'
import { multiaddr } from '@multiformats/multiaddr'
import { peerIdFromString } from '@libp2p/peer-id'
import { LOG_LEVELS, type LogLevel } from './log.js'
import { SERVE_MODES, type ServeMode } from './store/serving-policy.js'
import { globToRegExp } from './store/glob.js'
import { parsePublicKey } from './nix/signing.js'
import { WIRE_COMPRESSION_MODES, type WireCompression } from './substituter/wire-compression.js'

export const DEFAULT_LISTEN = '127.0.0.1:12304'
export const DEFAULT_P2P_PORT = 12305
export const DEFAULT_P2P_LISTEN = [`/ip4/0.0.0.0/tcp/${DEFAULT_P2P_PORT}`, `/ip6/::/tcp/${DEFAULT_P2P_PORT}`]
export const DEFAULT_PRIORITY = 20
/** How long a narinfo request waits for peers that have not answered (all absent answers return at once). */
export const DEFAULT_TIMEOUT_MS = 1000

/** How often the store summary peers receive looks for paths Nix added (a cheap indexed query). */
export const DEFAULT_INDEX_INTERVAL_MS = 2000
/** How often it re-reads the whole store: collected paths leave peers' summaries within this. */
export const DEFAULT_INDEX_RESYNC_MS = 300_000

export class ConfigError extends Error {
  override name = 'ConfigError'
}

export interface ListenAddress { host: string, port: number }

export interface DaemonConfig {
  listen: ListenAddress
  /** Accept HTTP requests from non-loopback addresses: only when --listen names one. */
  allowRemote: boolean
  p2pListen: string[]
  storeRoot: string
  stateDir: string
  /** An explicit key file; when absent the daemon uses (and on first start creates) one in stateDir. */
  signingKeyFile?: string
  /** Public keys whose signatures make a peer's narinfo acceptable, as Nix writes them. */
  trustedPublicKeys: string[]
  /**
   * Keys of public caches: a path one of them signed could be downloaded by anyone, so it is
   * served to any peer. Not the hosts' own keys, which sign what they keep to trusted peers.
   */
  publicCacheKeys: string[]
  trustedPeers: string[]
  peers: string[]
  mdns: boolean
  priority: number
  timeoutMs: number
  /** `trusted`: paths only this host has go to trusted peers only; `all`: the original's behaviour. */
  serve: ServeMode
  /** Globs over store names never served, on top of DEFAULT_SERVE_DENY. */
  serveDeny: string[]
  /** Refuse libp2p connections from peers not in trustedPeers. */
  peersOnly: boolean
  /** Send peers a summary of the store (/peerix/index/1) and skip peers whose summary rules a path out. */
  index: boolean
  indexIntervalMs: number
  indexResyncMs: number
  /** Fetch small NARs with their narinfo, before Nix asks (src/substituter/nar-prefetch.ts). */
  narPrefetch: boolean
  /** Look up the narinfos of answered paths' references before Nix asks (src/substituter/narinfo-read-ahead.ts). */
  narInfoReadAhead: boolean
  /** zstd on /peerix/nar/1: `auto` asks slow peers (and gigabit ones while zstd comes faster), `zstd` every peer, `off` neither asks nor compresses. */
  wireCompression: WireCompression
  logLevel: LogLevel
}

/** `host:port`, `[v6]:port` or `:port` (loopback). */
export function parseListen (text: string): ListenAddress {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([A-Za-z0-9.-]*)):(\d{1,5})$/.exec(text)
  const port = m != null ? Number(m[3]) : NaN
  if (m == null || port > 65535) throw new ConfigError(`--listen ${JSON.stringify(text)}: expected HOST:PORT, e.g. 127.0.0.1:12304 or [::1]:12304`)
  const host = m[1] ?? (m[2] === '' ? '127.0.0.1' : m[2])
  return { host, port }
}

/** A path flag's value: not empty (a shell variable that was not set). */
export function parsePathFlag (flag: string, text: string): string {
  if (text.trim() === '') throw new ConfigError(`${flag} ${JSON.stringify(text)}: expected a path`)
  return text
}

export function isLoopbackHost (host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host)
}

export function parseMultiaddrFlag (flag: string, text: string): string {
  try {
    const ma = multiaddr(text)
    if (!ma.getComponents().some(c => c.name === 'tcp')) throw new Error('no /tcp/<port> in it')
    return ma.toString()
  } catch (err) {
    throw new ConfigError(`${flag} ${JSON.stringify(text)}: not a TCP multiaddr (${(err as Error).message}); expected e.g. /ip4/10.0.0.5/tcp/${DEFAULT_P2P_PORT}`)
  }
}

export function parsePeerIdFlag (flag: string, text: string): string {
  try {
    return peerIdFromString(text).toString()
  } catch {
    throw new ConfigError(`${flag} ${JSON.stringify(text)}: not a libp2p peer ID (expected e.g. 12D3KooW…)`)
  }
}

export function parseIntegerFlag (flag: string, text: string, min: number, max: number): number {
  if (!/^\d+$/.test(text) || Number(text) < min || Number(text) > max) {
    throw new ConfigError(`${flag} ${JSON.stringify(text)}: expected a whole number from ${min} to ${max}`)
  }
  return Number(text)
}

export function parseLogLevel (text: string): LogLevel {
  if (!(LOG_LEVELS as readonly string[]).includes(text)) throw new ConfigError(`--log-level ${JSON.stringify(text)}: expected one of ${LOG_LEVELS.join(', ')}`)
  return text as LogLevel
}

/** systemd's StateDirectory, else /var/lib/peerix for root, else ~/.local/state/peerix. */
export function defaultStateDir (env = process.env): string {
  if (env.STATE_DIRECTORY != null && env.STATE_DIRECTORY !== '') return env.STATE_DIRECTORY.split(':')[0]
  if (process.getuid?.() === 0) return '/var/lib/peerix'
  return join(env.XDG_STATE_HOME ?? join(homedir(), '.local', 'state'), 'peerix')
}

/** The name of a key peerix generates on first start: `peerix-<hostname>` like the original. */
export function defaultKeyName (): string {
  const host = hostname().replace(/[^A-Za-z0-9._-]/g, '-')
  return `peerix-${host === '' ? 'host' : host}`
}

export function parseServeMode (text: string): ServeMode {
  if (!(SERVE_MODES as readonly string[]).includes(text)) throw new ConfigError(`--serve ${JSON.stringify(text)}: expected one of ${SERVE_MODES.join(', ')}`)
  return text as ServeMode
}

export function parseWireCompression (text: string): WireCompression {
  if (!(WIRE_COMPRESSION_MODES as readonly string[]).includes(text)) throw new ConfigError(`--wire-compression ${JSON.stringify(text)}: expected one of ${WIRE_COMPRESSION_MODES.join(', ')}`)
  return text as WireCompression
}

export function parseGlobFlag (flag: string, text: string): string {
  try {
    globToRegExp(text)
    return text
  } catch (err) {
    throw new ConfigError(`${flag} ${JSON.stringify(text)}: ${(err as Error).message}`)
  }
}

/** A Nix public key `name:base64`; returned as given. */
export function parsePublicKeyFlag (flag: string, text: string): string {
  try {
    parsePublicKey(text)
    return text
  } catch (err) {
    throw new ConfigError(`${flag}: ${(err as Error).message}`)
  }
}
