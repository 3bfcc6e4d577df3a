import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import fc from 'fast-check'
import { FormatError } from '../../src/nix/errors.js'
import { fromNix32, isNix32, nix32Length, NIX32_ALPHABET, toNix32 } from '../../src/nix/nix32.js'
import { NixEnv } from '../helpers/nix.js'

const sha256 = (data: Uint8Array | string): Uint8Array => createHash('sha256').update(data).digest()

describe('nix32', () => {
  it('encodes known SHA-256 digests as Nix prints them', () => {
    // From Nix's own test suite (tests/hash.sh): sha256 of "" and of "abc".
    assert.equal(toNix32(sha256('')), '0mdqa9w1p6cmli6976v4wi0sw9r4p5prkj7lzfd1877wk11c9c73')
    assert.equal(toNix32(sha256('abc')), '1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s')
  })

  it('writes the last 5-bit group first', () => {
    assert.equal(toNix32(Uint8Array.of(0x01)), '01')
    assert.equal(toNix32(Uint8Array.of(0x20)), '10')
    assert.equal(toNix32(Uint8Array.of(0xff)), '7z')
    assert.equal(toNix32(new Uint8Array(0)), '')
  })

  it('has lengths ceil(8n/5): 32 characters for a 20-byte hash part, 52 for SHA-256', () => {
    assert.equal(nix32Length(20), 32)
    assert.equal(nix32Length(32), 52)
    assert.equal(nix32Length(0), 0)
  })

  it('round-trips any bytes', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 80 }), bytes => {
      const text = toNix32(bytes)
      assert.equal(text.length, nix32Length(bytes.length))
      assert.deepEqual(fromNix32(text), bytes)
      assert.ok(isNix32(text, bytes.length))
    }), { seed: 1321, numRuns: 500 })
  })

  it('rejects the letters Nix leaves out, upper case and non-ASCII, naming the character', () => {
    const valid = toNix32(sha256('x'))
    for (const bad of ['e', 'o', 'u', 't', 'A', 'é', ' ']) {
      const text = bad + valid.slice(1)
      assert.throws(() => fromNix32(text), (err: Error) => err instanceof FormatError && err.message === `invalid nix32 character ${JSON.stringify(bad)} in ${JSON.stringify(text)}`)
      assert.equal(isNix32(text, 32), false)
    }
  })

  it('rejects a length no byte count has', () => {
    assert.throws(() => fromNix32('0'), { name: 'FormatError', message: 'invalid nix32 length 1' })
    assert.throws(() => fromNix32('0'.repeat(51)), { name: 'FormatError', message: 'invalid nix32 length 51' })
    assert.equal(isNix32('0'.repeat(51), 32), false)
  })

  it('rejects bits beyond the last byte, so each digest has exactly one spelling', () => {
    // 1 byte = 8 bits; two digits carry 10, the first digit's top two must be zero.
    assert.deepEqual(fromNix32('7z'), Uint8Array.of(0xff))
    for (const text of ['8z', 'z0']) {
      assert.throws(() => fromNix32(text), { name: 'FormatError', message: `invalid nix32 ${JSON.stringify(text)}: bits beyond the last byte` })
    }
    // SHA-256: 52 digits carry 260 bits, so the first digit may only be 0 or 1.
    const digest = toNix32(sha256('y'))
    assert.ok(digest[0] === '0' || digest[0] === '1')
    assert.throws(() => fromNix32('2' + digest.slice(1)), /bits beyond the last byte/)
    assert.equal(isNix32('2' + digest.slice(1), 32), false)
  })

  it('uses Nix\'s alphabet', () => {
    assert.equal(NIX32_ALPHABET, '0123456789abcdfghijklmnpqrsvwxyz')
  })

  describe('against real Nix', function () {
    this.timeout(60_000)
    let nix: NixEnv
    before(async () => { nix = await NixEnv.create() })
    after(async () => { await nix?.cleanup() })

    it('hashes random files as `nix-hash --flat --base32` does', async () => {
      const files: string[] = []
      const expected: string[] = []
      for (const size of [0, 1, 5, 31, 32, 33, 1000, 65537]) {
        const data = randomBytes(size)
        const file = join(nix.dir, `data-${size}`)
        await writeFile(file, data)
        files.push(file)
        expected.push(toNix32(sha256(data)))
      }
      const { stdout } = await nix.run('nix-hash', ['--type', 'sha256', '--flat', '--base32', ...files])
      assert.deepEqual(stdout.trim().split('\n'), expected)
    })

    for (const [type, bytes] of [['md5', 16], ['sha1', 20], ['sha256', 32], ['sha512', 64]] as const) {
      it(`converts random ${type} digests (${bytes} bytes) both ways as nix-hash does`, async () => {
        const digests = Array.from({ length: 20 }, () => randomBytes(bytes))
        const hex = digests.map(d => d.toString('hex'))
        const toBase32 = await nix.run('nix-hash', ['--type', type, '--to-base32', ...hex])
        const nix32 = toBase32.stdout.trim().split('\n')
        assert.deepEqual(nix32, digests.map(d => toNix32(d)))
        const toBase16 = await nix.run('nix-hash', ['--type', type, '--to-base16', ...nix32])
        assert.deepEqual(toBase16.stdout.trim().split('\n'), nix32.map(t => Buffer.from(fromNix32(t)).toString('hex')))
      })
    }
  })
})
