/**
 * Which endpoint a request is for, decided from the method and the raw request target alone.
 * Nix only ever asks for a handful of plain paths, so anything unusual (percent-encoding,
 * dot segments, double slashes, a query string, an overlong target) is refused before any
 * part of it is used.
 */
import { FormatError } from '../nix/errors.js'
import { parseHashPart } from '../nix/store-path.js'
import { parseNarUrl } from '../store/nar-url.js'

/** Longer than any URL Nix sends to a binary cache (a NAR URL is 95 characters). */
export const MAX_URL_LENGTH = 1024
export const ALLOWED_METHODS = ['GET', 'HEAD']

export type Route =
  | { endpoint: 'cache-info' }
  | { endpoint: 'narinfo', hashPart: string }
  | { endpoint: 'nar', hashPart: string, narHash: string }
  | { endpoint: 'dashboard' }
  | { endpoint: 'status' }
  | { endpoint: 'metrics' }
  | { endpoint: 'which', hashPart: string }
  | { endpoint: 'reject', status: 400 | 404 | 405, message: string }

const NARINFO = /^\/([^/]*)\.narinfo$/
const WHICH = /^\/which\/([^/]*)$/
/** The operator's endpoints (status, metrics, dashboard): fixed paths. */
const FIXED: Record<string, Route> = {
  '/nix-cache-info': { endpoint: 'cache-info' },
  '/': { endpoint: 'dashboard' },
  '/status': { endpoint: 'status' },
  '/metrics': { endpoint: 'metrics' }
}

export function route (method: string | undefined, url: string | undefined): Route {
  if (method === undefined || !ALLOWED_METHODS.includes(method)) {
    return { endpoint: 'reject', status: 405, message: `method ${method ?? '(none)'} not allowed: use ${ALLOWED_METHODS.join(' or ')}` }
  }
  const problem = targetProblem(url ?? '')
  if (problem !== undefined) return { endpoint: 'reject', status: 400, message: problem }
  const path = url as string

  if (Object.hasOwn(FIXED, path)) return FIXED[path]
  const narinfo = NARINFO.exec(path)
  if (narinfo !== null) return withHashPart(narinfo[1], hashPart => ({ endpoint: 'narinfo', hashPart }))
  const which = WHICH.exec(path)
  if (which !== null) return withHashPart(which[1], hashPart => ({ endpoint: 'which', hashPart }))
  if (path.startsWith('/nar/')) {
    const nar = parseNarUrl(path)
    if (nar === undefined) return { endpoint: 'reject', status: 400, message: 'invalid NAR URL: expected /nar/<32-character store hash>-<52-character nix32 NarHash>.nar' }
    return { endpoint: 'nar', ...nar }
  }
  return { endpoint: 'reject', status: 404, message: 'not found' }
}

function withHashPart (text: string, make: (hashPart: string) => Route): Route {
  try {
    return make(parseHashPart(text))
  } catch (err) {
    if (err instanceof FormatError) return { endpoint: 'reject', status: 400, message: err.message }
    throw err
  }
}

/** Why a request target is refused outright, or undefined for a plain absolute path. */
function targetProblem (url: string): string | undefined {
  if (url.length > MAX_URL_LENGTH) return `URL is ${url.length} bytes, longer than ${MAX_URL_LENGTH}`
  if (!url.startsWith('/')) return 'URL must be an absolute path'
  if (/[?#]/.test(url)) return 'URL must not have a query string or fragment'
  if (url.includes('%')) return 'URL must not be percent-encoded'
  if (url.includes('//')) return 'URL must not contain empty path segments'
  if (url.split('/').some(segment => segment === '.' || segment === '..')) return 'URL must not contain . or .. segments'
  if (!/^[\x21-\x7e]*$/.test(url)) return 'URL must be printable ASCII'
  return undefined
}
