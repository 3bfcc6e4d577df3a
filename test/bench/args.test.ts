/** The bench scripts' number options: taken out of the arguments, or refused by name. */
import assert from 'node:assert/strict'
import { takeNumberOption } from '../../bench/args.js'

describe('bench takeNumberOption', () => {
  it('takes the option and its value out, leaving the other arguments', () => {
    const args = ['1', '--count', '300', '1024']
    assert.equal(takeNumberOption(args, '--count', 200), 300)
    assert.deepEqual(args, ['1', '1024'])
  })

  it('gives the fallback when the option is absent', () => {
    const args = ['relay', 'default']
    assert.equal(takeNumberOption(args, '--rounds', 2), 2)
    assert.deepEqual(args, ['relay', 'default'])
  })

  it('refuses a missing, empty, negative or non-numeric value, naming the option', () => {
    for (const bad of [[], [''], ['-1'], ['many']]) {
      assert.throws(() => takeNumberOption(['--count', ...bad], '--count', 1), /--count takes a non-negative number/)
    }
  })
})
