/** The signing key a daemon generates in its state directory on first start. */
import assert from 'node:assert/strict'
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { GENERATED_KEY_FILE, loadSigningKey, publicCacheKeys } from '../../src/daemon/keys.js'
import { formatPublicKey, generateSecretKey, parsePublicKey, publicKeyOf } from '../../src/nix/signing.js'
import { silentLogger } from '../../src/log.js'

describe('generated signing key', () => {
  let dir: string
  beforeEach(async () => { dir = await mkdtemp(join(tmpdir(), 'peerix-keys-')) })
  afterEach(async () => { await rm(dir, { recursive: true, force: true }) })

  it('is created once, private to its owner, with its public key beside it, and kept', async () => {
    const key = await loadSigningKey(undefined, dir, silentLogger)
    assert.equal((await stat(join(dir, GENERATED_KEY_FILE))).mode & 0o777, 0o600)
    assert.equal(await readFile(join(dir, `${GENERATED_KEY_FILE}.pub`), 'utf8'), formatPublicKey(publicKeyOf(key)))
    assert.deepEqual((await loadSigningKey(undefined, dir, silentLogger)).seed, key.seed)
  })

  it('is one key when two starts race on an empty state directory', async () => {
    const keys = await Promise.all([1, 2, 3].map(async () => await loadSigningKey(undefined, dir, silentLogger)))
    assert.equal(new Set(keys.map(k => formatPublicKey(publicKeyOf(k)))).size, 1)
    assert.deepEqual((await readdir(dir)).sort(), [GENERATED_KEY_FILE, `${GENERATED_KEY_FILE}.pub`], 'no temporary file left behind')
  })
})

describe('public cache keys', () => {
  it('leave out this host\'s own key, and say so', () => {
    const own = publicKeyOf(generateSecretKey('host-a-1'))
    const cache = formatPublicKey(publicKeyOf(generateSecretKey('cache.example.org-1')))
    assert.deepEqual(publicCacheKeys([cache], own), { keys: [parsePublicKey(cache)], ignored: false })
    const withOwn = publicCacheKeys([cache, formatPublicKey(own)], own)
    assert.deepEqual(withOwn.keys.map(k => k.name), ['cache.example.org-1'])
    assert.equal(withOwn.ignored, true)
  })
})
