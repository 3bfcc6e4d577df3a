import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import fc from 'fast-check'
import { formatNarUrl, parseNarUrl } from '../../src/store/nar-url.js'
import { formatSha256Base16, formatSha256Nix32, formatSha256Sri } from '../../src/nix/hash.js'
import { NIX32_ALPHABET } from '../../src/nix/nix32.js'

const hashPart = '0123456789abcdfghijklmnpqrsvwxyz'
const digest = Uint8Array.from(randomBytes(32))
const narHash = formatSha256Nix32(digest)

describe('NAR URL', () => {
  it('names the hash part and the nix32 NarHash, and reads back', () => {
    const url = formatNarUrl(hashPart, narHash)
    assert.equal(url, `nar/${hashPart}-${narHash.slice(7)}.nar`)
    assert.deepEqual(parseNarUrl(url), { hashPart, narHash })
    assert.deepEqual(parseNarUrl(`/${url}`), { hashPart, narHash })
  })

  it('writes the same URL whatever form the NarHash comes in', () => {
    const url = formatNarUrl(hashPart, narHash)
    assert.equal(formatNarUrl(hashPart, formatSha256Base16(digest)), url)
    assert.equal(formatNarUrl(hashPart, formatSha256Sri(digest)), url)
  })

  it('rejects anything that is not exactly such a URL', () => {
    const good = formatNarUrl(hashPart, narHash)
    const bad = [
      '', 'nar/', `${good}?x=1`, `${good}#f`, `${good}/`, `//${good}`, `nar/../${good}`, `/nar/x/../${good.slice(4)}`,
      good.replace('.nar', '.nar.xz'), good.replace('nar/', 'nar/0'), good.replace(hashPart, hashPart.slice(1)),
      good.replace(hashPart, hashPart.replace('0', 'e')), good.replace(hashPart, hashPart.toUpperCase()),
      good.replace(narHash.slice(7), narHash.slice(8)), `${good}\n`, ` ${good}`, good.replace('-', '_'),
      // 52 nix32 digits hold 260 bits: a first digit above 1 sets bits beyond the 32 bytes.
      `nar/${hashPart}-z${narHash.slice(8)}.nar`
    ]
    for (const url of bad) assert.equal(parseNarUrl(url), undefined, url)
  })

  it('reads back every hash part and digest (property)', () => {
    fc.assert(fc.property(
      fc.array(fc.constantFrom(...NIX32_ALPHABET), { minLength: 32, maxLength: 32 }).map(cs => cs.join('')),
      fc.uint8Array({ minLength: 32, maxLength: 32 }),
      (hp, d) => {
        const h = formatSha256Nix32(d)
        assert.deepEqual(parseNarUrl(formatNarUrl(hp, h)), { hashPart: hp, narHash: h })
      }), { seed: 42, numRuns: 500 })
  })
})
