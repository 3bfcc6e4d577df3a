/**
 * How the operator commands reach a running daemon: GET a JSON endpoint of its shim. Every
 * failure reads as a sentence naming the URL, and "nothing listens there" says so plainly.
 */
import { DEFAULT_LISTEN } from '../config.js'

export const DEFAULT_URL = `http://${DEFAULT_LISTEN}`

/** Longer than /which waits for peers (WHICH_MAX_WAIT_MS, src/substituter/which.ts). */
export const REQUEST_TIMEOUT_MS = 30_000

export class DaemonUnreachable extends Error {
  override name = 'DaemonUnreachable'
}

/** The base URL from `--url`; a FormatError-like message for anything but http(s). */
export function parseDaemonUrl (text: string): URL {
  let url: URL
  try {
    url = new URL(text)
  } catch {
    throw new DaemonUnreachable(`--url ${JSON.stringify(text)}: not a URL (expected e.g. ${DEFAULT_URL})`)
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new DaemonUnreachable(`--url ${JSON.stringify(text)}: expected an http:// URL`)
  return url
}

/** GET `path` (e.g. `/status`) from the daemon at `base`, parsed as JSON. */
export async function getJson<T> (base: URL, path: string): Promise<T> {
  const url = new URL(path, base)
  let res: Response
  try {
    res = await fetch(url, { signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS), headers: { Accept: 'application/json' } })
  } catch (err) {
    throw new DaemonUnreachable(whyUnreachable(base, err))
  }
  const body = await res.text()
  if (!res.ok) throw new DaemonUnreachable(`${url.href} answered ${res.status}: ${body.trim() || res.statusText} (is ${base.origin} a peerix daemon?)`)
  try {
    return JSON.parse(body) as T
  } catch {
    throw new DaemonUnreachable(`${url.href} did not answer with JSON (is ${base.origin} a peerix daemon?)`)
  }
}

function whyUnreachable (base: URL, err: unknown): string {
  const cause = (err as { cause?: { code?: string } }).cause
  if (cause?.code === 'ECONNREFUSED') return `no daemon running at ${base.origin} (connection refused): start one with \`peerix daemon\`, or point --url at it`
  if ((err as Error).name === 'TimeoutError') return `the daemon at ${base.origin} did not answer within ${REQUEST_TIMEOUT_MS / 1000} s`
  return `cannot reach a daemon at ${base.origin}: ${cause?.code ?? (err as Error).message}`
}
