/**
 * The load test's HTTP client, run in the shim's network namespace (the shim only answers
 * loopback): fires every narinfo request at once, then every NAR download at once, checks each
 * answer against what the source store says, and prints one JSON summary.
 *
 * Args (JSON): LoadArgs. Output: LoadResult.
 */
import { createHash } from 'node:crypto'
import { Agent, request } from 'node:http'
import { formatSha256Nix32 } from '../../src/nix/hash.js'
import { parseNarInfo } from '../../src/nix/narinfo.js'

export interface LoadArgs {
  url: string
  /** hash part → expected NarHash, or null when the path exists nowhere (expect 404). */
  narinfos: Array<{ hashPart: string, narHash: string | null }>
  nars: Array<{ hashPart: string, narHash: string, narSize: number }>
}

export interface PhaseResult {
  requests: number
  correct: number
  /** What went wrong, one line per wrong answer (at most 20). */
  wrong: string[]
  /** Requests in flight at once, at most. */
  peakInFlight: number
  ms: number
}

export interface LoadResult { narinfo: PhaseResult, nar: PhaseResult & { bytes: number } }

const args = JSON.parse(process.argv[2]) as LoadArgs
// one socket per request: the concurrency is real, not queued in the agent
const agent = new Agent({ keepAlive: false, maxSockets: Infinity })

let inFlight = 0
let peak = 0

/** GET `path`; calls `onData` for each chunk and resolves with the status (rejects on a cut). */
async function get (path: string, onData: (chunk: Buffer) => void): Promise<number> {
  inFlight++
  peak = Math.max(peak, inFlight)
  try {
    return await new Promise((resolve, reject) => {
      const req = request(`${args.url}${path}`, { agent, timeout: 120_000 }, res => {
        res.on('data', onData)
        res.on('aborted', () => { reject(new Error('response cut')) })
        res.on('error', reject)
        res.on('end', () => { resolve(res.statusCode ?? 0) })
      })
      req.on('timeout', () => { req.destroy(new Error('no answer within 120 s')) })
      req.on('error', reject)
      req.end()
    })
  } finally {
    inFlight--
  }
}

async function phase<T> (items: T[], check: (item: T) => Promise<string | undefined>): Promise<PhaseResult> {
  inFlight = 0
  peak = 0
  const t0 = Date.now()
  const problems = await Promise.all(items.map(async item => await check(item).catch((err: Error) => err.message)))
  const wrong = problems.filter((p): p is string => p !== undefined)
  return { requests: items.length, correct: items.length - wrong.length, wrong: wrong.slice(0, 20), peakInFlight: peak, ms: Date.now() - t0 }
}

const narinfo = await phase(args.narinfos, async ({ hashPart, narHash }) => {
  const chunks: Buffer[] = []
  const status = await get(`/${hashPart}.narinfo`, c => chunks.push(c))
  if (narHash === null) return status === 404 ? undefined : `${hashPart}: ${status}, expected 404`
  if (status !== 200) return `${hashPart}: ${status}, expected 200`
  const info = parseNarInfo(Buffer.concat(chunks).toString())
  if (!info.storePath.includes(hashPart) || info.narHash !== narHash) return `${hashPart}: wrong narinfo ${info.storePath} ${info.narHash}`
  return undefined
})

// The NAR URLs come from the narinfos, as Nix would take them.
const urls = new Map<string, string>()
for (const { hashPart } of args.nars) {
  const chunks: Buffer[] = []
  await get(`/${hashPart}.narinfo`, c => chunks.push(c))
  urls.set(hashPart, parseNarInfo(Buffer.concat(chunks).toString()).url)
}
let bytes = 0
const nar = await phase(args.nars, async ({ hashPart, narHash, narSize }) => {
  const hash = createHash('sha256')
  let size = 0
  const status = await get(`/${urls.get(hashPart) ?? ''}`, c => { hash.update(c); size += c.length })
  bytes += size
  if (status !== 200) return `${hashPart}: NAR ${status}`
  const got = formatSha256Nix32(hash.digest())
  if (size !== narSize || got !== narHash) return `${hashPart}: NAR of ${size} bytes hashing to ${got}, expected ${narSize} bytes ${narHash}`
  return undefined
})

process.stdout.write(JSON.stringify({ narinfo, nar: { ...nar, bytes } } satisfies LoadResult) + '\n')
