/**
 * Streaming a NAR from peers with failover. The bytes are hashed as they pass; when a peer
 * fails (an error, a stall, an early end, more bytes than NarSize) the download continues
 * from the same offset on another peer that offered the same NarHash. The last chunk is only
 * passed on once the whole NAR hashed to the expected NarHash, and every failure the download
 * cannot recover from throws: the HTTP layer then cuts the connection, so Nix never takes a
 * short or wrong NAR for a complete one.
 */
import type { Answer, NarBody } from '../p2p/peer-client.js'
import { NarHasher } from '../nix/nar-hash.js'
import { lookupNarInfo } from './narinfo-race.js'
import { shortPeer, type SubstituterContext } from './context.js'
import { RepeatedWaits } from '../repeated-waits.js'

/** The download cannot deliver the NAR: no peer can continue it, or its bytes are wrong. */
export class NarDownloadError extends Error {
  override name = 'NarDownloadError'
}

/** A peer did not send anything for too long. */
class StallError extends Error {
  override name = 'StallError'
}

/** A download in progress, for /status. */
export interface Transfer {
  hashPart: string
  narHash: string
  narSize: number
  /** Bytes passed on so far. */
  received: number
  /** The peer currently streaming, if any. */
  peer?: string
}

export interface NarRequest {
  hashPart: string
  narHash: string
  narSize: number
  signal?: AbortSignal
  /** Updated as bytes arrive; the caller may show it. */
  transfer: Transfer
  /** False for a peer whose index summary rules the path out (not asked when offers run out). */
  mayHave?: (peer: string) => boolean
}

/** The NAR's bytes, in order, from as many peers as it takes; throws NarDownloadError. */
export async function * downloadNar (ctx: SubstituterContext, req: NarRequest): AsyncGenerator<Uint8Array> {
  const { hashPart, narHash, narSize } = req
  let hasher = new NarHasher()
  const tried = new Set<string>()
  const contributors = new Set<string>()
  let askedAgain = false
  /** The last peer that stalled in this download, and when its silence began. */
  const stall: Stall = {}
  let stalledAskedAgain = false
  ctx.counters.narDownloads += 1
  try {
    for (;;) {
      let peer = nextCandidate(ctx, hashPart, narHash, tried)
      if (peer === undefined && !askedAgain) {
        // Every peer remembered as offering it failed or left (the offers may be days old, as
        // Nix's narinfo is): a connected peer may have the same bytes. Asked once per download.
        askedAgain = true
        // Peers that stalled this NAR lately are not asked: they would not be asked for it anyway.
        await lookupNarInfo(ctx, hashPart, { signal: req.signal, wanted: info => info.narHash === narHash, mayHave: peer => !tried.has(peer) && !ctx.memory.stalledNar(hashPart, narHash, peer) && (req.mayHave?.(peer) ?? true) })
        peer = nextCandidate(ctx, hashPart, narHash, tried)
      }
      if (peer === undefined && !stalledAskedAgain && stall.peer !== undefined && stillAlive(ctx, stall)) {
        // The only peer left stalled, but its connection is alive: its request may have been
        // lost to a link that was down for a while. A 404 now fails Nix's build; one more
        // try costs at most another stall limit.
        stalledAskedAgain = true
        peer = stall.peer
        ctx.log(`nar ${hashPart}: peer ${shortPeer(peer)} stalled but is still sending other bytes: asking it again`)
      }
      if (peer === undefined) {
        throw new NarDownloadError(`no peer could deliver ${hashPart} (${narHash}): stopped at byte ${hasher.size} of ${narSize}`)
      }
      tried.add(peer)
      if (hasher.size > 0) {
        ctx.counters.narFailovers += 1
        ctx.log(`nar ${hashPart}: continuing at byte ${hasher.size} of ${narSize} from peer ${shortPeer(peer)}`)
      }
      req.transfer.peer = peer
      const failure = yield * fromPeer(ctx, req, peer, hasher, contributors, stall)
      if (failure === undefined) {
        ctx.counters.narCompleted += 1
        return
      }
      ctx.log(`nar ${hashPart}: peer ${shortPeer(peer)} failed at byte ${hasher.size} of ${narSize}: ${failure}`)
      if (hasher.size === narSize) {
        // The NAR came whole and hashed wrong before any of it was passed on (else fromPeer
        // throws): another peer that offered it starts over, instead of a 404 for Nix.
        hasher = new NarHasher()
        contributors.clear()
        req.transfer.received = 0
      }
    }
  } catch (err) {
    // Nix hanging up is not a failed download.
    if (req.signal?.aborted !== true) ctx.counters.narFailed += 1
    if (err instanceof NarDownloadError) ctx.log(`nar ${hashPart}: ${err.message}`)
    throw err
  } finally {
    req.transfer.peer = undefined
  }
}

