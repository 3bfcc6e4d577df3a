/**
 * The localhost binary cache Nix talks to. It holds no policy of its own: it maps requests to
 * the substituter and the substituter's answers to status codes.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { STORE_DIR } from '../nix/store-path.js'
import type { Substituter } from '../substituter/substituter.js'
import { isHostForRemote, isLoopback, isLoopbackHost, isThisHost } from './access.js'
import type { TrustedKeys } from '../nix/signing.js'
import { serveCacheInfo } from './cache-info.js'
import { serveNar } from './nar.js'
import { serveNarInfo } from './narinfo.js'
import { sendText } from './respond.js'
import { ALLOWED_METHODS, route } from './router.js'
import { serveIntrospection, type Introspection } from './status.js'

export const DEFAULT_PRIORITY = 20

export interface ShimOptions {
  substituter: Substituter
  /** Nix tries binary caches in ascending priority; cache.nixos.org is 40. */
  priority: number
  storeDir?: string
  /**
   * Answer other hosts too (`--listen` on a non-loopback address), with only what any of them
   * may have: narinfos and NARs of paths a public cache signed (`publicKeys`). This host is
   * its peers' trusted peer; what they keep for trusted peers is not for every machine on
   * the LAN. `hostNames`: the names besides IP addresses they may call this host by.
   */
  remote?: { publicKeys: TrustedKeys, hostNames: readonly string[] }
  log?: (line: string) => void
  /** /status, /which, /metrics and the dashboard; without it they are 404. */
  introspection?: Introspection
}

export function createShim (opts: ShimOptions): Server {
  return createServer((req, res) => { void handle(opts, req, res) })
}

async function handle (opts: ShimOptions, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const log = opts.log ?? (() => {})
  const metrics = opts.introspection?.metrics
  // Listening on the LAN, this host's Nix may come from one of its LAN addresses.
  const local = opts.remote === undefined ? isLoopback(req.socket.remoteAddress) : isThisHost(req.socket.remoteAddress)
  const remote = local ? undefined : opts.remote
  if (!local && remote === undefined) {
    metrics?.request('forbidden', '403')
    sendText(req, res, 403, 'only this host may use this substituter\n')
    return
  }
  if (opts.remote === undefined ? !isLoopbackHost(req.headers.host) : !isHostForRemote(req.headers.host, opts.remote.hostNames)) {
    metrics?.request('forbidden', '403')
    sendText(req, res, 403, opts.remote === undefined
      ? 'the Host header must name this host (localhost, 127.0.0.1 or [::1])\n'
      : 'the Host header must name this host (an IP address, localhost or this host\'s name)\n')
    return
  }
  const target = route(req.method, req.url)
  if (metrics !== undefined) {
    const timer = target.endpoint === 'narinfo' ? metrics.narInfoTimer() : undefined
    // 'close' comes for every request; one that did not finish was cut (by us or the client).
    res.once('close', () => {
      const status = res.writableFinished ? String(res.statusCode) : 'cut'
      metrics.request(target.endpoint, status)
      timer?.(status)
    })
  }
  // A client that goes away stops the lookup or download it started. A response that was
  // sent in full has nothing left to stop: no abort (and no Error with its stack) per request.
  const gone = new AbortController()
  res.on('close', () => { if (!res.writableFinished) gone.abort(new Error('the HTTP client went away')) })
  try {
    switch (target.endpoint) {
      case 'cache-info':
        serveCacheInfo(req, res, opts.storeDir ?? STORE_DIR, opts.priority)
        return
      case 'narinfo':
        await serveNarInfo(req, res, opts.substituter, target.hashPart, gone.signal, remote?.publicKeys)
        return
      case 'nar':
        await serveNar(req, res, opts.substituter, target, gone.signal, log, remote?.publicKeys)
        return
      case 'dashboard':
      case 'status':
      case 'metrics':
      case 'which':
        if (remote !== undefined) sendText(req, res, 403, 'only this host may read this daemon\'s status\n')
        else if (opts.introspection === undefined) sendText(req, res, 404, 'not found\n')
        else await serveIntrospection(req, res, opts.introspection, target, gone.signal)
        return
      case 'reject':
        sendText(req, res, target.status, `${target.message}\n`, target.status === 405 ? { Allow: ALLOWED_METHODS.join(', ') } : {})
    }
  } catch (err) {
    if (gone.signal.aborted) return
    log(`${req.method ?? '?'} ${req.url ?? '?'}: ${(err as Error).message}`)
    if (res.headersSent) res.destroy()
    else sendText(req, res, 500, 'internal error\n')
  }
}

/**
 * Starts listening; resolves with the bound address (port 0 picks a free port). A failure says
 * what to change, since Node's own message (`listen EADDRINUSE: address already in use …`)
 * names neither the flag nor the likely cause.
 */
export async function listenShim (server: Server, host: string, port: number): Promise<AddressInfo> {
  await new Promise<void>((resolve, reject) => {
    const failed = (err: NodeJS.ErrnoException): void => { reject(listenError(err, host, port)) }
    server.once('error', failed)
    server.listen(port, host, () => {
      server.off('error', failed)
      resolve()
    })
  })
  return server.address() as AddressInfo
}

function listenError (err: NodeJS.ErrnoException, host: string, port: number): Error {
  const where = `cannot listen for Nix on ${host.includes(':') ? `[${host}]` : host}:${port} (--listen)`
  const why: Record<string, string> = {
    EADDRINUSE: 'another program (another peerix?) already listens there; stop it or choose another port',
    EADDRNOTAVAIL: 'this host has no such address',
    EACCES: 'a port below 1024 needs privileges; choose another port'
  }
  return new Error(`${where}: ${why[err.code ?? ''] ?? err.message}`, { cause: err })
}
