import assert from 'node:assert/strict'
import { getEventListeners, setMaxListeners } from 'node:events'
import { deadline, timeLimit } from '../../src/p2p/wire/deadline.js'

const sleep = async (ms: number): Promise<void> => { await new Promise(resolve => setTimeout(resolve, ms)) }

describe('time limits of peer exchanges', function () {
  it('abort once the time runs out, and say that it was the time', async () => {
    const limit = timeLimit(20)
    await sleep(60)
    assert.equal(limit.signal.aborted, true)
    assert.equal(limit.expired, true)
    assert.equal((limit.signal.reason as Error).name, 'TimeoutError')
  })

  it('once cleared, never abort and hold no listener on the caller\'s signal', async () => {
    const caller = new AbortController()
    setMaxListeners(50, caller.signal) // 50 on purpose: no leak warning from this test
    const limits = Array.from({ length: 50 }, () => timeLimit(20, caller.signal))
    assert.equal(getEventListeners(caller.signal, 'abort').length, 50)
    for (const limit of limits) limit.clear()
    assert.equal(getEventListeners(caller.signal, 'abort').length, 0, 'a cleared limit let go of the caller')
    await sleep(60)
    caller.abort(new Error('too late'))
    assert.ok(limits.every(limit => !limit.signal.aborted && !limit.expired))
  })

  it('pass the caller\'s abort on with its reason, already aborted or later', () => {
    const before = new AbortController()
    before.abort(new Error('gone before'))
    const early = timeLimit(10_000, before.signal)
    assert.equal((early.signal.reason as Error).message, 'gone before')
    early.clear()

    const later = new AbortController()
    const limit = timeLimit(10_000, later.signal)
    later.abort(new Error('gone later'))
    assert.equal((limit.signal.reason as Error).message, 'gone later')
    assert.equal(limit.expired, false)
    limit.clear()
  })

  it('explain a failure by the caller, by the time limit, or by the error itself', async () => {
    const caller = new AbortController()
    const byCaller = deadline(10_000, caller.signal)
    caller.abort()
    assert.equal(byCaller.explain(new Error('x')), 'cancelled by the caller')
    byCaller.clear()

    const byTime = deadline(10)
    await sleep(40)
    assert.equal(byTime.explain(new Error('x')), 'no answer within 10 ms')

    const byError = deadline(10_000)
    assert.equal(byError.explain(new Error('stream reset')), 'stream reset')
    byError.clear()
  })
})
