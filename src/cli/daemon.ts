/** `peerix daemon`: runs the substituter and serves this host's store until SIGINT/SIGTERM. */
import { Command, Option } from 'commander'
import {
  DEFAULT_INDEX_INTERVAL_MS, DEFAULT_INDEX_RESYNC_MS, DEFAULT_LISTEN, DEFAULT_P2P_LISTEN, DEFAULT_PRIORITY, DEFAULT_TIMEOUT_MS, defaultStateDir,
  isLoopbackHost, parseGlobFlag, parseIntegerFlag, parsePathFlag, parsePublicKeyFlag, parseServeMode, parseListen, parseLogLevel, parseMultiaddrFlag, parsePeerIdFlag, parseWireCompression, type DaemonConfig
} from '../config.js'
import { createLogger } from '../log.js'
import { DEFAULT_SERVE_DENY } from '../store/serving-policy.js'
import { NIX_DEFAULT_TRUSTED_PUBLIC_KEYS } from '../nix/nix-conf.js'

const repeat = (value: string, previous: string[] = []): string[] => [...previous, value]

interface DaemonFlags {
  listen: string
  p2pListen?: string[]
  storeRoot: string
  stateDir?: string
  signingKeyFile?: string
  trustedPublicKeys?: string[]
  publicCacheKeys?: string[]
  trustedPeer?: string[]
  peer?: string[]
  mdns: boolean
  priority: string
  timeout: string
  serve: string
  serveDeny?: string[]
  peersOnly: boolean
  index: boolean
  indexInterval: string
  indexResync: string
  narPrefetch: boolean
  narinfoReadAhead: boolean
  wireCompression: string
  logLevel: string
}

/** The keys of a repeatable flag whose values are space-separated key lists, as Nix writes them. */
function keyList (flag: string, values: string[]): string[] {
  return values.flatMap(v => v.split(/\s+/)).filter(k => k !== '').map(k => parsePublicKeyFlag(flag, k))
}

/** Validates the flags into a DaemonConfig; throws ConfigError naming the flag and value. */
export function configFromFlags (flags: DaemonFlags): DaemonConfig {
  const listen = parseListen(flags.listen)
  return {
    listen,
    allowRemote: !isLoopbackHost(listen.host),
    p2pListen: (flags.p2pListen ?? DEFAULT_P2P_LISTEN).map(a => parseMultiaddrFlag('--p2p-listen', a)),
    storeRoot: parsePathFlag('--store-root', flags.storeRoot),
    stateDir: flags.stateDir === undefined ? defaultStateDir() : parsePathFlag('--state-dir', flags.stateDir),
    signingKeyFile: flags.signingKeyFile === undefined ? undefined : parsePathFlag('--signing-key-file', flags.signingKeyFile),
    trustedPublicKeys: keyList('--trusted-public-keys', flags.trustedPublicKeys ?? []),
    publicCacheKeys: flags.publicCacheKeys === undefined ? [...NIX_DEFAULT_TRUSTED_PUBLIC_KEYS] : keyList('--public-cache-keys', flags.publicCacheKeys),
    trustedPeers: (flags.trustedPeer ?? []).map(p => parsePeerIdFlag('--trusted-peer', p)),
    peers: (flags.peer ?? []).map(a => parseMultiaddrFlag('--peer', a)),
    mdns: flags.mdns,
    priority: parseIntegerFlag('--priority', flags.priority, 0, 1000),
    timeoutMs: parseIntegerFlag('--timeout', flags.timeout, 1, 600_000),
    serve: parseServeMode(flags.serve),
    serveDeny: (flags.serveDeny ?? []).map(g => parseGlobFlag('--serve-deny', g)),
    peersOnly: flags.peersOnly,
    index: flags.index,
    indexIntervalMs: parseIntegerFlag('--index-interval', flags.indexInterval, 10, 3_600_000),
    indexResyncMs: parseIntegerFlag('--index-resync', flags.indexResync, 1000, 86_400_000),
    narPrefetch: flags.narPrefetch,
    narInfoReadAhead: flags.narinfoReadAhead,
    wireCompression: parseWireCompression(flags.wireCompression),
    logLevel: parseLogLevel(flags.logLevel)
  }
}

