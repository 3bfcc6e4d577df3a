import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import fc from 'fast-check'
import { formatSha256Base16, formatSha256Nix32, formatSha256Sri, parseSha256, SHA256_BYTES, toNarHash } from '../../src/nix/hash.js'
import { NixEnv } from '../helpers/nix.js'

const abc = createHash('sha256').update('abc').digest()

describe('SHA-256 hash forms', () => {
  it('writes the three forms Nix uses', () => {
    assert.equal(formatSha256Nix32(abc), 'sha256:1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s')
    assert.equal(formatSha256Base16(abc), 'sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad')
    assert.equal(formatSha256Sri(abc), 'sha256-ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=')
  })

  it('reads every form, base16 in either case and base64 after a colon, to the same digest', () => {
    for (const text of [
      formatSha256Nix32(abc), formatSha256Base16(abc), formatSha256Sri(abc),
      formatSha256Base16(abc).toUpperCase().replace('SHA256', 'sha256'),
      `sha256:${abc.toString('base64')}`
    ]) {
      assert.deepEqual(parseSha256(text), Uint8Array.from(abc), text)
      assert.equal(toNarHash(text), formatSha256Nix32(abc))
    }
  })

  it('round-trips any digest through every form', () => {
    fc.assert(fc.property(fc.uint8Array({ minLength: SHA256_BYTES, maxLength: SHA256_BYTES }), digest => {
      for (const text of [formatSha256Nix32(digest), formatSha256Base16(digest), formatSha256Sri(digest)]) {
        assert.deepEqual(parseSha256(text), digest)
      }
    }), { seed: 2718, numRuns: 300 })
  })

  it('rejects other algorithms and malformed digests, naming the value', () => {
    const nix32 = formatSha256Nix32(abc).slice(7)
    const cases: Array<[string, RegExp]> = [
      ['', /^invalid hash "": expected sha256:… or sha256-…$/],
      [`sha512:${nix32}`, /^invalid hash "sha512:.*": expected sha256:… or sha256-…$/],
      [nix32, /^invalid hash "1b8m.*": expected sha256:… or sha256-…$/],
      [`sha256:${nix32.slice(1)}`, /^invalid sha256 hash "sha256:b8m.*"$/],
      [`sha256:${nix32.slice(0, -1)}e`, /^invalid nix32 character "e" in "1b8m.*"$/],
      [`sha256:2${nix32.slice(1)}`, /bits beyond the last byte/],
      [`sha256:${'g'.repeat(64)}`, /^invalid sha256 hash "sha256:g{64}"$/],
      [`sha256-${nix32}`, /^invalid sha256 hash "sha256-1b8m.*"$/],
      // base16 and nix32 are only written after a colon, never in SRI form
      [`sha256-${abc.toString('hex')}`, /^invalid sha256 hash/],
      ['sha256-' + 'A'.repeat(44), /^invalid sha256 hash/]
    ]
    for (const [text, message] of cases) {
      assert.throws(() => parseSha256(text), (err: Error) => err.name === 'FormatError' && message.test(err.message), text)
    }
  })

  describe('against real Nix', function () {
    this.timeout(60_000)
    let nix: NixEnv
    before(async () => { nix = await NixEnv.create() })
    after(async () => { await nix?.cleanup() })

    it('agrees with `nix hash to-sri` and `nix hash to-base32` on random digests', async () => {
      const digests = Array.from({ length: 20 }, () => randomBytes(SHA256_BYTES))
      const sri = await nix.run('nix', ['hash', 'to-sri', ...digests.map(d => formatSha256Nix32(d))])
      assert.deepEqual(sri.stdout.trim().split('\n'), digests.map(d => formatSha256Sri(d)))
      const nix32 = await nix.run('nix', ['hash', 'to-base32', ...digests.map(d => formatSha256Sri(d))])
      assert.deepEqual(nix32.stdout.trim().split('\n').map(t => `sha256:${t}`), digests.map(d => toNarHash(formatSha256Base16(d))))
    })
  })
})
