/**
 * The parsers that read what other hosts and key files hand us (Nix keys, store paths), fed
 * arbitrary and near-valid text with a fixed seed: each either accepts or throws a FormatError
 * whose message is a single readable line, never anything else, and never leaks a secret key.
 */
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { FormatError } from '../../src/nix/errors.js'
import { formatPublicKey, formatSecretKey, generateSecretKey, parsePublicKey, parseSecretKey, publicKeyOf } from '../../src/nix/signing.js'
import { parseBaseName, parseHashPart, parseStorePath } from '../../src/nix/store-path.js'

const SEED = 5005
const RUNS = 3000

/** Either a value, or a FormatError with a short single-line message; anything else fails. */
function acceptsOrExplains<T> (parse: (text: string) => T, text: string): T | FormatError {
  try {
    return parse(text)
  } catch (err) {
    assert.ok(err instanceof FormatError, `${JSON.stringify(text.slice(0, 80))} threw ${String(err)}, not a FormatError`)
    assert.ok(err.message.length > 10 && err.message.length < 1000, `unhelpful message: ${err.message}`)
    return err
  }
}

/** Text that is sometimes valid: arbitrary strings, and valid ones with a few characters changed. */
function mutated (valid: fc.Arbitrary<string>): fc.Arbitrary<string> {
  const edit = fc.record({ at: fc.nat(), cut: fc.integer({ min: 0, max: 3 }), insert: fc.string({ unit: 'binary', maxLength: 3 }) })
  return fc.oneof(
    fc.string({ unit: 'binary', maxLength: 200 }),
    valid,
    fc.tuple(valid, fc.array(edit, { minLength: 1, maxLength: 3 })).map(([text, edits]) => edits.reduce((t, e) => {
      const at = e.at % (t.length + 1)
      return t.slice(0, at) + e.insert + t.slice(at + e.cut)
    }, text))
  )
}

const keyName = fc.stringMatching(/^[A-Za-z0-9._-]{1,20}$/)
const NIX32 = '0123456789abcdfghijklmnpqrsvwxyz'
const hashPart = fc.array(fc.constantFrom(...NIX32), { minLength: 32, maxLength: 32 }).map(cs => cs.join(''))
const name = fc.stringMatching(/^[A-Za-z0-9+._?=-]{1,40}$/)

describe('fuzz: key and store path parsers (fast-check, fixed seed)', function () {
  this.timeout(60_000)

  it('parseSecretKey accepts what Nix writes, explains the rest, and never shows the secret', () => {
    const secretKeys = keyName.map(n => formatSecretKey(generateSecretKey(n)))
    fc.assert(fc.property(mutated(secretKeys), text => {
      const got = acceptsOrExplains(parseSecretKey, text)
      if (got instanceof FormatError) {
        const body = text.slice(text.indexOf(':') + 1)
        if (body.length >= 8) assert.ok(!got.message.includes(body), `the message shows the key: ${got.message}`)
      } else {
        assert.equal(formatSecretKey(got), text.replace(/\n$/, ''))
      }
    }), { seed: SEED, numRuns: 1000 })
  })

  it('parsePublicKey accepts what Nix writes and explains the rest', () => {
    const publicKeys = keyName.map(n => formatPublicKey(publicKeyOf(generateSecretKey(n))))
    fc.assert(fc.property(mutated(publicKeys), text => {
      const got = acceptsOrExplains(parsePublicKey, text)
      if (!(got instanceof FormatError)) assert.equal(formatPublicKey(got), text.replace(/\n$/, ''))
    }), { seed: SEED, numRuns: RUNS })
  })

  it('parseStorePath, parseBaseName and parseHashPart accept only /nix/store/<nix32 hash>-<name>', () => {
    const paths = fc.tuple(hashPart, name).map(([h, n]) => `/nix/store/${h}-${n}`)
    fc.assert(fc.property(mutated(paths), text => {
      const got = acceptsOrExplains(parseStorePath, text)
      if (!(got instanceof FormatError)) {
        assert.equal(got.path, text)
        assert.match(got.hashPart, /^[0-9a-df-np-sv-z]{32}$/)
        assert.ok(!got.name.includes('/') && got.name !== '..' && got.name !== '.')
      }
      const base = acceptsOrExplains(parseBaseName, text.replace(/^\/nix\/store\//, ''))
      if (!(base instanceof FormatError)) assert.equal(`/nix/store/${base.hashPart}-${base.name}`, `/nix/store/${text.replace(/^\/nix\/store\//, '')}`)
      const hash = acceptsOrExplains(parseHashPart, text.slice(11, 43))
      if (!(hash instanceof FormatError)) assert.match(hash, /^[0-9a-df-np-sv-z]{32}$/)
    }), { seed: SEED, numRuns: RUNS })
  })

  it('cuts very long bad input short in its messages', () => {
    const parsers: Array<(text: string) => unknown> = [parseStorePath, parseBaseName, parseHashPart, parsePublicKey, parseSecretKey]
    for (const parse of parsers) {
      const err = acceptsOrExplains(parse, `${'é'.repeat(1_000_000)}:x`)
      assert.ok(err instanceof FormatError)
    }
  })
})
