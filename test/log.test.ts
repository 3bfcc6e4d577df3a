/** The log format: one line per event, whatever text a peer put into the message. */
import assert from 'node:assert/strict'
import { createLogger, oneLine, shortPeer } from '../src/log.js'

describe('log', () => {
  it('writes `<level> <message>` for levels up to the threshold, nothing else', () => {
    const lines: string[] = []
    const log = createLogger('info', line => { lines.push(line) })
    log.error('e'); log.warn('w'); log.info('i'); log.debug('d')
    assert.deepEqual(lines, ['error e', 'warn w', 'info i'])
  })

  it('keeps a message with newlines, escapes or colour codes from a peer on one line', () => {
    const lines: string[] = []
    createLogger('debug', line => { lines.push(line) }).info('refused x: reason\ninfo forged line\r\u001b[31mred\u0000')
    assert.deepEqual(lines, ['info refused x: reason\\ninfo forged line\\r\\x1b[31mred\\x00'])
    assert.equal(oneLine('tab\tstays'), 'tab\tstays')
  })

  it('shortens peer IDs to their last 8 characters', () => {
    assert.equal(shortPeer('12D3KooWFaLJxhyRca5iduQCu7zEri8D8dy9f6X3Sa5GUxWiU4Z2'), '…UxWiU4Z2')
  })
})
