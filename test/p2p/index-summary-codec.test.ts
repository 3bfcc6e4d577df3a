/**
 * The summary as it travels: 32-bit keys of hash parts, sorted sets with deltas, and their
 * Golomb–Rice coding, including its size for a 100,000-path store and the false-positive
 * rate a peer's lookup then has.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import fc from 'fast-check'
import { FormatError } from '../../src/nix/errors.js'
import { toNix32 } from '../../src/nix/nix32.js'
import { decodeKeySet, encodeKeySet, riceBitsFor } from '../../src/p2p/index/golomb.js'
import { IndexUpdate } from '../../src/p2p/index/pb/message.js'
import { applyKeySetDelta, keySetDiff, keySetHas, summaryKey, toKeySet } from '../../src/store/summary-keys.js'
import { decodeKeySetBitByBit, encodeKeySetBitByBit } from '../helpers/golomb-bit-by-bit.js'

/** Bytes from a string of 0s and 1s, zero-padded to whole bytes. */
function bits (text: string): Uint8Array<ArrayBuffer> {
  const padded = text.padEnd(Math.ceil(text.length / 8) * 8, '0')
  return Uint8Array.from(padded.match(/.{8}/g) ?? [], byte => parseInt(byte, 2))
}

const randomHashPart = (): string => toNix32(randomBytes(20))
const keySets = fc.uniqueArray(fc.integer({ min: 0, max: 2 ** 32 - 1 }), { maxLength: 300 }).map(keys => toKeySet(keys))

/**
 * A Rice parameter, 0 and 31 often, and a key set it codes in at most about 2^16 bits of unary
 * runs: keys below 2^(k+16), crowded at both ends of that range (up to 2^32 - 1 from k = 16).
 */
const riceBitsAndKeys = fc.oneof(fc.constantFrom(0, 31), fc.integer({ min: 0, max: 31 })).chain(riceBits => {
  const top = Math.min(2 ** 32, 2 ** (riceBits + 16)) - 1
  const key = fc.oneof(fc.integer({ min: 0, max: top }), fc.integer({ min: Math.max(0, top - 1000), max: top }), fc.integer({ min: 0, max: Math.min(top, 1000) }))
  return fc.tuple(fc.constant(riceBits), fc.uniqueArray(key, { maxLength: 500 }).map(keys => toKeySet(keys)))
})

/** The keys, or the FormatError's message: what a decoder makes of a peer's key set. */
function outcome (decode: () => Uint32Array): number[] | string {
  try {
    return [...decode()]
  } catch (err) {
    assert.ok(err instanceof FormatError, String(err))
    return err.message
  }
}

