import assert from 'node:assert/strict'
import { LogEvery } from '../src/log-every.js'

describe('LogEvery', () => {
  it('logs a problem once per interval, its repeats at the other level, and counts them into the next line', () => {
    const logged: string[] = []
    const repeats: string[] = []
    const log = new LogEvery(line => logged.push(line), line => repeats.push(line), 60_000)
    log.line('db', 'cannot read the database (1)', 0)
    log.line('db', 'cannot read the database (2)', 1_000)
    log.line('db', 'cannot read the database (3)', 59_999)
    log.line('malformed', 'malformed request', 30_000)
    log.line('db', 'cannot read the database (4)', 60_000)
    assert.deepEqual(logged, [
      'cannot read the database (1)',
      'malformed request',
      'cannot read the database (4) (and 2 more like it since the last such line)'
    ])
    assert.deepEqual(repeats, ['cannot read the database (2)', 'cannot read the database (3)'])
  })
})
