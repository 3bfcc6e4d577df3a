import assert from 'node:assert/strict'
import Database from 'better-sqlite3'
import { execFile } from 'node:child_process'
import { createHash } from 'node:crypto'
import { createWriteStream } from 'node:fs'
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { LocalStore } from '../../src/store/local-store.js'
import { NixDbError } from '../../src/store/db.js'
import { formatNarUrl } from '../../src/store/nar-url.js'
import type { NarBytes, Served } from '../../src/store/source.js'
import { toNarHash } from '../../src/nix/hash.js'
import { formatNarInfo, type NarInfo } from '../../src/nix/narinfo.js'
import { fingerprint, parseSecretKey, TrustedKeys } from '../../src/nix/signing.js'
import { parseStorePath, STORE_DIR } from '../../src/nix/store-path.js'
import { ServingPolicy } from '../../src/store/serving-policy.js'
import { NixEnv, sampleClosureExpr } from '../helpers/nix.js'
import { nixPathInfo, type NixPathInfoJson } from './nix-path-info.js'

const base = (path: string): string => path.slice(STORE_DIR.length + 1)

function found<T> (answer: Served<T>): T {
  assert.equal(answer.status, 'found')
  return (answer as { value: T }).value
}

async function collect (bytes: NarBytes): Promise<Buffer> {
  const chunks: Uint8Array[] = []
  for await (const chunk of bytes.stream) chunks.push(chunk)
  return Buffer.concat(chunks)
}

/** `nix-store --dump` of a path on disk, as raw bytes. */
async function nixDump (nix: NixEnv, fsPath: string): Promise<Buffer> {
  return await new Promise((resolve, reject) => {
    execFile('nix-store', ['--dump', fsPath], { env: nix.env, encoding: 'buffer', maxBuffer: 256 * 1024 * 1024 }, (err, stdout) => {
      if (err != null) reject(err)
      else resolve(stdout)
    })
  })
}