describe('index summary keys and their coding', () => {
  it('takes the first 32 bits of the hash part\'s digest and rejects what is not a hash part', () => {
    const bytes = new Uint8Array(20)
    bytes.set([0xde, 0xad, 0xbe, 0xef, 0x01])
    assert.equal(summaryKey(toNix32(bytes)), 0xdeadbeef)
    assert.throws(() => summaryKey('not-a-hash-part'), FormatError)
    assert.throws(() => summaryKey('e'.repeat(32)), FormatError)
  })

  it('sorts and dedupes key sets, finds members and only members', () => {
    fc.assert(fc.property(fc.array(fc.integer({ min: 0, max: 2 ** 32 - 1 }), { maxLength: 200 }), fc.integer({ min: 0, max: 2 ** 32 - 1 }), (keys, probe) => {
      const set = toKeySet(keys)
      assert.deepEqual([...set], [...new Set(keys)].sort((a, b) => a - b))
      for (const key of keys) assert.ok(keySetHas(set, key))
      assert.equal(keySetHas(set, probe), keys.includes(probe))
    }))
  })

  it('a diff applied to the old set gives the new one', () => {
    fc.assert(fc.property(keySets, keySets, (before, after) => {
      const delta = keySetDiff(before, after)
      assert.deepEqual([...applyKeySetDelta(before, delta)], [...after])
      for (const key of delta.added) assert.ok(!keySetHas(before, key))
      for (const key of delta.removed) assert.ok(!keySetHas(after, key))
    }))
  })

  it('encodes and decodes any sorted key set exactly', () => {
    fc.assert(fc.property(keySets, (keys) => {
      assert.deepEqual([...decodeKeySet(encodeKeySet(keys), 1000)], [...keys])
    }))
    const edges = Uint32Array.of(0, 1, 2 ** 31, 2 ** 32 - 2, 2 ** 32 - 1)
    assert.deepEqual([...decodeKeySet(encodeKeySet(edges), 10)], [...edges])
  })

  it('codes exactly as the bit-by-bit reference, for any Rice parameter and keys up to 2^32 - 1', () => {
    fc.assert(fc.property(riceBitsAndKeys, ([riceBits, keys]) => {
      const encoded = encodeKeySet(keys, riceBits)
      assert.deepEqual(encoded, encodeKeySetBitByBit(keys, riceBits))
      assert.deepEqual([...decodeKeySet(encoded, 1000)], [...keys])
    }), { numRuns: 500 })
    fc.assert(fc.property(keySets, (keys) => {
      assert.deepEqual(encodeKeySet(keys), encodeKeySetBitByBit(keys))
    }))
  })

  it('decodes any peer data as the bit-by-bit reference does: the same keys or the same error', () => {
    const damaged = riceBitsAndKeys.chain(([riceBits, keys]) => {
      const { data } = encodeKeySet(keys, riceBits)
      return fc.record({
        count: fc.oneof(fc.constant(keys.length), fc.integer({ min: 0, max: keys.length + 3 })),
        riceBits: fc.oneof(fc.constant(riceBits), fc.integer({ min: 0, max: 32 })),
        // a bit flipped, bytes cut off or added
        data: fc.tuple(fc.nat(Math.max(0, data.byteLength * 8 - 1)), fc.boolean(), fc.nat(data.byteLength), fc.uint8Array({ maxLength: 3 })).map(([bit, flip, keep, extra]) => {
          const bytes = Uint8Array.from([...data.subarray(0, keep), ...extra])
          if (flip && bit < bytes.byteLength * 8) bytes[bit >>> 3] ^= 0x80 >>> (bit & 7)
          return bytes
        })
      })
    })
    const arbitrary = fc.record({ count: fc.integer({ min: 0, max: 40 }), riceBits: fc.integer({ min: 0, max: 32 }), data: fc.uint8Array({ maxLength: 40 }) })
    fc.assert(fc.property(fc.oneof(damaged, arbitrary), (set) => {
      assert.deepEqual(outcome(() => decodeKeySet(set, 1000)), outcome(() => decodeKeySetBitByBit(set, 1000)))
    }), { numRuns: 2000 })
  })

  it('rejects peer data that is not a valid key set, naming the problem', () => {
    const good = encodeKeySet(Uint32Array.of(5, 900, 70_000))
    assert.throws(() => decodeKeySet({ ...good, count: 4 }, 10), /ends inside a key/)
    assert.throws(() => decodeKeySet({ ...good, count: 2 }, 10), /after its last key|padding/)
    assert.throws(() => decodeKeySet(good, 2), /3 keys: expected at most 2/)
    assert.throws(() => decodeKeySet({ ...good, riceBits: 32 }, 10), /Rice parameter 32/)
    // a zero gap after the first key is a repeated key
    assert.throws(() => decodeKeySet({ count: 2, riceBits: 0, data: Uint8Array.of(0b10000000) }, 10), /repeats key/)
    // a unary run of 2^(32-k) ones cannot be a gap; keys that add up past 2^32 - 1 are no keys
    assert.throws(() => decodeKeySet({ count: 1, riceBits: 31, data: bits('110') }, 10), /gap exceeds 32 bits/)
    assert.deepEqual([...decodeKeySet({ count: 1, riceBits: 31, data: bits('10' + '1'.repeat(31)) }, 10)], [2 ** 32 - 1])
    assert.throws(() => decodeKeySet({ count: 2, riceBits: 31, data: bits('10' + '1'.repeat(31) + '0' + '0'.repeat(30) + '1') }, 10), /key 1 exceeds 32 bits/)
    assert.throws(() => decodeKeySet({ count: 1, riceBits: 0, data: Uint8Array.of(0b01000000) }, 10), /padding is not zero/)
  })

  it('a 100,000-path summary: about 17 bits a path on the wire, a false positive about once in 43,000 lookups', function () {
    this.timeout(60_000)
    const paths = Array.from({ length: 100_000 }, randomHashPart)
    const keys = toKeySet(paths.map(summaryKey))
    const encoded = encodeKeySet(keys)
    const frame = IndexUpdate.encode({ kind: IndexUpdate.Kind.FULL, version: 1, added: encoded })
    console.log(`      100,000 paths: ${keys.length} keys, Rice parameter ${riceBitsFor(keys.length)}, ${encoded.data.byteLength} bytes of key data, ${frame.byteLength} bytes as one FULL update (${(frame.byteLength * 8 / paths.length).toFixed(2)} bits a path)`)
    assert.ok(frame.byteLength < 230_000, `${frame.byteLength} bytes`)
    assert.deepEqual(decodeKeySet(encoded, 100_000), keys)

    for (const hashPart of paths.slice(0, 1000)) assert.ok(keySetHas(keys, summaryKey(hashPart)), 'no false negatives')
    let falsePositives = 0
    const probes = 200_000
    for (let i = 0; i < probes; i++) if (keySetHas(keys, summaryKey(randomHashPart()))) falsePositives++
    const expected = probes * keys.length / 2 ** 32 // ≈ 4.7
    console.log(`      ${falsePositives} false positives in ${probes} lookups of absent paths (expected ${expected.toFixed(1)})`)
    assert.ok(falsePositives <= 25, `${falsePositives} false positives`)
  })
})
