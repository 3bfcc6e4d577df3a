/**
 * What of a NAR body went out, told to the store's `NarBytes.sent` as it goes: the bytes that
 * left the stream's queue for the connection. Bytes still in the queue do not count: a reset
 * throws them away, and the peer never gets them.
 */
import { canDeliver } from '../wire/send.js'
import type { NarBytes } from '../../store/source.js'
import type { Stream } from '@libp2p/interface'

export class BodyProgress {
  readonly #stream: Stream
  readonly #report: NonNullable<NarBytes['sent']>
  readonly #length: number
  /** Raw body: the header's bytes, after which each byte on the stream is one of the NAR. */
  readonly #header: number | undefined
  /** Bytes of this body queued on the stream so far, the header included. */
  #queued = 0
  /** zstd body: per write not yet out, where it ends on the stream and in the NAR. */
  readonly #writes: Array<{ end: number, narEnd: number }> = []
  #reported = 0
  #ended = false

  private constructor (stream: Stream, report: NonNullable<NarBytes['sent']>, length: number, header: number | undefined) {
    this.#stream = stream
    this.#report = report
    this.#length = length
    this.#header = header
  }

  /**
   * Progress for `nar` on `stream`, or undefined when its store does not ask. `rawHeader`: the
   * bytes of the header of a raw body (counted to the byte); without it, a body of zstd blocks
   * (counted by write: the NAR bytes of a write once all of it is out).
   */
  static of (stream: Stream, nar: NarBytes, rawHeader?: number): BodyProgress | undefined {
    return nar.sent === undefined ? undefined : new BodyProgress(stream, nar.sent, nar.length, rawHeader)
  }

  /** `bytes` queued on the stream, which complete the NAR up to byte `narEnd` of the body. */
  queued (bytes: number, narEnd: number): void {
    this.#queued += bytes
    if (this.#header === undefined) this.#writes.push({ end: this.#queued, narEnd })
  }

  /**
   * Reports the NAR bytes out since the last call. The stream's queue holds only this body's
   * bytes and what was queued before them (which leaves first), so what left of ours is what
   * we queued less what is still queued.
   */
  update (): void {
    // A stream that can no longer deliver has thrown its queue away: what was in it is not out.
    if (this.#ended || !canDeliver(this.#stream)) return
    const out = this.#queued - this.#stream.writeBufferLength
    let narEnd = this.#reported
    if (this.#header !== undefined) {
      narEnd = Math.max(narEnd, Math.min(this.#length, out - this.#header))
    } else {
      while (this.#writes.length > 0 && this.#writes[0].end <= out) {
        narEnd = this.#writes[0].narEnd
        this.#writes.shift()
      }
    }
    if (narEnd > this.#reported) {
      this.#report(narEnd - this.#reported)
      this.#reported = narEnd
    }
  }

  /** Every byte went out (the caller saw the stream's queue empty and the stream open). */
  complete (): void {
    if (this.#ended) return
    this.#ended = true
    this.#report(this.#length - this.#reported, 'complete')
  }

  /** The body stopped short: what went out is what is known to have left the queue. */
  cut (): void {
    this.update()
    if (this.#ended) return
    this.#ended = true
    this.#report(0, 'cut')
  }
}
