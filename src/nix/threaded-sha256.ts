/**
 * SHA-256 on a worker thread, fed through a ring of shared memory. Hashing a NAR costs the
 * thread that relays it about 0.65 s per GiB; copying the bytes into the ring costs it about
 * 0.05 s. While one large NAR streams, the event loop is the bottleneck and the machine's
 * other cores are not, so the hash of one NAR at a time is done there.
 */
import { Worker } from 'node:worker_threads'

const RING_BYTES = 4 << 20
const WAKE_BYTES = 1n << 20n

// Control words: bytes written, bytes hashed, bytes in the whole input once it ended (-1 while
// open), and a generation bumped on every change the worker must see (so no wake-up is lost).
const WRITTEN = 0
const HASHED = 1
const END = 2
const GENERATION = 3

const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads')
const { createHash } = require('node:crypto')
const ring = new Uint8Array(workerData.ring)
const ctl = new BigInt64Array(workerData.ctl)
const size = BigInt(ring.length)
parentPort.on('message', () => {
  const hash = createHash('sha256')
  let hashed = 0n
  for (;;) {
    const generation = Atomics.load(ctl, ${GENERATION})
    const written = Atomics.load(ctl, ${WRITTEN})
    if (written === hashed) {
      if (Atomics.load(ctl, ${END}) === hashed) break
      Atomics.wait(ctl, ${GENERATION}, generation)
      continue
    }
    while (hashed < written) {
      const at = Number(hashed % size)
      const n = Math.min(Number(written - hashed), ring.length - at)
      hash.update(ring.subarray(at, at + n))
      hashed += BigInt(n)
    }
    Atomics.store(ctl, ${HASHED}, hashed)
    Atomics.notify(ctl, ${HASHED})
  }
  parentPort.postMessage(hash.digest())
})
`

/** The one worker and its ring, made on first use and leased to one hash at a time. */
class HashThread {
  readonly ring = new Uint8Array(new SharedArrayBuffer(RING_BYTES))
  readonly ctl = new BigInt64Array(new SharedArrayBuffer(4 * 8))
  readonly worker: Worker
  leased = false

  constructor () {
    this.worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { ring: this.ring.buffer, ctl: this.ctl.buffer } })
    this.worker.unref()
  }
}

/** Node has had Atomics.waitAsync since 16; TypeScript's lib has it from ES2024 only. */
const waitAsync = (Atomics as unknown as {
  waitAsync: (array: BigInt64Array, index: number, value: bigint) => { async: false, value: string } | { async: true, value: Promise<string> }
}).waitAsync

let thread: HashThread | undefined

/**
 * A SHA-256 whose hashing runs on the worker thread, or undefined when another hash holds it
 * (the caller then hashes on its own thread).
 */
export function leaseThreadedSha256 (): ThreadedSha256 | undefined {
  thread ??= new HashThread()
  if (thread.leased) return undefined
  thread.leased = true
  // Atomics.waitAsync does not keep Node alive; the leased worker does.
  thread.worker.ref()
  return new ThreadedSha256(thread)
}

export class ThreadedSha256 {
  private written = 0n
  private woken = 0n
  private done = false

  constructor (private readonly thread: HashThread) {
    const ctl = thread.ctl
    Atomics.store(ctl, WRITTEN, 0n)
    Atomics.store(ctl, HASHED, 0n)
    Atomics.store(ctl, END, -1n)
    thread.worker.postMessage('start')
  }

  /** Copies `chunk` into the ring; waits only when the worker is a whole ring behind. */
  async update (chunk: Uint8Array): Promise<void> {
    if (this.done) throw new Error('ThreadedSha256.update() called after digest()')
    const { ring, ctl } = this.thread
    let offset = 0
    while (offset < chunk.length) {
      const free = RING_BYTES - Number(this.written - Atomics.load(ctl, HASHED))
      if (free === 0) {
        this.wake()
        const wait = waitAsync(ctl, HASHED, Atomics.load(ctl, HASHED))
        if (wait.async) await wait.value
        continue
      }
      const at = Number(this.written % BigInt(RING_BYTES))
      const n = Math.min(chunk.length - offset, free, RING_BYTES - at)
      ring.set(chunk.subarray(offset, offset + n), at)
      offset += n
      this.written += BigInt(n)
      Atomics.store(ctl, WRITTEN, this.written)
      if (this.written - this.woken >= WAKE_BYTES) this.wake()
    }
  }

  /** Tells the worker there is more to hash. Done once per WAKE_BYTES: each wake-up is a context switch. */
  private wake (): void {
    this.woken = this.written
    Atomics.add(this.thread.ctl, GENERATION, 1n)
    Atomics.notify(this.thread.ctl, GENERATION)
  }

  /** The digest of everything given; frees the worker for the next hash. */
  async digest (): Promise<Buffer> {
    if (this.done) throw new Error('ThreadedSha256.digest() called twice')
    this.done = true
    const { worker, ctl } = this.thread
    const result = new Promise<Buffer>((resolve) => { worker.once('message', (digest: Uint8Array) => { resolve(Buffer.from(digest)) }) })
    Atomics.store(ctl, END, this.written)
    Atomics.add(ctl, GENERATION, 1n)
    Atomics.notify(ctl, GENERATION)
    try {
      return await result
    } finally {
      this.thread.leased = false
      this.thread.worker.unref()
    }
  }
}
