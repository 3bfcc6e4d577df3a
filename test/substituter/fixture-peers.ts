/**
 * In-test peers for the substituter: a PeerClient whose peers answer from functions, plus the
 * misbehaviours a real peer can show (slow, silent, cut, stalled, endless, wrong bytes). The
 * real libp2p PeerClient is tested with real nodes elsewhere.
 */
import type { Answer, NarInfoAnswer, NarOptions, PeerClient } from '../../src/p2p/peer-client.js'

export interface FixturePeer {
  narInfo?: (hashPart: string, signal: AbortSignal, options?: { maxNarBytes?: number }) => Promise<NarInfoAnswer>
  nar?: (hashPart: string, narHash: string, offset: number, signal: AbortSignal, options?: NarOptions) => Promise<Answer<AsyncIterable<Uint8Array>>>
  /** When bytes last came from the peer (PeerClient.lastHeard); without it, never. */
  lastHeard?: () => number | undefined
  /** What a probe (a ping) does: a live peer's reply is bytes heard. */
  probe?: () => void
}

export interface Call { peer: string, hashPart: string, offset?: number, maxNarBytes?: number, signal: AbortSignal }

export class FixturePeerClient implements PeerClient {
  readonly narInfoCalls: Call[] = []
  readonly narCalls: Call[] = []
  readonly probes: string[] = []

  constructor (readonly fixtures: Map<string, FixturePeer>) {}

  peers (): string[] {
    return [...this.fixtures.keys()]
  }

  async narInfo (peer: string, hashPart: string, signal: AbortSignal, options?: { maxNarBytes?: number }): Promise<NarInfoAnswer> {
    this.narInfoCalls.push({ peer, hashPart, signal, maxNarBytes: options?.maxNarBytes })
    return await (this.fixtures.get(peer)?.narInfo?.(hashPart, signal, options) ?? Promise.resolve({ status: 'absent' }))
  }

  lastHeard (peer: string): number | undefined {
    return this.fixtures.get(peer)?.lastHeard?.()
  }

  probe (peer: string): void {
    this.probes.push(peer)
    this.fixtures.get(peer)?.probe?.()
  }

  async nar (peer: string, hashPart: string, narHash: string, offset: number, signal: AbortSignal, options?: NarOptions): Promise<Answer<AsyncIterable<Uint8Array>>> {
    this.narCalls.push({ peer, hashPart, offset, signal })
    return await (this.fixtures.get(peer)?.nar?.(hashPart, narHash, offset, signal, options) ?? Promise.resolve({ status: 'absent' }))
  }
}

export async function sleep (ms: number, signal?: AbortSignal): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(resolve, ms)
    signal?.addEventListener('abort', () => { clearTimeout(timer); reject(new Error('aborted')) }, { once: true })
  })
}

/** Answers `answer` after `ms` (or errors when aborted first). */
export function answerAfter<T> (ms: number, answer: Answer<T>): (...args: any[]) => Promise<Answer<T>> {
  return async (...args: any[]) => {
    const signal = args.find(a => a instanceof AbortSignal) as AbortSignal
    try {
      await sleep(ms, signal)
      return answer
    } catch {
      return { status: 'error', message: 'aborted' }
    }
  }
}

/** Never answers; the promise settles only when the asker aborts (like a frozen peer). */
export function never<T> (): (...args: any[]) => Promise<Answer<T>> {
  return async (...args: any[]) => {
    const signal = args.find(a => a instanceof AbortSignal) as AbortSignal
    await new Promise<void>(resolve => { signal.addEventListener('abort', () => { resolve() }, { once: true }) })
    return { status: 'error', message: 'aborted' }
  }
}

export interface NarFault {
  chunkSize?: number
  /** Answer that the NAR is absent (the path was collected after its narinfo was sent). */
  absent?: boolean
  /** Throw (a reset stream) once this many bytes of the whole NAR have been sent. */
  cutAt?: number
  /** End cleanly once this many bytes of the whole NAR have been sent. */
  endAt?: number
  /** Stop sending (until aborted) once this many bytes of the whole NAR have been sent. */
  stallAt?: number
  /** After the NAR, keep sending bytes forever. */
  endless?: boolean
  /** Flip the byte at this position of the NAR. */
  corruptAt?: number
}

/** A peer's NAR stream for `bytes` from `offset`, with an optional fault. */
export function narServer (bytes: Uint8Array, fault: NarFault = {}): NonNullable<FixturePeer['nar']> {
  return async (_hashPart, _narHash, offset, signal) => fault.absent === true ? { status: 'absent' } : { status: 'found', value: narStream(bytes, offset, fault, signal) }
}

async function * narStream (bytes: Uint8Array, offset: number, fault: NarFault, signal: AbortSignal): AsyncGenerator<Uint8Array> {
  const chunkSize = fault.chunkSize ?? 1000
  const data = Uint8Array.from(bytes)
  if (fault.corruptAt !== undefined) data[fault.corruptAt] ^= 0xff
  let pos = offset
  for (;;) {
    if (signal.aborted) throw new Error('aborted')
    const limit = Math.min(data.length, fault.cutAt ?? Infinity, fault.endAt ?? Infinity, fault.stallAt ?? Infinity)
    if (pos >= limit) {
      if (fault.cutAt !== undefined && pos >= fault.cutAt) throw new Error('stream reset by peer')
      if (fault.endAt !== undefined && pos >= fault.endAt) return
      if (fault.stallAt !== undefined && pos >= fault.stallAt) {
        await new Promise<void>(resolve => { signal.addEventListener('abort', () => { resolve() }, { once: true }) })
        throw new Error('aborted')
      }
      if (fault.endless !== true) return
      yield new Uint8Array(chunkSize).fill(7)
      await new Promise(resolve => setImmediate(resolve))
      continue
    }
    const end = Math.min(pos + chunkSize, limit)
    // An endless peer sends its extra bytes right after the NAR's last ones, in the same chunk.
    const extra = fault.endless === true && end === data.length ? new Uint8Array(5).fill(7) : new Uint8Array(0)
    yield Uint8Array.from(Buffer.concat([data.subarray(pos, end), extra]))
    pos = end
    await new Promise(resolve => setImmediate(resolve))
  }
}
