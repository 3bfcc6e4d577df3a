import assert from 'node:assert/strict'
import { FormatError } from '../../src/nix/errors.js'
import { HASH_PART_LENGTH, isHashPart, MAX_NAME_LENGTH, parseBaseName, parseHashPart, parseStorePath, STORE_DIR } from '../../src/nix/store-path.js'
import { NixEnv } from '../helpers/nix.js'

const HASH = '0c2kb6ijfgai2k5jm0l3vg4m0qgwf6mk'

function throwsFormat (fn: () => unknown, message: string): void {
  assert.throws(fn, (err: Error) => {
    assert.ok(err instanceof FormatError, `expected a FormatError, got ${String(err)}`)
    assert.equal(err.message, message)
    return true
  })
}

describe('store paths', () => {
  it('splits a store path into hash part and name', () => {
    assert.equal(STORE_DIR, '/nix/store')
    assert.equal(HASH_PART_LENGTH, 32)
    assert.deepEqual(parseStorePath(`/nix/store/${HASH}-hello-2.12.1`), { path: `/nix/store/${HASH}-hello-2.12.1`, hashPart: HASH, name: 'hello-2.12.1' })
    assert.deepEqual(parseBaseName(`${HASH}-hello-2.12.1.drv`), { path: `/nix/store/${HASH}-hello-2.12.1.drv`, hashPart: HASH, name: 'hello-2.12.1.drv' })
  })

  it('accepts every character Nix allows in a name, names starting with a dot, and 211 characters', () => {
    for (const name of ['A-Za-z0-9+-._?=', 'a+b=c?d_e.f', '.foo', '...', '..foo', '-', 'x'.repeat(MAX_NAME_LENGTH)]) {
      assert.equal(parseStorePath(`/nix/store/${HASH}-${name}`).name, name)
    }
  })

  it('rejects invalid names, naming the path and the problem', () => {
    const cases: Array<[string, string]> = [
      ['', 'the name is empty'],
      ['x'.repeat(212), 'the name is 212 characters, longer than 211'],
      ['a b', 'the name contains the illegal character " " (allowed: A-Z a-z 0-9 + - . _ ? =)'],
      ['a~b', 'the name contains the illegal character "~" (allowed: A-Z a-z 0-9 + - . _ ? =)'],
      ['caf\u00e9', 'the name contains the illegal character "é" (allowed: A-Z a-z 0-9 + - . _ ? =)'],
      ['a\nb', 'the name contains the illegal character "\\n" (allowed: A-Z a-z 0-9 + - . _ ? =)'],
      ['a:b', 'the name contains the illegal character ":" (allowed: A-Z a-z 0-9 + - . _ ? =)'],
      ['.', 'the name must not be "." or ".." or start with "." or ".." followed by "-"'],
      ['..', 'the name must not be "." or ".." or start with "." or ".." followed by "-"'],
      ['.-x', 'the name must not be "." or ".." or start with "." or ".." followed by "-"'],
      ['..-x', 'the name must not be "." or ".." or start with "." or ".." followed by "-"']
    ]
    for (const [name, problem] of cases) {
      const path = `/nix/store/${HASH}-${name}`
      const shown = path.length > 300 ? `${path.slice(0, 300)}…` : path
      throwsFormat(() => parseStorePath(path), `invalid store path ${JSON.stringify(shown)}: ${problem}`)
      throwsFormat(() => parseBaseName(`${HASH}-${name}`), `invalid store path base name ${JSON.stringify(`${HASH}-${name}`)}: ${problem}`)
    }
    throwsFormat(() => parseBaseName(`/nix/store/${HASH}-x`), `invalid store path base name "/nix/store/${HASH}-x": expected <hash>-<name> without a directory`)
  })

  it('rejects a bad hash part, a missing dash, other directories and files inside a store path', () => {
    const cases: Array<[string, string]> = [
      [`/nix/store/${HASH.slice(0, 31)}e-x`, 'the hash contains "e", which is not a nix32 character (0-9, a-z without e, o, t, u)'],
      [`/nix/store/${HASH.slice(0, 31)}T-x`, 'the hash contains "T", which is not a nix32 character (0-9, a-z without e, o, t, u)'],
      [`/nix/store/${HASH}_x`, 'expected "-" after the 32-character hash, found "_"'],
      [`/nix/store/${HASH.slice(1)}-x`, 'expected "-" after the 32-character hash, found "x"'],
      [`/nix/store/${HASH}`, 'too short for <32-character hash>-<name>'],
      ['/nix/store/', 'too short for <32-character hash>-<name>'],
      [`/nix/store/${HASH}-${'x'.repeat(300)}`, 'the name is 300 characters, longer than 211'],
      [`/gnu/store/${HASH}-x`, 'not in /nix/store'],
      [`nix/store/${HASH}-x`, 'not in /nix/store'],
      [`${HASH}-x`, 'not in /nix/store'],
      [`/nix/store/${HASH}-x/bin/sh`, 'names something inside a store path, not the store path itself'],
      [`/nix/store//${HASH}-x`, 'names something inside a store path, not the store path itself']
    ]
    for (const [path, problem] of cases) {
      const shown = path.length > 300 ? `${path.slice(0, 300)}…` : path
      throwsFormat(() => parseStorePath(path), `invalid store path ${JSON.stringify(shown)}: ${problem}`)
    }
  })

  it('reads a hash part on its own', () => {
    assert.equal(parseHashPart(HASH), HASH)
    assert.ok(isHashPart(HASH))
    for (const [text, problem] of [
      ['', 'the hash is 0 characters, expected 32'],
      [HASH + '0', 'the hash is 33 characters, expected 32'],
      [HASH.slice(0, 31) + 'o', 'the hash contains "o", which is not a nix32 character (0-9, a-z without e, o, t, u)'],
      [HASH.slice(0, 31) + 'u', 'the hash contains "u", which is not a nix32 character (0-9, a-z without e, o, t, u)'],
      [HASH.slice(0, 31) + 't', 'the hash contains "t", which is not a nix32 character (0-9, a-z without e, o, t, u)'],
      [HASH.toUpperCase(), 'the hash contains "C", which is not a nix32 character (0-9, a-z without e, o, t, u)'],
      [HASH.slice(0, 31) + '.', 'the hash contains ".", which is not a nix32 character (0-9, a-z without e, o, t, u)']
    ]) {
      assert.equal(isHashPart(text), false)
      throwsFormat(() => parseHashPart(text), `invalid store path hash ${JSON.stringify(text)}: ${problem}`)
    }
  })

  describe('against real Nix', function () {
    this.timeout(60_000)
    let nix: NixEnv
    before(async () => { nix = await NixEnv.create() })
    after(async () => { await nix?.cleanup() })

    /** Asks Nix to make a store path with this name; returns the path or undefined if Nix refuses. */
    async function nixMakes (name: string): Promise<string | undefined> {
      const expr = `builtins.toFile ${JSON.stringify(name).replaceAll('$', '\\$')} "x"`
      try {
        const { stdout } = await nix.run('nix', ['eval', '--store', nix.storeRoot('store'), '--raw', '--expr', expr])
        return stdout
      } catch (err) {
        assert.match((err as Error).message, /store path .* (contains illegal character|has an empty name|has a name longer than 211)/)
        return undefined
      }
    }

    it('accepts exactly the names Nix accepts, and parses the paths Nix prints', async () => {
      // Nix ≥ 2.20 also refuses ".", ".." and those followed by "-"; 2.8 here does not, so they
      // are checked above rather than against this Nix.
      const names = ['hello-1.0', 'A-Za-z0-9+-._?=', '.foo', '-', 'x'.repeat(211), 'x'.repeat(212), '', 'a b', 'a~b', 'a:b', 'caf\u00e9', 'a$b', 'a"b', 'a/b']
      for (const name of names) {
        const made = await nixMakes(name)
        const ours = (() => { try { return parseBaseName(`${HASH}-${name}`) } catch { return undefined } })()
        assert.equal(made !== undefined, ours !== undefined, `Nix ${made !== undefined ? 'accepts' : 'refuses'} ${JSON.stringify(name)}`)
        if (made !== undefined) {
          const parsed = parseStorePath(made)
          assert.equal(parsed.path, made)
          assert.equal(parsed.name, name)
          assert.ok(isHashPart(parsed.hashPart))
        }
      }
    })
  })
})
