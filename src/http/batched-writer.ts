/**
 * Writes a NAR's pieces to an HTTP response in batches. Pieces arrive from libp2p at Noise's
 * message size (< 64 KiB); written one by one, each is a socket write of its own, which was
 * the largest single cost of the shim daemon while streaming (`writeBuffer`, 8 % of its CPU in
 * bench/profile-nar.ts). Corked, the pieces that arrive within one turn of the event loop go
 * out together in one `writev`, at most `maxBytes` at a time, and the writer still waits for
 * the client (drain) before taking more, so a slow Nix slows the peer down.
 */
import type { ServerResponse } from 'node:http'

export const BATCH_BYTES = 1024 * 1024

export class BatchedWriter {
  readonly #res: ServerResponse
  readonly #maxBytes: number
  #pending = 0
  #scheduled = false

  constructor (res: ServerResponse, maxBytes = BATCH_BYTES) {
    this.#res = res
    this.#maxBytes = maxBytes
  }

  /** Queues `chunk`; resolves once the caller may write more (the client has kept up). */
  async write (chunk: Uint8Array): Promise<void> {
    if (this.#pending === 0) {
      if (this.#res.writableNeedDrain) await drained(this.#res)
      this.#res.cork()
    }
    this.#res.write(chunk)
    this.#pending += chunk.byteLength
    if (this.#pending >= this.#maxBytes) {
      this.flush()
    } else if (!this.#scheduled) {
      this.#scheduled = true
      setImmediate(() => {
        this.#scheduled = false
        this.flush()
      })
    }
  }

  /** Sends what is queued now. */
  flush (): void {
    if (this.#pending === 0) return
    this.#pending = 0
    this.#res.uncork()
  }
}

/** Resolves when the response can take more, or when the client has gone. */
async function drained (res: ServerResponse): Promise<void> {
  await new Promise<void>(resolve => {
    const done = (): void => {
      res.off('drain', done)
      res.off('close', done)
      resolve()
    }
    res.on('drain', done)
    res.on('close', done)
  })
}