describe('LocalStore: the narinfos and NARs this host serves, checked against real Nix', function () {
  let nix: NixEnv
  let root: string
  let top: string
  let expected: NixPathInfoJson[]
  let publicKey: string
  /** The key the store's paths are signed with, as by a cache. */
  let storePublicKey: string
  let store: LocalStore

  before(async function () {
    nix = await NixEnv.create()
    root = nix.storeRoot('host')
    ;[top] = await nix.build(root, sampleClosureExpr('local-store'))
    // The store's own signature (as from a cache), to be passed through beside ours.
    const storeKey = await nix.generateKey('store-key-1')
    storePublicKey = storeKey.publicKey
    await nix.run('nix', ['store', 'sign', '--store', root, '--key-file', storeKey.secretFile, '-r', top])
    const peerixKey = await nix.generateKey('peerix-test-1')
    publicKey = peerixKey.publicKey
    expected = await nixPathInfo(nix, root, top)
    store = LocalStore.open({ storeRoot: root, signingKey: parseSecretKey(await readFile(peerixKey.secretFile, 'utf8')) })
  })
  after(async () => {
    store?.close()
    await nix?.cleanup()
  })

  it('serves for every path of a closure the narinfo `nix path-info` describes, signed by us', async () => {
    assert.equal(expected.length, 3)
    const trusted = TrustedKeys.parse(publicKey)
    for (const e of expected) {
      const { hashPart } = parseStorePath(e.path)
      const narInfo = found(await store.narInfo(hashPart, 'some-peer'))
      const narHash = toNarHash(e.narHash)
      const storeSigs = e.signatures ?? []
      assert.equal(storeSigs.length, 1)
      assert.deepEqual({ ...narInfo, sigs: narInfo.sigs.slice(0, -1) }, {
        storePath: e.path,
        url: formatNarUrl(hashPart, narHash),
        compression: 'none',
        narHash,
        narSize: e.narSize,
        references: e.references.map(base).sort(),
        deriver: e.deriver === undefined ? undefined : base(e.deriver),
        sigs: storeSigs
      })
      const ours = narInfo.sigs[narInfo.sigs.length - 1]
      assert.match(ours, /^peerix-test-1:/)
      assert.equal(trusted.verify(fingerprint(e.path, narHash, e.narSize, [...e.references].sort()), [ours]), 'peerix-test-1')
      assert.equal(store.info(hashPart)?.storePath, e.path)
    }
  })

  it('leaves out a stored signature Nix could not check (Nix would fail the path for it)', async () => {
    const e = expected[0]
    const db = new Database(join(root, 'nix/var/nix/db/db.sqlite'))
    const before = (db.prepare('select sigs from ValidPaths where path = ?').get(e.path) as { sigs: string }).sigs
    try {
      db.prepare('update ValidPaths set sigs = ? where path = ?').run(`${before} cache.nixos.org-1:AAAA`, e.path)
      const unsigned = LocalStore.open({ storeRoot: root })
      try {
        assert.deepEqual(found(await unsigned.narInfo(parseStorePath(e.path).hashPart, 'some-peer')).sigs, e.signatures)
      } finally {
        unsigned.close()
      }
    } finally {
      db.prepare('update ValidPaths set sigs = ? where path = ?').run(before, e.path)
      db.close()
    }
  })

  it('passes the store\'s signatures through unchanged when it has no signing key', async () => {
    const unsigned = LocalStore.open({ storeRoot: root })
    try {
      const e = expected[0]
      const narInfo = found(await unsigned.narInfo(parseStorePath(e.path).hashPart, 'p'))
      assert.deepEqual(narInfo.sigs, e.signatures)
    } finally {
      unsigned.close()
    }
  })

  it('asks the serving policy, and answers refused with its reason for narinfo and NAR alike', async () => {
    const storeKey = TrustedKeys.parse(storePublicKey)
    const open = (publicKeys: TrustedKeys, trustedPeers: string[]): LocalStore =>
      LocalStore.open({ storeRoot: root, policy: new ServingPolicy({ mode: 'trusted', deny: [], trustedPeers, publicKeys }) })
    const e = expected[0]
    const { hashPart } = parseStorePath(e.path)
    const narHash = toNarHash(e.narHash)
    const signedByTrustedKey = open(storeKey, [])
    const builtHereOnly = open(new TrustedKeys([]), ['friend'])
    try {
      found(await signedByTrustedKey.narInfo(hashPart, 'stranger'))
      found(await signedByTrustedKey.nar(hashPart, narHash, 0, 'stranger'))
      found(await builtHereOnly.narInfo(hashPart, 'friend'))
      // Every offset alike, past the end too: a refused peer that knows the NarHash does not
      // learn the NarSize by trying offsets until the answer turns from refused to absent.
      const refusedNars = await Promise.all([0, e.narSize, e.narSize + 1].map(async offset => await builtHereOnly.nar(hashPart, narHash, offset, 'stranger')))
      for (const answer of [await builtHereOnly.narInfo(hashPart, 'stranger'), await builtHereOnly.narInfo(hashPart, 'stranger', { narUpTo: 1 << 20 }), ...refusedNars]) {
        assert.equal(answer.status, 'refused')
        assert.match((answer as { reason: string }).reason, /trusted-peer/)
      }
      assert.deepEqual(await builtHereOnly.narInfo('00000000000000000000000000000000', 'stranger'), { status: 'absent' })
    } finally {
      signedByTrustedKey.close()
      builtHereOnly.close()
    }
  })

  it('is absent for an unknown hash, and for a path whose files are gone from disk', async () => {
    assert.deepEqual(await store.narInfo('00000000000000000000000000000000', 'p'), { status: 'absent' })
    const file = join(nix.dir, 'doomed')
    await writeFile(file, 'soon gone\n')
    const added = (await nix.run('nix-store', ['--store', root, '--add', file])).stdout.trim()
    const { hashPart } = parseStorePath(added)
    const narInfo = found(await store.narInfo(hashPart, 'p'))
    await rm(join(root, added))
    assert.deepEqual(await store.narInfo(hashPart, 'p'), { status: 'absent' })
    assert.deepEqual(await store.nar(hashPart, narInfo.narHash, 0, 'p'), { status: 'absent' })
  })

  it('fails to open with a clear error when the store root has no Nix database', () => {
    assert.throws(() => LocalStore.open({ storeRoot: join(nix.dir, 'nowhere') }), (err: Error) =>
      err instanceof NixDbError && err.message.includes(join(nix.dir, 'nowhere', 'nix/var/nix/db/db.sqlite')))
  })

  it('streams NARs equal to `nix-store --dump`, from any offset', async () => {
    for (const e of expected) {
      const { hashPart } = parseStorePath(e.path)
      const narHash = toNarHash(e.narHash)
      const dump = await nixDump(nix, join(root, e.path))
      const whole = found(await store.nar(hashPart, narHash, 0, 'p'))
      assert.equal(whole.length, e.narSize)
      assert.ok((await collect(whole)).equals(dump), `NAR of ${e.path}`)
      for (const offset of [1, 8, Math.floor(e.narSize / 2), e.narSize - 1, e.narSize]) {
        const rest = found(await store.nar(hashPart, narHash, offset, 'p'))
        assert.equal(rest.length, e.narSize - offset)
        assert.ok((await collect(rest)).equals(dump.subarray(offset)), `NAR of ${e.path} from ${offset}`)
      }
    }
  })

  it('hands out the NAR with the narinfo when asked and no larger than asked, equal to `nix-store --dump`', async () => {
    for (const e of expected) {
      const { hashPart } = parseStorePath(e.path)
      const dump = await nixDump(nix, join(root, e.path))
      const withNar = await store.narInfo(hashPart, 'p', { narUpTo: e.narSize })
      assert.equal(found(withNar).narHash, toNarHash(e.narHash))
      const nar = (withNar as { nar?: NarBytes }).nar
      assert.ok(nar !== undefined, `no NAR with the narinfo of ${e.path}`)
      assert.equal(nar.length, e.narSize)
      assert.ok((await collect(nar)).equals(dump), `NAR of ${e.path}`)
      assert.equal((await store.narInfo(hashPart, 'p', { narUpTo: e.narSize - 1 }) as { nar?: NarBytes }).nar, undefined, 'larger than asked')
      assert.equal((await store.narInfo(hashPart, 'p') as { nar?: NarBytes }).nar, undefined, 'not asked')
    }
  })

  it('is absent for a stale NarHash or an offset past the end, and rejects a malformed request', async () => {
    const e = expected[0]
    const { hashPart } = parseStorePath(e.path)
    const stale = toNarHash(expected[1].narHash)
    assert.deepEqual(await store.nar(hashPart, stale, 0, 'p'), { status: 'absent' })
    assert.deepEqual(await store.nar(hashPart, toNarHash(e.narHash), e.narSize + 1, 'p'), { status: 'absent' })
    await assert.rejects(store.nar(hashPart, 'sha256:nonsense', 0, 'p'), /nonsense/)
    await assert.rejects(store.nar(hashPart, toNarHash(e.narHash), -1, 'p'), /offset -1/)
    await assert.rejects(store.narInfo('not-a-hash', 'p'), /not-a-hash/)
  })

  it('fails a NAR whose path Nix collected and rebuilt while it was read, rather than end it as if whole', async () => {
    // A build whose output differs every time, in files of the same sizes: a rebuild between
    // two reads of one NAR gives a NAR of the announced length with bytes from both builds.
    const expr = `builtins.derivation { name = "rebuilt-under-us"; builder = "/bin/sh"; system = builtins.currentSystem; PATH = "/bin:/usr/bin";
      args = [ "-c" "mkdir $out; head -c 1048576 /dev/urandom > $out/f0; head -c 1048576 /dev/urandom > $out/f1" ]; }`
    const [path] = await nix.build(root, expr)
    const { hashPart } = parseStorePath(path)
    const narHash = found(await store.narInfo(hashPart, 'p')).narHash
    const nar = found(await store.nar(hashPart, narHash, 0, 'p'))
    const chunks: Uint8Array[] = []
    const reading = nar.stream[Symbol.asyncIterator]()
    const first = await reading.next()
    assert.equal(first.done, false)
    chunks.push(first.value as Uint8Array)

    await nix.run('nix-store', ['--store', root, '--delete', path])
    assert.deepEqual(await nix.build(root, expr), [path])
    const rebuilt = found(await store.narInfo(hashPart, 'p')).narHash
    assert.notEqual(rebuilt, narHash, 'the rebuild made other bytes')

    const failed = await (async () => { for (let r = await reading.next(); r.done !== true; r = await reading.next()) chunks.push(r.value) })().then(() => undefined, (err: Error) => err)
    const read = Buffer.concat(chunks)
    const readHash = toNarHash(`sha256:${createHash('sha256').update(read).digest('hex')}`)
    assert.ok(failed !== undefined, `a NAR of ${read.length} bytes (NarSize ${nar.length}) hashing to ${readHash}, not ${narHash}, was ended as if whole`)
    assert.match(failed.message, /collected or rebuilt while its NAR was read/)
    assert.ok(read.length < nar.length, 'its last bytes were held back')
  })

  describe('written out as a file:// binary cache from peerix\'s own output', function () {
    let cache: string

    before(async function () {
      cache = join(nix.dir, 'cache')
      await mkdir(cache)
      await writeFile(join(cache, 'nix-cache-info'), 'StoreDir: /nix/store\n')
      for (const e of expected) {
        const { hashPart } = parseStorePath(e.path)
        const narInfo: NarInfo = found(await store.narInfo(hashPart, 'p'))
        await writeFile(join(cache, `${hashPart}.narinfo`), formatNarInfo(narInfo))
        const narFile = join(cache, narInfo.url)
        await mkdir(dirname(narFile), { recursive: true })
        const bytes = found(await store.nar(hashPart, narInfo.narHash, 0, 'p'))
        await pipeline(Readable.from(bytes.stream), createWriteStream(narFile))
      }
    })

    const realise = async (storeName: string, trustedKeys: string): Promise<void> => {
      await nix.run('nix-store', ['--store', nix.storeRoot(storeName), '--realise', top,
        '--option', 'substituters', `file://${cache}`, '--option', 'trusted-public-keys', trustedKeys])
    }

    it('is fetched by the real `nix-store --realise` trusting the peerix key', async () => {
      await realise('fetched', publicKey)
      const got = await nixPathInfo(nix, nix.storeRoot('fetched'), top)
      const strip = (infos: NixPathInfoJson[]): unknown[] => infos
        .map(({ path, narHash, narSize, references, deriver, ca }) => ({ path, narHash, narSize, references: [...references].sort(), deriver, ca }))
        .sort((a, b) => a.path.localeCompare(b.path))
      assert.deepEqual(strip(got), strip(expected))
      for (const info of got) assert.ok(info.signatures?.some(s => s.startsWith('peerix-test-1:')), `${info.path} keeps our signature`)
    })

    it('is refused by Nix trusting another key', async () => {
      const otherKey = (await nix.generateKey('other-key-1')).publicKey
      await assert.rejects(realise('refused', otherKey), /is not signed by any of the keys in 'trusted-public-keys'/)
    })
  })
})
