import assert from 'node:assert/strict'
import { rename, writeFile, mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { NixDb, NixDbError, dbPath } from '../../src/store/db.js'
import { toNarHash } from '../../src/nix/hash.js'
import { FormatError } from '../../src/nix/errors.js'
import { parseStorePath } from '../../src/nix/store-path.js'
import { NixEnv, sampleClosureExpr } from '../helpers/nix.js'
import { nixPathInfo } from './nix-path-info.js'

describe('NixDb: path metadata read-only from Nix\'s SQLite database', function () {
  let nix: NixEnv
  let root: string
  let top: string
  let db: NixDb | undefined

  before(async function () {
    nix = await NixEnv.create()
    root = nix.storeRoot('host')
    ;[top] = await nix.build(root, sampleClosureExpr('db'))
    // Give the paths signatures so the test sees them passed through.
    const key = await nix.generateKey('store-key-1')
    await nix.run('nix', ['store', 'sign', '--store', root, '--key-file', key.secretFile, '-r', top])
  })
  afterEach(() => { db?.close(); db = undefined })
  after(async () => { await nix?.cleanup() })

  it('returns what `nix path-info --json --sigs` reports for every path of a closure', async () => {
    db = NixDb.open(root)
    const expected = await nixPathInfo(nix, root, top)
    assert.equal(expected.length, 3)
    for (const e of expected) {
      const info = db.byHashPart(parseStorePath(e.path).hashPart)
      assert.ok(info !== undefined, e.path)
      assert.deepEqual(info, {
        storePath: e.path,
        narHash: toNarHash(e.narHash),
        narSize: e.narSize,
        references: [...e.references].sort(),
        deriver: e.deriver,
        sigs: e.signatures ?? [],
        ...(e.ca !== undefined ? { ca: e.ca } : {}),
        ultimate: e.ultimate === true,
        registrationTime: e.registrationTime
      })
      assert.equal(info.sigs.length, 1)
    }
    assert.ok(expected.some(e => e.references.length >= 2), 'the closure has references')
  })

  it('finds .drv and content-addressed paths too', async () => {
    const { stdout } = await nix.run('nix-store', ['--store', root, '--add', join(nix.dir, 'store-key-1.pub')])
    const added = stdout.trim()
    const drv = (await nix.run('nix-store', ['--store', root, '-qd', top])).stdout.trim()
    db = NixDb.open(root)
    for (const path of [added, drv]) {
      const [e] = await nixPathInfo(nix, root, path, false)
      const info = db.byHashPart(parseStorePath(path).hashPart)
      assert.equal(info?.storePath, path)
      assert.equal(info.ca, e.ca)
      assert.equal(info.narHash, toNarHash(e.narHash))
    }
  })

  it('is undefined for a hash that is not in the store, even one sorting right next to a path', () => {
    db = NixDb.open(root)
    const { hashPart } = parseStorePath(top)
    const before = hashPart.slice(0, 31) + (hashPart[31] === '0' ? '1' : '0')
    assert.equal(db.byHashPart('00000000000000000000000000000000'), undefined)
    assert.equal(db.byHashPart('zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz'), undefined)
    assert.equal(db.byHashPart(before), undefined)
    assert.ok(db.byHashPart(hashPart) !== undefined)
  })

  it('rejects a malformed hash part with a FormatError naming it', () => {
    db = NixDb.open(root)
    for (const bad of ['', 'short', 'e'.repeat(32), '%'.repeat(32), parseStorePath(top).hashPart + '-']) {
      assert.throws(() => db?.byHashPart(bad), (err: Error) => err instanceof FormatError && err.message.includes(JSON.stringify(bad)))
    }
  })

  it('fails clearly when there is no database under the store root', async () => {
    const empty = join(nix.dir, 'not-a-store')
    await mkdir(empty)
    assert.throws(() => NixDb.open(empty), (err: Error) =>
      err instanceof NixDbError && err.message.includes(dbPath(empty)) && err.message.includes('--store-root'))
  })

  it('fails clearly when the database file is not a Nix database', async () => {
    const fake = join(nix.dir, 'fake-store')
    await mkdir(join(fake, 'nix', 'var', 'nix', 'db'), { recursive: true })
    await writeFile(dbPath(fake), 'this is not sqlite'.repeat(100))
    assert.throws(() => NixDb.open(fake), (err: Error) =>
      err instanceof NixDbError && err.message.includes(dbPath(fake)) && /not a database/.test(err.message))
  })

  it('follows a database replaced by a new file underneath it', async () => {
    const other = nix.storeRoot('other')
    const [otherTop] = await nix.build(other, sampleClosureExpr('db-other'))
    const copyRoot = join(nix.dir, 'copy')
    await mkdir(join(copyRoot, 'nix', 'var', 'nix', 'db'), { recursive: true })
    await nix.run('cp', [dbPath(root), dbPath(copyRoot)])
    db = NixDb.open(copyRoot)
    const { hashPart } = parseStorePath(otherTop)
    assert.equal(db.byHashPart(hashPart), undefined)
    await nix.run('cp', [dbPath(other), `${dbPath(copyRoot)}.new`])
    await rename(`${dbPath(copyRoot)}.new`, dbPath(copyRoot))
    assert.equal(db.byHashPart(hashPart)?.storePath, otherTop)
    assert.equal(db.byHashPart(parseStorePath(top).hashPart), undefined)
  })
})
