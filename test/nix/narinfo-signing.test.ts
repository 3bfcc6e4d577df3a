import assert from 'node:assert/strict'
import { readdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { formatNarInfo, parseNarInfo, type NarInfo } from '../../src/nix/narinfo.js'
import { narInfoFingerprint, signNarInfo, verifyNarInfo } from '../../src/nix/narinfo-signing.js'
import { generateSecretKey, parseSecretKey, publicKeyOf, sign, TrustedKeys, type SecretKey } from '../../src/nix/signing.js'
import { NixEnv, sampleClosureExpr } from '../helpers/nix.js'

const LEAF = '34qij1656dsxnlrdscwnr0b802fhgxj9-leaf-x'
const MID = 'kv6a4c4w2m3z043ngg8rs966l6iz1r27-mid-x'
const TOP = 'jlxqfqhpr2d60paq2lq3dm0kq1z3agx8-top-x'
const NAR_HASH = 'sha256:1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s'

function sampleInfo (): NarInfo {
  return {
    storePath: `/nix/store/${TOP}`,
    url: `nar/${TOP.slice(0, 32)}.nar`,
    compression: 'none',
    narHash: NAR_HASH,
    narSize: 624,
    references: [TOP, MID, LEAF],
    sigs: []
  }
}

describe('nix/narinfo-signing', () => {
  let sk: SecretKey
  let trusted: TrustedKeys
  before(() => {
    sk = generateSecretKey('cache-1')
    trusted = new TrustedKeys([publicKeyOf(sk)])
  })

  it('fingerprints with the references as full store paths in sorted order', () => {
    assert.equal(narInfoFingerprint(sampleInfo()),
      `1;/nix/store/${TOP};${NAR_HASH};624;/nix/store/${LEAF},/nix/store/${TOP},/nix/store/${MID}`)
    assert.equal(narInfoFingerprint({ ...sampleInfo(), references: [] }), `1;/nix/store/${TOP};${NAR_HASH};624;`)
  })

  it('gives the same fingerprint whatever order the narinfo lists its references in', () => {
    const info = sampleInfo()
    assert.equal(narInfoFingerprint({ ...info, references: [...info.references].reverse() }), narInfoFingerprint(info))
  })

  it('signs a copy, replacing an older signature by the same key name and keeping the others', () => {
    const info = { ...sampleInfo(), sigs: ['other-1:AAAA', 'cache-1:stale', 'third-1:BBBB'] }
    const signed = signNarInfo(info, sk)
    assert.deepEqual(signed.sigs, ['other-1:AAAA', 'third-1:BBBB', sign(sk, narInfoFingerprint(info))])
    assert.deepEqual(info.sigs, ['other-1:AAAA', 'cache-1:stale', 'third-1:BBBB'], 'the input is left alone')
    assert.equal(verifyNarInfo(signed, trusted), 'cache-1')
    assert.deepEqual(signNarInfo(signed, sk).sigs, signed.sigs, 'signing twice keeps one signature')
  })

  it('rejects a signed narinfo whose covered fields were changed', () => {
    const signed = signNarInfo(sampleInfo(), sk)
    const tampered: NarInfo[] = [
      { ...signed, narSize: signed.narSize + 1 },
      { ...signed, narHash: `sha256:${'0'.repeat(52)}` },
      { ...signed, references: [MID, LEAF] },
      { ...signed, storePath: `/nix/store/${MID}` }
    ]
    for (const info of tampered) assert.equal(verifyNarInfo(info, trusted), undefined, JSON.stringify(info))
    assert.equal(verifyNarInfo({ ...signed, url: 'nar/elsewhere.nar', compression: 'xz' }, trusted), 'cache-1',
      'URL and compression are not covered, as in Nix')
  })

  it('rejects a narinfo signed by a key that is not trusted, or not signed at all', () => {
    assert.equal(verifyNarInfo(signNarInfo(sampleInfo(), generateSecretKey('cache-1')), trusted), undefined)
    assert.equal(verifyNarInfo(sampleInfo(), trusted), undefined)
  })
})

describe('nix/narinfo-signing against real Nix: a binary cache signed by peerix', function () {
  this.timeout(120_000)
  let nix: NixEnv
  let top: string
  let cache: string
  let nixKey: SecretKey
  let nixPublicKey: string
  before(async () => {
    nix = await NixEnv.create()
    const root = nix.storeRoot('source')
    ;[top] = await nix.build(root, sampleClosureExpr('narsig'))
    cache = join(nix.dir, 'cache')
    await nix.run('nix', ['copy', '--store', root, '--to', `file://${cache}?compression=none`, top])
    const key = await nix.generateKey('nixmade-1')
    nixKey = parseSecretKey(await readFile(key.secretFile, 'utf8'))
    nixPublicKey = key.publicKey
  })
  after(async () => { await nix?.cleanup() })

  /** Re-signs every narinfo of the cache with `sk` only, listing references in reverse order. */
  async function resignCache (sk: SecretKey): Promise<void> {
    const files = (await readdir(cache)).filter(f => f.endsWith('.narinfo'))
    assert.equal(files.length, 3)
    for (const file of files) {
      const info = parseNarInfo(await readFile(join(cache, file), 'utf8'))
      const unsigned = { ...info, references: [...info.references].reverse(), sigs: [] }
      await writeFile(join(cache, file), formatNarInfo(signNarInfo(unsigned, sk)))
    }
  }

  async function copyFromCache (into: string): Promise<void> {
    await nix.run('nix', ['copy', '--from', `file://${cache}`, '--to', nix.storeRoot(into), top,
      '--option', 'trusted-public-keys', nixPublicKey])
  }

  it('is accepted by nix copy when signed with a key made by nix-store --generate-binary-cache-key', async () => {
    await resignCache(nixKey)
    await copyFromCache('accepting')
    const { stdout } = await nix.run('nix-store', ['--store', nix.storeRoot('accepting'), '-qR', top])
    assert.equal(stdout.trim().split('\n').length, 3)
  })

  it('is refused by nix copy when signed with a key Nix does not trust', async () => {
    await resignCache(generateSecretKey('nixmade-1'))
    await assert.rejects(copyFromCache('refusing'), /lacks a valid signature|not signed by any of the keys/)
  })
})
