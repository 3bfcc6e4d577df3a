import assert from 'node:assert/strict'
import { getEventListeners } from 'node:events'
import { Slots, type Slot } from '../../src/p2p/wire/slots.js'
import { StreamPool } from '../../src/p2p/wire/stream-pool.js'
import type { PeerId, Stream } from '@libp2p/interface'

/** Lets pending promise callbacks run. */
const settle = async (): Promise<void> => { await new Promise(resolve => setImmediate(resolve)) }

describe('per-peer slots: no more exchanges at once than the peer accepts', function () {
  it('grants up to the limit at once, per key, and queues the rest', async () => {
    const slots = new Slots(2)
    await slots.take('a')
    await slots.take('a')
    await slots.take('b')
    let third = false
    void slots.take('a').then(() => { third = true })
    await settle()
    assert.equal(third, false, 'the third slot of a waits')
    assert.deepEqual([slots.taken('a'), slots.waiting('a'), slots.taken('b')], [2, 1, 1])
  })

  it('hands freed slots to the waiters first come, first served, and none can overtake the queue', async () => {
    const slots = new Slots(1)
    const first = await slots.take('p')
    const order: number[] = []
    const waiters = [1, 2, 3].map(async (n) => { const slot = await slots.take('p'); order.push(n); return slot })
    first.release()
    const s1 = await waiters[0]
    // a newcomer while 2 and 3 still wait: behind them, though the released slot is free for a moment
    const late = slots.take('p').then((slot) => { order.push(4); return slot })
    s1.release()
    ;(await waiters[1]).release()
    ;(await waiters[2]).release()
    ;(await late).release()
    assert.deepEqual(order, [1, 2, 3, 4])
    assert.deepEqual([slots.taken('p'), slots.waiting('p')], [0, 0])
  })

  it('frees a slot once, however often it is released', async () => {
    const slots = new Slots(2)
    const a = await slots.take('p')
    await slots.take('p')
    a.release()
    a.release()
    assert.equal(slots.taken('p'), 1, 'a second release did not free the other slot')
  })

  it('takes an aborted waiter out of the queue at once, with the abort reason, and lets the next one in', async () => {
    const slots = new Slots(1)
    const held = await slots.take('p')
    const gone = new AbortController()
    const aborted = slots.take('p', { signal: gone.signal })
    const next = slots.take('p')
    assert.equal(slots.waiting('p'), 2)
    gone.abort(new Error('Nix hung up'))
    await assert.rejects(aborted, /Nix hung up/)
    assert.equal(slots.waiting('p'), 1, 'the aborted request left the queue')
    assert.equal(getEventListeners(gone.signal, 'abort').length, 0)
    held.release()
    ;(await next).release()
    assert.deepEqual([slots.taken('p'), slots.waiting('p')], [0, 0])
  })

  it('refuses an already aborted request without queueing it', async () => {
    const slots = new Slots(1)
    await slots.take('p')
    await assert.rejects(slots.take('p', { signal: AbortSignal.abort(new Error('already gone')) }), /already gone/)
    assert.equal(slots.waiting('p'), 0)
  })

  it('tells a queued request synchronously, and when its turn comes; not one that needs no wait', async () => {
    const slots = new Slots(1)
    let notQueued = false
    const held = await slots.take('p', { onQueued: () => { notQueued = true } })
    assert.equal(notQueued, false, 'a free slot is no wait')
    let turn: Promise<void> | undefined
    const taken = slots.take('p', { onQueued: (t) => { turn = t } })
    assert.ok(turn !== undefined, 'reported before take returned')
    let came = false
    void turn.then(() => { came = true })
    await settle()
    assert.equal(came, false, 'not before the slot is free')
    held.release()
    await turn
    ;(await taken).release()
    assert.equal(slots.taken('p'), 0)
  })

  it('fails the waiters when cancelled, and keeps no listener on their signals', async () => {
    const slots = new Slots(1)
    await slots.take('p')
    const signal = new AbortController().signal
    const waiting = slots.take('p', { signal })
    slots.cancelWaiting(new Error('the node is stopping'))
    await assert.rejects(waiting, /stopping/)
    assert.equal(slots.waiting('p'), 0)
    assert.equal(getEventListeners(signal, 'abort').length, 0)
  })
})

