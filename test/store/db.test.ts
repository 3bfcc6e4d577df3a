import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { appendFile, rename, writeFile, mkdir } from 'node:fs/promises'
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

describe('NixDb while Nix writes to a database it keeps without a WAL (use-sqlite-wal = false)', function () {
  this.timeout(180_000)
  let nix: NixEnv
  let root: string
  let hashParts: string[]
  let writer: ChildProcess | undefined

  before(async () => {
    nix = await NixEnv.create()
    await appendFile(join(nix.dir, 'conf', 'nix.conf'), 'use-sqlite-wal = false\n')
    root = nix.storeRoot('host')
    const [top] = await nix.build(root, sampleClosureExpr('rollback-journal'))
    hashParts = (await nix.closure(root, top)).map(p => parseStorePath(p).hashPart)
    assert.equal(existsSync(`${dbPath(root)}-wal`), false, 'Nix keeps this database without a WAL')
  })
  afterEach(() => { writer?.kill('SIGKILL'); writer = undefined })
  after(async () => { await nix?.cleanup() })

  it('opens and reads every time, though a commit under way makes the journal look hot to a read-only connection', async () => {
    // Each `nix-store --add` is a write transaction. A read-only connection that meets the
    // journal of one in a certain moment gets SQLITE_READONLY_ROLLBACK ("attempt to write a
    // readonly database") at once, without SQLite's busy wait: 1 % of reads and 5 % of opens
    // failed so (5,428 of 510,000 reads, 59 of 1,080 opens).
    const files = join(nix.dir, 'added')
    await mkdir(files)
    writer = spawn('sh', ['-c', 'i=0; while :; do i=$((i+1)); echo "$i" > "$0/f-$i"; nix-store --store "$1" --add "$0/f-$i" > /dev/null || exit 1; done', files, root], { env: nix.env, stdio: 'ignore' })
    const errors = new Map<string, number>()
    const failed = (err: unknown): void => {
      const message = (err as Error).message.replace(/\/\S+/g, '…')
      errors.set(message, (errors.get(message) ?? 0) + 1)
    }
    let reads = 0
    let opens = 0
    const end = Date.now() + 10_000
    while (Date.now() < end) {
      let db: NixDb
      try {
        db = NixDb.open(root)
        opens++
      } catch (err) {
        failed(err)
        continue
      }
      try {
        for (let i = 0; i < 500; i++) {
          try {
            assert.ok(db.byHashPart(hashParts[i % hashParts.length]) !== undefined)
            reads++
          } catch (err) {
            failed(err)
          }
        }
      } finally {
        db.close()
      }
      await new Promise(resolve => setImmediate(resolve))
    }
    assert.equal(writer.exitCode, null, 'Nix kept writing throughout')
    assert.deepEqual(Object.fromEntries(errors), {}, `${reads} reads and ${opens} opens went well`)
    assert.ok(reads > 5000 && opens > 10, `${reads} reads, ${opens} opens`)
  })
})
