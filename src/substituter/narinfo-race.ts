/**
 * Asking every peer at once for a narinfo and taking the first answer that verifies. Peers
 * that are slow or gone never hold up the answer beyond the wait budget, and "no peer has it"
 * is known as soon as the last peer has said so.
 */
import type { NarInfoAnswer } from '../p2p/peer-client.js'
import type { NarInfo } from '../nix/narinfo.js'
import { shortPeer, type SubstituterContext } from './context.js'
import { checkInlineNar, checkNarInfo } from './verify.js'

/**
 * Past the wait budget, how long a slow peer may go without sending a byte before it is given
 * up on: TCP retransmits on a lossy link after 0.2, 0.4, 0.8, 1.6 s of silence.
 */
export const SLOW_PEER_QUIET_MS = 3_000

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
  /** Ask for the path's NAR along with its narinfo, if it is small. */
  inlineNar?: InlineNarOptions
  /**
   * Told, before the lookup resolves, of each peer that gave no answer: given up on at the wait
   * budget (or the patience), or its ask failed (a reset stream, a closed connection). Such a
   * peer did not say it lacks the path.
   */
  onUnanswered?: (peer: string) => void
  /**
   * False: no peer is waited for past the budget, slow or not (the caller has an earlier answer
   * of that peer to fall back on). True by default.
   */
  patient?: boolean
}

/**
 * Small NARs fetched in the narinfo's round trip (`/peerix/narinfo/1` r2): where a second
 * round trip would cost more than the bytes, they come with the answer.
 */
export interface InlineNarOptions {
  /** The largest NAR to take (0: none). */
  maxBytes: number
  /**
   * How many of the peers asked (the first ones that never sent wrong bytes for this path) are
   * asked for it: each that has it sends it.
   */
  peers: number
  /**
   * A NAR that came with a verified narinfo and matched its NarHash and NarSize; false when it
   * was not kept (another peer's copy came first, or there is no room).
   */
  take: (info: NarInfo, nar: Uint8Array) => boolean
}

/**
 * The first verified narinfo for `hashPart` from any peer, or undefined once every peer has
 * answered without one, when the wait budget runs out, or when `signal` aborts. Answers that
 * arrive after the winner (within the budget) are still checked and remembered: those peers
 * are where a NAR download turns when its first peer fails.
 *
 * The budget is `timeoutMs`, in rounds. A peer whose summary may hold the path (asked through
 * `mayHave`) and that sent any bytes since it was asked, if only the answer to a probe sent
 * halfway through the budget, is slow, not gone: it is waited for round after round while its
 * bytes keep coming (at most SLOW_PEER_QUIET_MS apart: TCP on a lossy link goes quiet between
 * retransmissions), up to `patienceMs` in all. A frozen or cut-off peer sends nothing and is
 * given up on at the budget, as before; one that uses up the patience without an answer is not
 * waited for past the budget again for a while (PeerMemory.outwaited).
 */
