/**
 * Asking every peer at once for a narinfo and taking the first answer that verifies. Peers
 * that are slow or gone never hold up the answer beyond the wait budget, and "no peer has it"
 * is known as soon as the last peer has said so.
 */
import type { Answer } from '../p2p/peer-client.js'
import type { NarInfo } from '../nix/narinfo.js'
import { shortPeer, type SubstituterContext } from './context.js'
import { checkNarInfo } from './verify.js'

/** Why the asks still running were stopped: the peers that had not answered are at fault. */
class WaitBudgetExpired extends Error {
  override name = 'WaitBudgetExpired'
}

export interface Found {
  peer: string
  info: NarInfo
}

export interface LookupOptions {
  signal?: AbortSignal
  /** Only verified answers this accepts can win (a NAR download wants one NarHash). */
  wanted?: (info: NarInfo) => boolean
  /** False for a peer whose index summary rules the path out: it is not asked. */
  mayHave?: (peer: string) => boolean
}

/**
 * The first verified narinfo for `hashPart` from any peer, or undefined once every peer has
 * answered without one (at once when no peer's summary may hold it), when the wait budget runs out, or when `signal` aborts. Answers that
 * arrive after the winner (within the budget) are still checked and remembered: those peers
 * are where a NAR download turns when its first peer fails.
 */
export async function lookupNarInfo (ctx: SubstituterContext, hashPart: string, opts: LookupOptions = {}): Promise<Found | undefined> {
  const { mayHave } = opts
  const peers = mayHave === undefined ? ctx.client.peers() : ctx.client.peers().filter(mayHave)
  const { signal } = opts
  if (peers.length === 0 || signal?.aborted === true) return undefined

  const asks = new AbortController()
  const budget = setTimeout(() => asks.abort(new WaitBudgetExpired(`no answer within ${ctx.timeoutMs} ms`)), ctx.timeoutMs)
  let pending = peers.length
  let settled = false
  return await new Promise(resolve => {
    const finish = (found: Found | undefined): void => {
      if (settled) return
      settled = true
      signal?.removeEventListener('abort', onCallerAbort)
      resolve(found)
    }
    // Until there is an answer, the caller going away stops everything; after, the others run on.
    const onCallerAbort = (): void => { asks.abort(signal?.reason); finish(undefined) }
    signal?.addEventListener('abort', onCallerAbort, { once: true })
    asks.signal.addEventListener('abort', () => { finish(undefined) }, { once: true })

    for (const peer of peers) {
      void askPeer(ctx, peer, hashPart, asks.signal).then(found => {
        if (found !== undefined && (opts.wanted?.(found.info) ?? true)) finish(found)
      }).finally(() => {
        pending -= 1
        if (pending === 0) {
          clearTimeout(budget)
          finish(undefined)
        }
      })
    }
  })
}

/** One peer's verified answer, or undefined; every outcome is counted, problems logged. */
async function askPeer (ctx: SubstituterContext, peer: string, hashPart: string, signal: AbortSignal): Promise<Found | undefined> {
  let answer: Answer<string>
  try {
    answer = await ctx.client.narInfo(peer, hashPart, signal)
  } catch (err) {
    answer = { status: 'error', message: (err as Error).message }
  }
  if (signal.aborted) {
    // Only the wait budget is the peer's fault; a caller going away is not.
    if (answer.status === 'error' && signal.reason instanceof WaitBudgetExpired) {
      countError(ctx, peer, hashPart, signal.reason.message)
    }
    if (answer.status !== 'found') return undefined
  }
  switch (answer.status) {
    case 'absent':
      return undefined
    case 'refused':
      ctx.counters.refusals += 1
      ctx.logOnce.line(`peer ${shortPeer(peer)} refused narinfo ${hashPart}: ${answer.reason}`)
      return undefined
    case 'error':
      countError(ctx, peer, hashPart, answer.message)
      return undefined
    case 'found': {
      const checked = checkNarInfo(answer.value, hashPart, ctx.trusted)
      if (!checked.ok) {
        ctx.counters.verificationFailures += 1
        ctx.counters.peer(peer).narInfosRejected += 1
        ctx.logOnce.line(`peer ${shortPeer(peer)} answer dropped for ${hashPart}: ${checked.reason}`)
        return undefined
      }
      ctx.counters.peer(peer).narInfosFound += 1
      ctx.memory.offered(hashPart, checked.info.narHash, checked.info.narSize, peer)
      return { peer, info: checked.info }
    }
  }
}

function countError (ctx: SubstituterContext, peer: string, hashPart: string, message: string): void {
  ctx.counters.peerErrors += 1
  ctx.counters.peer(peer).errors += 1
  ctx.logOnce.line(`peer ${shortPeer(peer)} failed narinfo ${hashPart}: ${message}`)
}
