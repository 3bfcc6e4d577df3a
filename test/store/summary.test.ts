/**
 * The store summary over a real chroot store: what each audience of the serving policy may
 * see, paths Nix adds (poll), collects and re-signs (resync), and no view at all when the
 * store cannot be read or the view is too large.
 */
import assert from 'node:assert/strict'
import { copyFile, rename, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { NixEnv } from '../helpers/nix.js'
import { addSyntheticPaths } from '../helpers/large-store.js'
import { NixDb, NixDbError } from '../../src/store/db.js'
import { DEFAULT_SERVE_DENY, ServingPolicy } from '../../src/store/serving-policy.js'
import { StoreSummary, type SummaryChange } from '../../src/store/summary.js'
import { keySetHas, summaryKey } from '../../src/store/summary-keys.js'
import { TrustedKeys } from '../../src/nix/signing.js'
import { parseStorePath } from '../../src/nix/store-path.js'

const TRUSTED_PEER = '12D3KooWGRUVh6F1ThbVBm1cC5YyvW4mEphc3FMWrHVG5pcjmRkE'
const STRANGER = '12D3KooWJWoaqZhDaoEFshF7Rh1bpY9ohihFhzcW6d69Lr2NASuq'

const keyOf = (path: string): number => summaryKey(parseStorePath(path).hashPart)
const mk = (name: string): string => `builtins.derivation { name = "${name}"; builder = "/bin/sh"; args = [ "-c" "echo ${name} > $out" ]; system = builtins.currentSystem; }`

describe('store summary: the hash parts each peer may have, kept current', function () {
  this.timeout(120_000)
  let nix: NixEnv
  let root: string
  let db: NixDb
  let sk: string
  let cachePk: string
  let builtHere: string
  let signed: string
  let denied: string

  before(async () => {
    nix = await NixEnv.create()
    root = nix.storeRoot('host')
    ;[builtHere, signed, denied] = await nix.build(root, `[ (${mk('built-here')}) (${mk('from-cache')}) (${mk('my-secret-thing')}) ]`)
    ;({ secretFile: sk, publicKey: cachePk } = await nix.generateKey('cache.example.org-1'))
    await nix.run('nix', ['store', 'sign', '--store', root, '--key-file', sk, signed, denied])
    db = NixDb.open(root)
  })
  after(async () => { db?.close(); await nix?.cleanup() })

  const policy = (): ServingPolicy => new ServingPolicy({ mode: 'trusted', deny: ['*secret*'], trustedPeers: [TRUSTED_PEER], publicKeys: TrustedKeys.parse(cachePk) })

  function track (summary: StoreSummary): SummaryChange[] {
    const changes: SummaryChange[] = []
    summary.onChange(change => changes.push(change))
    return changes
  }

  it('offers every peer only what the policy serves it: strangers the signed paths, trusted peers also local ones, nobody the denied', async () => {
    const summary = new StoreSummary({ db, policy: policy(), trustedPeers: [TRUSTED_PEER] })
    assert.equal(summary.view(STRANGER), undefined, 'nothing to offer before the first build')
    const changes = track(summary)
    await summary.poll()
    assert.deepEqual(changes.map(c => [c.view, c.version, c.delta]), [['anyone', 1, undefined], ['trusted', 1, undefined]])

    const stranger = summary.view(STRANGER)
    const trusted = summary.view(TRUSTED_PEER)
    assert.ok(stranger !== undefined && trusted !== undefined)
    assert.equal(summary.viewNameOf(STRANGER), 'anyone')
    assert.equal(summary.viewNameOf(TRUSTED_PEER), 'trusted')
    assert.deepEqual([builtHere, signed, denied].map(p => keySetHas(stranger.keys, keyOf(p))), [false, true, false])
    assert.deepEqual([builtHere, signed, denied].map(p => keySetHas(trusted.keys, keyOf(p))), [true, true, false])
    // every valid path of the store that the policy allows, and nothing else (the .drv files are local-only)
    const all = db.rowsAfter(0, 1000)
    const allowed = all.filter(row => policy().decide(db.byHashPart(parseStorePath(row.path).hashPart)!, TRUSTED_PEER).allowed) // eslint-disable-line @typescript-eslint/no-non-null-assertion
    assert.equal(trusted.keys.length, new Set(allowed.map(r => keyOf(r.path))).size)
  })

  it('without a policy or trusted peers, one view of every valid path', async () => {
    const summary = new StoreSummary({ db })
    await summary.poll()
    assert.equal(summary.viewNameOf(TRUSTED_PEER), 'anyone')
    assert.equal(summary.view(STRANGER)?.keys.length, db.rowsAfter(0, 1000).length)
  })

  it('a poll adds what Nix built since, as a delta; a resync drops what was collected and shows re-signed paths', async () => {
    const summary = new StoreSummary({ db, policy: policy(), trustedPeers: [TRUSTED_PEER] })
    await summary.poll()
    const changes = track(summary)
    const before = summary.view(TRUSTED_PEER)!.version // eslint-disable-line @typescript-eslint/no-non-null-assertion

    const [fresh] = await nix.build(root, mk('fresh-after-start'))
    await summary.poll()
    const added = changes.find(c => c.view === 'trusted')
    assert.equal(added?.version, before + 1)
    assert.ok(added?.delta !== undefined && keySetHas(added.delta.added, keyOf(fresh)), 'the new path is in the delta')
    assert.equal(added.delta.removed.length, 0)
    assert.ok(keySetHas(summary.view(TRUSTED_PEER)!.keys, keyOf(fresh))) // eslint-disable-line @typescript-eslint/no-non-null-assertion
    assert.ok(!keySetHas(summary.view(STRANGER)!.keys, keyOf(fresh)), 'built here: not for strangers') // eslint-disable-line @typescript-eslint/no-non-null-assertion
    assert.ok(!changes.some(c => c.view === 'anyone'), 'the stranger\'s view did not change')

    changes.length = 0
    await summary.poll()
    assert.equal(changes.length, 0, 'nothing new, no change')

    // signed now: strangers may have it, but a row's signatures change in place (same id), so only a resync sees it
    await nix.run('nix', ['store', 'sign', '--store', root, '--key-file', sk, fresh])
    await nix.run('nix-store', ['--store', root, '--delete', builtHere])
    await summary.poll()
    assert.equal(changes.length, 0)
    await summary.resync()
    const anyone = changes.find(c => c.view === 'anyone')
    const trusted = changes.find(c => c.view === 'trusted')
    assert.deepEqual(anyone?.delta && [[...anyone.delta.added], [...anyone.delta.removed]], [[keyOf(fresh)], []])
    assert.deepEqual(trusted?.delta && [[...trusted.delta.added], [...trusted.delta.removed]], [[], [keyOf(builtHere)]])
    assert.ok(!keySetHas(summary.view(TRUSTED_PEER)!.keys, keyOf(builtHere))) // eslint-disable-line @typescript-eslint/no-non-null-assertion
  })

  it('start() builds, then polls on its own', async () => {
    const summary = new StoreSummary({ db, policy: policy(), trustedPeers: [TRUSTED_PEER] })
    summary.start(100, 60_000)
    try {
      const deadline = Date.now() + 30_000
      while (summary.view(TRUSTED_PEER) === undefined && Date.now() < deadline) await new Promise(resolve => setTimeout(resolve, 50))
      const [later] = await nix.build(root, mk('later-still'))
      while (!keySetHas(summary.view(TRUSTED_PEER)?.keys ?? new Uint32Array(), keyOf(later)) && Date.now() < deadline) await new Promise(resolve => setTimeout(resolve, 50))
      assert.ok(keySetHas(summary.view(TRUSTED_PEER)!.keys, keyOf(later))) // eslint-disable-line @typescript-eslint/no-non-null-assertion
    } finally {
      summary.stop()
    }
  })

  it('offers no view when it is larger than the bound, or when the store cannot be read', async () => {
    const big = new StoreSummary({ db, maxKeys: 2 })
    await big.poll()
    assert.equal(big.view(STRANGER), undefined)

    let broken = false
    const flaky = {
      rowsAfter: (id: number, limit: number) => { if (broken) throw new Error('disk on fire'); return db.rowsAfter(id, limit) },
      byHashPart: (hashPart: string) => db.byHashPart(hashPart)
    }
    const lines: string[] = []
    const summary = new StoreSummary({ db: flaky, log: { error () {}, warn: (l) => lines.push(l), info () {}, debug () {} } })
    await summary.poll()
    const changes = track(summary)
    broken = true
    await summary.poll()
    assert.equal(summary.view(STRANGER), undefined, 'a summary that may be wrong is not offered')
    assert.deepEqual(changes.map(c => [c.view, c.delta]), [['anyone', undefined]])
    assert.match(lines.join('\n'), /cannot read the store for the summary: disk on fire/)
    broken = false
    await summary.poll()
    assert.ok(summary.view(STRANGER) !== undefined, 'back after the next successful read')
  })

  it('warns about a store it cannot read once a minute, not at every poll (the repeats at debug, counted)', async () => {
    let broken = true
    const flaky = {
      rowsAfter: (id: number, limit: number) => { if (broken) throw new Error('no such database'); return db.rowsAfter(id, limit) },
      byHashPart: (hashPart: string) => db.byHashPart(hashPart)
    }
    const warned: string[] = []
    const debugged: string[] = []
    const summary = new StoreSummary({ db: flaky, log: { error () {}, warn: (l) => warned.push(l), info () {}, debug: (l) => debugged.push(l) } })
    // start() polls every --index-interval (2 s by default): 30 lines a minute before
    for (let i = 0; i < 5; i++) await summary.poll()
    assert.equal(warned.length, 1, warned.join('\n'))
    assert.match(warned[0], /cannot read the store for the summary: no such database/)
    assert.equal(debugged.filter(l => /cannot read the store/.test(l)).length, 4)
    broken = false
    await summary.poll()
    assert.ok(summary.view(STRANGER) !== undefined, 'back after the next successful read')
  })

  it('leaves out a path whose name newer Nix refuses (Nix 2.8 adds ".-x"), and only that path', async () => {
    const file = join(nix.dir, '.-x')
    await writeFile(file, 'odd\n')
    const odd = (await nix.run('nix-store', ['--store', root, '--add', file])).stdout.trim()
    assert.match(odd, /-\.-x$/)
    const lines: string[] = []
    for (const build of ['resync', 'poll'] as const) {
      const summary = new StoreSummary({ db, log: { error () {}, warn: (l) => lines.push(l), info () {}, debug () {} } })
      await summary.poll()
      if (build === 'resync') await summary.resync()
      else { await nix.build(root, mk(`after-odd-${Date.now()}`)); await summary.poll() }
      const view = summary.view(STRANGER)
      assert.ok(view !== undefined, `${build}: the summary is offered`)
      assert.ok(keySetHas(view.keys, keyOf(signed)), `${build}: with the other paths in it`)
    }
    assert.match(lines.join('\n'), /leaving \/nix\/store\/\w{32}-\.-x out of the summary: invalid store path/)
  })
})

describe('store summary: a path the host has is never left out for good', () => {
  let nix: NixEnv
  let root: string
  const trustedOnly = (): ServingPolicy => new ServingPolicy({ mode: 'trusted', deny: [], trustedPeers: [TRUSTED_PEER], publicKeys: new TrustedKeys([]) })
  const add = async (name: string): Promise<string> => {
    const file = join(nix.dir, name)
    await writeFile(file, `${name}\n`)
    return (await nix.run('nix-store', ['--store', root, '--add', file])).stdout.trim()
  }

  beforeEach(async () => {
    nix = await NixEnv.create()
    root = nix.storeRoot('host')
  })
  afterEach(async () => { await nix?.cleanup() })

  it('after the database is restored from a backup, which gives old row ids to new paths', async () => {
    const a = await add('aaa')
    const dbFile = join(root, 'nix/var/nix/db/db.sqlite')
    await copyFile(dbFile, join(nix.dir, 'backup.sqlite'))
    const b = await add('bbb')
    const db = NixDb.open(root)
    try {
      const summary = new StoreSummary({ db, policy: trustedOnly(), trustedPeers: [TRUSTED_PEER] })
      await summary.resync()
      // Restored as a restore does it (a file moved into place), then Nix registers a new path:
      // it gets bbb's old row id, with the same (no) signatures.
      await copyFile(join(nix.dir, 'backup.sqlite'), join(nix.dir, 'restore.tmp'))
      await rename(join(nix.dir, 'restore.tmp'), dbFile)
      const c = await add('ccc')
      assert.equal(db.rowsAfter(0, 10).find(r => r.path === c)?.id, 2, 'the new path took the old row id')
      await summary.resync()
      const view = summary.view(TRUSTED_PEER)
      assert.ok(view !== undefined)
      assert.deepEqual([a, b, c].map(p => keySetHas(view.keys, keyOf(p))), [true, false, true])
    } finally {
      db.close()
    }
  })

  it('after a database read failed once while deciding a path', async () => {
    await add('aaa')
    const real = NixDb.open(root)
    try {
      let failNext = false
      const db = {
        rowsAfter: (id: number, limit: number) => real.rowsAfter(id, limit),
        byHashPart: (hashPart: string) => {
          if (failNext) { failNext = false; throw new NixDbError('reading Nix database failed: database is locked') }
          return real.byHashPart(hashPart)
        }
      }
      const summary = new StoreSummary({ db, policy: trustedOnly(), trustedPeers: [TRUSTED_PEER] })
      await summary.resync()
      const b = await add('bbb')
      failNext = true
      await summary.poll()
      assert.equal(summary.view(TRUSTED_PEER), undefined, 'a summary that may be wrong is not offered')
      await summary.poll()
      assert.ok(keySetHas(summary.view(TRUSTED_PEER)?.keys ?? new Uint32Array(), keyOf(b)), 'the next pass has it')
    } finally {
      real.close()
    }
  })
})

/** Counts the event loop's turns while it runs, and the longest time it went without one. */
function watchEventLoop (): { stop: () => { turns: number, longestMs: number } } {
  let last = performance.now()
  let turns = 0
  let longestMs = 0
  const timer = setInterval(() => {
    const now = performance.now()
    longestMs = Math.max(longestMs, now - last)
    last = now
    turns++
  }, 1)
  return {
    stop: () => {
      clearInterval(timer)
      return { turns, longestMs: Math.max(longestMs, performance.now() - last) }
    }
  }
}

describe('store summary of a large store', function () {
  this.timeout(300_000)
  const ROWS = 60_000
  let nix: NixEnv
  let root: string
  let db: NixDb

  before(async () => {
    nix = await NixEnv.create()
    root = await nix.initStore('large')
    addSyntheticPaths(root, ROWS)
    db = NixDb.open(root)
  })
  after(async () => { db?.close(); await nix?.cleanup() })

  // `--serve all`: every path is decided without a signature check, the cheapest a pass gets.
  const serveAll = (): ServingPolicy => new ServingPolicy({ mode: 'all', deny: DEFAULT_SERVE_DENY, trustedPeers: [], publicKeys: new TrustedKeys([]) })

  it('lets the event loop turn while a resync reads every row, the first and the periodic ones', async () => {
    // A periodic resync (every --index-resync) re-decides nothing, and read the whole table
    // in one piece of the event loop: 175-200 ms for 100,000 paths on a 2-core VM, during
    // which the daemon answered neither Nix nor peers.
    const summary = new StoreSummary({ db, policy: serveAll() })
    for (const pass of ['first', 'periodic', 'periodic again']) {
      const loop = watchEventLoop()
      await summary.resync()
      const { turns, longestMs } = loop.stop()
      assert.ok(turns >= 3, `${pass} resync: the event loop turned ${turns} times while it read ${ROWS} rows`)
      assert.ok(longestMs < 250, `${pass} resync: held the event loop for ${longestMs.toFixed(0)} ms in one piece`)
    }
    assert.ok((summary.view(STRANGER)?.keys.length ?? 0) > ROWS * 0.99, 'every path is in the summary')
  })

  it('lets the event loop turn while it summarises a store without a serving policy', async () => {
    const summary = new StoreSummary({ db })
    const loop = watchEventLoop()
    await summary.poll()
    const { turns } = loop.stop()
    assert.ok(turns >= 3, `the event loop turned ${turns} times while the summary read ${ROWS} rows`)
  })

  it('is abandoned by close(): a pass under way stops at its next turn, and the database is closed only then', async () => {
    let closedDb = false
    let reads = 0
    const counted = {
      rowsAfter: (id: number, limit: number) => { assert.ok(!closedDb, 'no read after the database was closed'); reads++; return db.rowsAfter(id, limit) },
      byHashPart: (hashPart: string) => { assert.ok(!closedDb, 'no read after the database was closed'); return db.byHashPart(hashPart) }
    }
    // a store whose paths are all checked against a key: the first pass takes seconds here
    const policy = new ServingPolicy({ mode: 'trusted', deny: [], trustedPeers: [], publicKeys: TrustedKeys.parse('cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=') })
    const summary = new StoreSummary({ db: counted, policy, closeDb: () => { closedDb = true } })
    const started = performance.now()
    const building = summary.poll()
    await new Promise(resolve => setTimeout(resolve, 100))
    await summary.close()
    const closedAfter = performance.now() - started
    await building
    assert.equal(summary.view(STRANGER), undefined, 'no summary was made')
    assert.ok(closedDb)
    assert.ok(reads < ROWS / 5000, `it stopped reading after ${reads} pages`)
    assert.ok(closedAfter < 2000, `close() took ${closedAfter.toFixed(0)} ms`)
  })
})