export async function lookupNarInfo (ctx: SubstituterContext, hashPart: string, opts: LookupOptions = {}): Promise<Found | undefined> {
  const { mayHave, signal } = opts
  const peers = mayHave === undefined ? ctx.client.peers() : ctx.client.peers().filter(mayHave)
  if (peers.length === 0 || signal?.aborted === true) return undefined

  const began = Date.now()
  /** Peers not answered yet, each with its own ask to stop. */
  const waiting = new Map<string, AbortController>()
  let settled = false
  let timer: ReturnType<typeof setTimeout> | undefined
  return await new Promise(resolve => {
    const finish = (found: Found | undefined): void => {
      if (settled) return
      settled = true
      signal?.removeEventListener('abort', onCallerAbort)
      resolve(found)
    }
    const stopAll = (reason: unknown): void => {
      clearTimeout(timer)
      for (const ask of waiting.values()) ask.abort(reason)
    }
    // Until there is an answer, the caller going away stops everything; after, the others run on.
    const onCallerAbort = (): void => { stopAll(signal?.reason); finish(undefined) }
    signal?.addEventListener('abort', onCallerAbort, { once: true })

    let inlineAsks = opts.inlineNar?.peers ?? 0
    for (const peer of peers) {
      const inline = inlineAsks > 0 && !ctx.memory.badForPath(hashPart, peer) ? opts.inlineNar : undefined
      if (inline !== undefined) inlineAsks -= 1
      const ask = new AbortController()
      waiting.set(peer, ask)
      void askPeer(ctx, peer, hashPart, ask.signal, inline).then(found => {
        if (found === 'failed') {
          if (!settled) opts.onUnanswered?.(peer)
        } else if (found !== undefined && (opts.wanted?.(found.info) ?? true)) finish(found)
      }).finally(() => {
        waiting.delete(peer)
        if (waiting.size === 0) {
          clearTimeout(timer)
          finish(undefined)
        }
      })
    }
    if (waiting.size === 0) return

    // Rounds of the wait budget: halfway through one, a probe to each peer quiet so far; at its end, who is waited for on.
    const patient = opts.patient !== false && mayHave !== undefined && ctx.client.lastHeard !== undefined
    const heardSince = (peer: string, since: number): boolean => (ctx.client.lastHeard?.(peer) ?? -Infinity) >= since
    const round = (start: number, length: number): void => {
      if (!patient) {
        timer = setTimeout(() => { endRound(start) }, length)
        return
      }
      const half = Math.floor(length / 2)
      timer = setTimeout(() => {
        if (!settled) for (const peer of waiting.keys()) if (!heardSince(peer, start) && ctx.memory.patientWith(peer)) ctx.client.probe?.(peer)
        timer = setTimeout(() => { endRound(start) }, length - half)
      }, half)
    }
    const endRound = (start: number): void => {
      const now = Date.now()
      const left = began + ctx.patienceMs - now
      const more = patient && !settled && left > 0
      for (const [peer, ask] of waiting) {
        if (ask.signal.aborted) continue
        if (more && ctx.memory.patientWith(peer) && heardSince(peer, start === began ? began : now - SLOW_PEER_QUIET_MS)) continue
        // Still sending, still not answering, and the patience is over: not again for a while.
        if (patient && !settled && start !== began && left <= 0 && heardSince(peer, now - SLOW_PEER_QUIET_MS)) ctx.memory.outwaited(peer)
        if (!settled) opts.onUnanswered?.(peer)
        ask.abort(new WaitBudgetExpired(`no answer within ${now - began} ms`))
      }
      // Every peer was given up on: the answers come as the asks stop, but the caller need not wait.
      if ([...waiting.values()].every(ask => ask.signal.aborted)) finish(undefined)
      else {
        if (start === began) ctx.counters.narInfoSlowPeerWaits += 1
        round(now, Math.min(ctx.timeoutMs, left))
      }
    }
    round(began, ctx.timeoutMs)
  })
}

/**
 * One peer's verified answer, undefined when it has none to give, or 'failed' when the ask
 * failed (no answer); every outcome is counted, problems logged.
 */
async function askPeer (ctx: SubstituterContext, peer: string, hashPart: string, signal: AbortSignal, inline?: InlineNarOptions): Promise<Found | 'failed' | undefined> {
  let answer: NarInfoAnswer
  try {
    answer = await ctx.client.narInfo(peer, hashPart, signal, inline === undefined ? undefined : { maxNarBytes: inline.maxBytes })
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
      return 'failed'
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
      if (answer.nar !== undefined && inline !== undefined) takeInlineNar(ctx, peer, hashPart, checked.info, answer.nar, inline)
      return { peer, info: checked.info }
    }
  }
}

/** Hands a NAR sent with a verified narinfo on, if it is that narinfo's NAR; else the peer is not used for it. */
function takeInlineNar (ctx: SubstituterContext, peer: string, hashPart: string, info: NarInfo, nar: Uint8Array, inline: InlineNarOptions): void {
  const wrong = checkInlineNar(nar, info)
  if (wrong !== undefined) {
    ctx.counters.verificationFailures += 1
    ctx.memory.bad(hashPart, info.narHash, peer)
    ctx.logOnce.line(`peer ${shortPeer(peer)} sent a wrong NAR for ${hashPart}: ${wrong}`)
    return
  }
  // Both peers asked send the NAR: only the copy kept is fetched (counted once, as a download is).
  if (!inline.take(info, nar)) return
  ctx.counters.narsInline += 1
  ctx.counters.narBytesIn += nar.byteLength
  ctx.counters.peer(peer).narBytes += nar.byteLength
}

function countError (ctx: SubstituterContext, peer: string, hashPart: string, message: string): void {
  ctx.counters.peerErrors += 1
  ctx.counters.peer(peer).errors += 1
  ctx.logOnce.line(`peer ${shortPeer(peer)} failed narinfo ${hashPart}: ${message}`)
}
