import assert from 'node:assert/strict'
import { NixEnv } from '../helpers/nix.js'
import { NixDb } from '../../src/store/db.js'
import { DEFAULT_SERVE_DENY, ServingPolicy } from '../../src/store/serving-policy.js'
import { globToRegExp } from '../../src/store/glob.js'
import { TrustedKeys } from '../../src/nix/signing.js'
import { parseStorePath } from '../../src/nix/store-path.js'
import type { PathInfo } from '../../src/store/path-info.js'

const TRUSTED_PEER = '12D3KooWGRUVh6F1ThbVBm1cC5YyvW4mEphc3FMWrHVG5pcjmRkE'
const STRANGER = '12D3KooWJWoaqZhDaoEFshF7Rh1bpY9ohihFhzcW6d69Lr2NASuq'

describe('serving policy: what a peer may have', () => {
  let nix: NixEnv
  let db: NixDb
  let localOnly: PathInfo
  let fromCache: PathInfo
  let secretConfig: PathInfo
  let cachePk: string

  before(async () => {
    nix = await NixEnv.create()
    const root = nix.storeRoot('host')
    const [local, cached, config] = await nix.build(root, `
      let mk = name: builtins.derivation { inherit name; builder = "/bin/sh"; args = [ "-c" "echo \${name} > $out" ]; system = builtins.currentSystem; };
      in [ (mk "built-here") (mk "hello-2.12") (mk "etc") ]`)
    // "hello" plays a path substituted from a binary cache: signed by that cache's key.
    const cacheKey = await nix.generateKey('cache.example.org-1')
    cachePk = cacheKey.publicKey
    await nix.run('nix', ['store', 'sign', '--store', root, '--key-file', cacheKey.secretFile, cached, config])
    db = NixDb.open(root)
    const info = (p: string): PathInfo => db.byHashPart(parseStorePath(p).hashPart) as PathInfo
    localOnly = info(local); fromCache = info(cached); secretConfig = info(config)
  })
  after(async () => { db?.close(); await nix?.cleanup() })

  const policy = (opts: Partial<ConstructorParameters<typeof ServingPolicy>[0]> = {}): ServingPolicy => new ServingPolicy({
    mode: 'trusted', deny: DEFAULT_SERVE_DENY, trustedPeers: [TRUSTED_PEER], publicKeys: TrustedKeys.parse(cachePk), ...opts
  })

  it('serves a path signed by a trusted foreign key to anyone', () => {
    assert.deepEqual(policy().decide(fromCache, STRANGER), { allowed: true })
  })

  it('serves a path only this host has to trusted peers only, saying why to others', () => {
    assert.deepEqual(policy().decide(localOnly, TRUSTED_PEER), { allowed: true })
    const d = policy().decide(localOnly, STRANGER)
    assert.equal(d.allowed, false)
    assert.match((d as { reason: string }).reason, /only this host has it/)
  })

  it('does not count a signature by a key it does not trust as public', () => {
    const d = policy({ publicKeys: TrustedKeys.parse('') }).decide(fromCache, STRANGER)
    assert.equal(d.allowed, false)
  })

  it('--serve all opts in to serving everything not denied', () => {
    assert.deepEqual(policy({ mode: 'all' }).decide(localOnly, STRANGER), { allowed: true })
  })

  it('the deny list wins over signatures, trusted peers and --serve all', () => {
    for (const p of [policy(), policy({ mode: 'all' })]) {
      for (const peer of [STRANGER, TRUSTED_PEER]) {
        const d = p.decide(secretConfig, peer)
        assert.equal(d.allowed, false)
        assert.match((d as { reason: string }).reason, /--serve-deny etc/)
      }
    }
  })

  it('denies the derivation of a denied name too (its environment holds the same secrets)', async () => {
    const drvPath = (await nix.run('nix-store', ['--store', nix.storeRoot('host'), '-qd', secretConfig.storePath])).stdout.trim()
    assert.match(drvPath, /-etc\.drv$/)
    const drv = db.byHashPart(parseStorePath(drvPath).hashPart) as PathInfo
    for (const p of [policy(), policy({ mode: 'all' })]) {
      for (const peer of [STRANGER, TRUSTED_PEER]) assert.match((p.decide(drv, peer) as { reason: string }).reason, /--serve-deny etc$/)
    }
    const localDrv = (await nix.run('nix-store', ['--store', nix.storeRoot('host'), '-qd', localOnly.storePath])).stdout.trim()
    assert.deepEqual(policy({ mode: 'all' }).decide(db.byHashPart(parseStorePath(localDrv).hashPart) as PathInfo, STRANGER), { allowed: true }, 'other derivations are served as before')
  })

  it('matches shell globs against whole store names, whatever their case', () => {
    assert.ok(globToRegExp('*secret*').test('MySecret-token'))
    assert.ok(globToRegExp('*.key').test('host.KEY'))
    assert.ok(globToRegExp('nixos-system-*').test('nixos-system-laptop-24.05'))
    assert.ok(!globToRegExp('etc').test('etc-hosts'))
    assert.ok(globToRegExp('etc-*').test('etc-hosts'))
    assert.ok(globToRegExp('wpa_supplicant*').test('wpa_supplicant.conf'))
    assert.ok(globToRegExp('file?.[ch]').test('file1.c'))
    assert.ok(!globToRegExp('file?.[!ch]').test('file1.c'))
    assert.ok(globToRegExp('a.b').test('a.b') && !globToRegExp('a.b').test('axb'))
    assert.throws(() => globToRegExp('bad[glob'), /'\[' without a closing '\]'/)
    assert.throws(() => globToRegExp(''), /invalid glob ""/)
  })
})