/**
 * The next peer to ask: offered this NarHash, still connected, not tried, never bad, and did not
 * stall this NAR lately (as in a prefetch of it that Nix's request waited for); one that
 * stalled another NAR lately last.
 */
function nextCandidate (ctx: SubstituterContext, hashPart: string, narHash: string, tried: Set<string>): string | undefined {
  const connected = new Set(ctx.client.peers())
  const now = Date.now()
  const offered = ctx.memory.offer(hashPart, narHash)?.peers.filter(peer => connected.has(peer) && !tried.has(peer) && !ctx.memory.stalledNar(hashPart, narHash, peer, now)) ?? []
  return ctx.memory.byNarRecord(offered, now)[0]
}

/**
 * Streams from one peer, from the hasher's offset on. Returns undefined when the NAR is
 * complete and correct, or why this peer failed (the caller tries another); throws when the
 * download as a whole cannot succeed (wrong hash) or the caller went away.
 */
async function * fromPeer (ctx: SubstituterContext, req: NarRequest, peer: string, hasher: NarHasher, contributors: Set<string>, stall: Stall): AsyncGenerator<Uint8Array, string | undefined> {
  const { hashPart, narHash, narSize, signal } = req
  const stop = new AbortController()
  const onAbort = (): void => { stop.abort(signal?.reason) }
  signal?.addEventListener('abort', onAbort, { once: true })
  if (signal?.aborted === true) stop.abort(signal.reason)
  let iterator: AsyncIterator<Uint8Array> | undefined
  const acceptZstd = ctx.compression.wants(peer, narSize - hasher.size)
  const rate = new LinkRate()
  let waits: RepeatedWaits | undefined
  const stalled = (since: number): void => {
    ctx.memory.narStalled(hashPart, narHash, peer)
    stall.peer = peer
    stall.since = since
  }
  try {
    let turn: Promise<void> | undefined
    const asked = ctx.client.nar(peer, hashPart, narHash, hasher.size, stop.signal, { acceptZstd, onQueued: (t) => { turn = t } })
    // Queued behind the peer's other NARs (its stream limit) is not the peer's silence: the
    // stall limit starts when the request goes out. Aborted, the request leaves the queue.
    if (turn !== undefined) {
      asked.catch(() => {}) // within() below looks at it; a rejection meanwhile is not unhandled
      await turn.catch(() => {})
    }
    const requested = Date.now()
    const answer = await within(asked, ctx.stallMs, stop.signal).catch((err: Error): Answer<NarBody> => {
      if (err instanceof StallError) stalled(requested)
      // A body that comes after we stopped waiting still holds the peer's stream: give it back.
      asked.then(late => { if (late.status === 'found') late.value[Symbol.asyncIterator]().return?.().catch(() => {}) }, () => {})
      return { status: 'error', message: err.message }
    })
    // Taken before anything can throw, so that the finally below gives the stream back.
    if (answer.status === 'found') iterator = answer.value[Symbol.asyncIterator]()
    throwIfAborted(signal)
    if (answer.status === 'absent' || answer.status === 'refused') {
      // A refused NAR is a refusal received as much as a refused narinfo (/status, /metrics).
      if (answer.status === 'refused') ctx.counters.refusals += 1
      ctx.memory.withdraw(hashPart, narHash, peer)
      return answer.status === 'absent' ? 'it no longer has the path' : `refused: ${answer.reason}`
    }
    if (answer.status === 'error') return answer.message
    const body = answer.value
    const from = hasher.size
    rate.compressed = body.encoding === 'zstd'
    const chunks = iterator ?? body[Symbol.asyncIterator]()
    let lastProgress = Date.now()
    // one stall timer and abort listener for all of the body's ~30,000 pieces per GiB
    waits = new RepeatedWaits(ctx.stallMs, stop.signal, ms => new StallError(`no data for ${ms} ms`))
    for (;;) {
      let next: IteratorResult<Uint8Array>
      const asked = performance.now()
      try {
        const piece = chunks.next()
        next = await waits.wait<IteratorResult<Uint8Array>>((resolve, reject) => { piece.then(resolve, reject) }, asked)
      } catch (err) {
        throwIfAborted(signal)
        if (err instanceof StallError) stalled(lastProgress)
        return (err as Error).message
      }
      rate.waited(performance.now() - asked)
      if (next.done === true) return `the stream ended early, at byte ${hasher.size} of ${narSize}`
      const chunk = next.value
      if (chunk.length === 0) {
        // Empty chunks are not progress: a peer sending only those is stalled all the same.
        if (Date.now() - lastProgress > ctx.stallMs) {
          stalled(lastProgress)
          return `no data for ${ctx.stallMs} ms`
        }
        continue
      }
      lastProgress = Date.now()
      rate.progress(chunk.length)
      if (hasher.size + chunk.length > narSize) {
        ctx.memory.bad(hashPart, narHash, peer)
        return `sent more than NarSize ${narSize} bytes`
      }
      hasher.update(chunk)
      contributors.add(peer)
      req.transfer.received = hasher.size
      if (hasher.size === narSize) {
        const got = hasher.digest().narHash
        if (got !== narHash) {
          // Which contributor lied cannot be known: none of them is used for this NAR again.
          for (const p of contributors) ctx.memory.bad(hashPart, narHash, p)
          const wrong = `NAR ${hashPart} hashed to ${got}, expected ${narHash} (peers ${[...contributors].map(shortPeer).join(', ')})`
          // Nothing went to the consumer yet (the NAR came in one chunk): the download starts over.
          if (hasher.size === chunk.length) return wrong
          throw new NarDownloadError(wrong)
        }
      }
      // Counted as passed on (SubstituterCounters): a whole NAR that hashed wrong was not, and
      // counting it made a start-over count the NAR twice.
      ctx.counters.narBytesIn += chunk.length
      ctx.counters.peer(peer).narBytes += chunk.length
      if (hasher.size === narSize) {
        if (acceptZstd) ctx.log(`nar ${hashPart}: ${narSize - from} bytes from peer ${shortPeer(peer)} took ${body.wireBytes ?? narSize - from} on the wire (asked for zstd, got ${body.encoding ?? 'identity'})`)
        yield chunk
        return undefined
      }
      yield chunk
    }
  } finally {
    waits?.dispose()
    rate.report(peer, ctx)
    signal?.removeEventListener('abort', onAbort)
    stop.abort()
    // Not awaited: a peer stream stuck in next() would make return() wait behind it.
    iterator?.return?.().catch(() => {})
  }
}

