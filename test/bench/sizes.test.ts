import assert from 'node:assert/strict'
import { benchSizes } from '../../bench/sizes.js'

describe('bench sizes', () => {
  it('take --runs and --leaf-bytes from the command line', () => {
    const sizes = benchSizes(false, '2', '4000-64000')
    assert.equal(sizes.runs, 2)
    assert.equal(sizes.closure.minLeafBytes, 4000)
    assert.equal(sizes.closure.maxLeafBytes, 64000)
    assert.equal(sizes.closure.leaves, benchSizes(false).closure.leaves)
  })

  it('refuse a leaf size range that is not MIN-MAX, naming the flag', () => {
    for (const bad of ['64000', '0-10', '10-5', '1e3-2e3', '-5-10']) {
      assert.throws(() => benchSizes(false, undefined, bad), (err: Error) => err.message.startsWith(`--leaf-bytes ${JSON.stringify(bad)}: expected MIN-MAX`), bad)
    }
    assert.throws(() => benchSizes(false, '0'), /--runs "0": expected a positive whole number/)
  })
})