/** A stream that looks open both ways, and records how it ended. */
function fakeStream (): Stream & { ended?: string } {
  const stream = {
    status: 'open',
    writeStatus: 'writable',
    remoteWriteStatus: 'writable',
    readStatus: 'readable',
    readBufferLength: 0,
    send: () => true,
    abort: () => { stream.status = 'aborted'; stream.writeStatus = 'closed'; stream.ended = 'reset' },
    close: async () => { stream.status = 'closed'; stream.writeStatus = 'closed'; stream.ended = 'closed' },
    addEventListener: () => {},
    removeEventListener: () => {}
  } as unknown as Stream & { ended?: string, status: string, writeStatus: string }
  return stream
}

describe('the stream pool gives up a stream\'s slot with the stream, on every path', function () {
  const peer = { toString: () => 'peer-1' } as unknown as PeerId

  function pool (opts: { failOpen?: boolean } = {}): { pool: StreamPool, opened: () => number } {
    let opened = 0
    const p = new StreamPool({
      openStream: async () => {
        if (opts.failOpen === true) throw new Error('no connection')
        opened++
        return fakeStream()
      }
    } as any, { protocol: '/test/1', maxIdlePerPeer: 1, idleTimeout: 60_000, maxBusyPerPeer: 2 })
    return { pool: p, opened: () => opened }
  }

  it('when handed back for reuse, reset after a failed exchange, or closed with the idle pool full', async () => {
    const { pool: p, opened } = pool()
    const a = await p.acquire(peer)
    const b = await p.acquire(peer)
    const c = p.acquire(peer)
    assert.deepEqual(p.load(peer), { busy: 2, waiting: 1 })
    p.release(a, true) // kept idle, and c gets it
    const got = await c
    assert.equal(got.stream, a.stream, 'the queued exchange took the stream just handed back')
    assert.equal(opened(), 2, 'no third stream was opened')
    p.release(b, false) // reset
    assert.equal((b.stream as Stream & { ended?: string }).ended, 'reset')
    p.release(got, true) // idle
    assert.deepEqual(p.load(peer), { busy: 0, waiting: 0 })
    const [x, y] = [await p.acquire(peer), await p.acquire(peer)]
    p.release(x, true)
    p.release(y, true) // one idle stream is all this pool keeps: closed
    assert.equal((y.stream as Stream & { ended?: string }).ended, 'closed')
    assert.deepEqual(p.load(peer), { busy: 0, waiting: 0 })
    p.stop()
  })

  it('when the exchange fails, when its stream cannot be opened, and when the caller aborts while queued', async () => {
    const { pool: p } = pool()
    await assert.rejects(p.exchange(peer, new Uint8Array(1), async () => { throw new Error('reset by the peer') }), /reset by the peer/)
    assert.deepEqual(p.load(peer), { busy: 0, waiting: 0 })
    const held = [await p.acquire(peer), await p.acquire(peer)]
    const gone = new AbortController()
    const queued = p.exchange(peer, new Uint8Array(1), async () => 'never', { signal: gone.signal })
    assert.deepEqual(p.load(peer), { busy: 2, waiting: 1 })
    gone.abort(new Error('Nix hung up'))
    await assert.rejects(queued, /Nix hung up/)
    assert.deepEqual(p.load(peer), { busy: 2, waiting: 0 })
    for (const s of held) p.release(s, true)
    const { pool: failing } = pool({ failOpen: true })
    await assert.rejects(failing.exchange(peer, new Uint8Array(1), async () => 'never'), /no connection/)
    assert.deepEqual(failing.load(peer), { busy: 0, waiting: 0 })
    p.stop()
  })

  it('fails the exchanges still queued when the pool stops', async () => {
    const { pool: p } = pool()
    const held: Slot[] = [await p.turn(peer), await p.turn(peer)]
    const queued = p.exchange(peer, new Uint8Array(1), async () => 'never')
    p.stop()
    await assert.rejects(queued, /stopping/)
    for (const s of held) s.release()
    assert.deepEqual(p.load(peer), { busy: 0, waiting: 0 })
  })
})