/** A peer that stalled a download, and when its silence began. */
interface Stall {
  peer?: string
  since?: number
}

/**
 * Whether the peer that stalled sent any other bytes in the second half of its silence (libp2p
 * pings each connection every 10 s, so a live one does within a 20 s stall limit): the peer is
 * there, its NAR stream is what got stuck. A frozen or cut-off peer sends nothing.
 */
function stillAlive (ctx: SubstituterContext, stall: Stall): boolean {
  if (stall.peer === undefined || stall.since === undefined || !ctx.client.peers().includes(stall.peer)) return false
  return (ctx.client.lastHeard?.(stall.peer) ?? -Infinity) >= stall.since + ctx.stallMs / 2
}

/**
 * How fast one peer's body came: its bytes over the time spent waiting for them. The time Nix
 * took to read what was passed on is not the link's: counted (as it once was), a busy machine
 * or a slow disk made a fast link look slow, and zstd then cost the peer CPU for nothing (seen
 * on loopback with both daemons profiled: 8–12 MB NARs asked as zstd). The first chunk is left
 * out, its wait being the request's round trip and the peer's lookup, not the body. An
 * uncompressed body measures the link; a compressed one its own pace, decompression included.
 */
class LinkRate {
  compressed = false
  #chunks = 0
  #bytes = 0
  #ms = 0
  #lastWait = 0

  /** The wait for the next chunk took `ms` (counted once that chunk turns out to carry bytes). */
  waited (ms: number): void {
    this.#lastWait += ms
  }

  /** A chunk of `bytes` arrived after the waits noted since the last one. */
  progress (bytes: number): void {
    if (this.#chunks++ > 0) {
      this.#bytes += bytes
      this.#ms += this.#lastWait
    }
    this.#lastWait = 0
  }

  report (peer: string, ctx: SubstituterContext): void {
    if (this.#chunks < 2) return
    ctx.compression.observed(peer, this.#bytes, this.#ms, this.compressed)
  }
}

function throwIfAborted (signal: AbortSignal | undefined): void {
  if (signal?.aborted === true) throw signal.reason ?? new Error('aborted')
}

/** `promise`, or a StallError after `ms`, or the abort reason once `signal` aborts. */
async function within<T> (promise: Promise<T>, ms: number, signal: AbortSignal): Promise<T> {
  promise.catch(() => {}) // it may reject after we stopped waiting for it
  let timer: NodeJS.Timeout | undefined
  let onAbort: (() => void) | undefined
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_resolve, reject) => {
        timer = setTimeout(() => { reject(new StallError(`no data for ${ms} ms`)) }, ms)
        onAbort = () => { reject(signal.reason instanceof Error ? signal.reason : new Error('aborted')) }
        if (signal.aborted) onAbort()
        else signal.addEventListener('abort', onAbort, { once: true })
      })
    ])
  } finally {
    clearTimeout(timer)
    if (onAbort !== undefined) signal.removeEventListener('abort', onAbort)
  }
}