export function daemonCommand (): Command {
  return new Command('daemon')
    .description('run the localhost substituter and share this host\'s store with peers')
    .option('--listen <host:port>', 'address of the HTTP substituter for Nix; a non-loopback address also serves other machines, only what a public cache signed', DEFAULT_LISTEN)
    .option('--p2p-listen <multiaddr>', `libp2p listen address, repeatable (default: ${DEFAULT_P2P_LISTEN.join(' and ')})`, repeat)
    .option('--store-root <dir>', 'root of the Nix store to serve (a chroot store: DIR/nix/store, DIR/nix/var/nix/db)', '/')
    .option('--state-dir <dir>', 'where the peer identity and a generated signing key live (default: $STATE_DIRECTORY, /var/lib/peerix as root, else $XDG_STATE_HOME/peerix or ~/.local/state/peerix)')
    .option('--signing-key-file <file>', 'Nix secret key to sign served narinfos (default: <state-dir>/signing-key, created on first start)')
    .option('--trusted-public-keys <keys>', 'space-separated public keys a peer\'s narinfo must be signed by, repeatable (default: the keys Nix trusts by nix.conf, from its default cache.nixos.org-1)', repeat)
    .option('--public-cache-keys <keys>', 'space-separated keys of public caches, repeatable: a path one of them signed is served to any peer, as anyone could download it (default: cache.nixos.org-1\'s; the hosts\' own keys do not belong here)', repeat)
    .option('--trusted-peer <peerId>', 'a peer ID trusted with paths only this host has, repeatable', repeat)
    .option('--peer <multiaddr>', 'a static peer to keep connected (VPN, other subnet), repeatable', repeat)
    .option('--no-mdns', 'do not discover peers with mDNS')
    .option('--priority <n>', 'substituter priority announced in nix-cache-info (lower is preferred)', String(DEFAULT_PRIORITY))
    .option('--timeout <ms>', 'how long a narinfo request waits for peers that have not answered', String(DEFAULT_TIMEOUT_MS))
    .option('--serve <mode>', '"trusted": paths only this host has go to --trusted-peer peers only; "all": every path to every peer', 'trusted')
    .option('--serve-deny <glob>', `never serve store names matching this glob, repeatable (always denied: ${DEFAULT_SERVE_DENY.join(' ')})`, repeat)
    .option('--peers-only', 'refuse libp2p connections from peers not named by --trusted-peer', false)
    .option('--no-index', 'neither send peers a summary of this store nor use theirs: every peer is asked for every path')
    .option('--index-interval <ms>', 'how often the summary sent to peers picks up paths Nix added', String(DEFAULT_INDEX_INTERVAL_MS))
    .option('--index-resync <ms>', 'how often the summary re-reads the whole store (drops collected paths, sees new signatures)', String(DEFAULT_INDEX_RESYNC_MS))
    .option('--no-nar-prefetch', 'fetch a small NAR only when Nix asks for it, not as soon as its narinfo was answered')
    .option('--no-narinfo-read-ahead', 'look up a narinfo only when Nix asks for it, not as soon as a path referring to it was answered')
    .option('--wire-compression <mode>', '"auto": ask peers whose NARs came in slowly for zstd-compressed ones, and gigabit ones while those come faster; "zstd": ask every peer; "off": neither ask nor compress for peers', 'auto')
    .addOption(new Option('--log-level <level>', 'error, warn, info or debug').default('info'))
    .action(async (flags: DaemonFlags) => {
      const config = configFromFlags(flags)
      const log = createLogger(config.logLevel)
      // Listening for the signals before starting: one that comes while the daemon starts (a
      // `systemctl stop` right after the start) stops it once it has started, where Node's
      // default would kill it halfway.
      const stopping = new Promise<void>((resolve) => {
        const onSignal = (signal: string): void => {
          log.info(`${signal}: stopping`)
          process.off('SIGINT', onSignal)
          process.off('SIGTERM', onSignal)
          resolve()
        }
        process.on('SIGINT', onSignal)
        process.on('SIGTERM', onSignal)
      })
      // Loaded here, not at the top: status, peers and keygen need none of libp2p.
      const { startDaemon } = await import('../daemon/index.js')
      const daemon = await startDaemon(config, log)
      await stopping
      await daemon.stop()
      log.info('stopped')
    })
}
