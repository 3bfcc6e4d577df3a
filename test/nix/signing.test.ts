import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { FormatError } from '../../src/nix/errors.js'
import {
  fingerprint, formatPublicKey, formatSecretKey, generateSecretKey, parsePublicKey, parseSecretKey,
  publicKeyOf, sign, TrustedKeys, type SecretKey
} from '../../src/nix/signing.js'
import { signNarInfo } from '../../src/nix/narinfo-signing.js'
import { NixEnv, sampleClosureExpr } from '../helpers/nix.js'

const NAR_HASH = 'sha256:1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s'

function b64 (bytes: Uint8Array | number[]): string {
  return Buffer.from(Uint8Array.from(bytes)).toString('base64')
}

/** Asserts `fn` throws a FormatError whose message matches `pattern` and never shows `secret`. */
function assertFormatError (fn: () => unknown, pattern: RegExp, secret?: string): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof FormatError, `expected FormatError, got ${String(err)}`)
    assert.match(err.message, pattern)
    if (secret !== undefined) assert.ok(!err.message.includes(secret), `message shows the secret: ${err.message}`)
    return true
  })
}

describe('nix/signing: keys', () => {
  it('formats and parses a generated secret key back to the same key', () => {
    const sk = generateSecretKey('host-1')
    const text = formatSecretKey(sk)
    assert.match(text, /^host-1:[A-Za-z0-9+/]{86}==$/)
    const back = parseSecretKey(text)
    assert.equal(back.name, 'host-1')
    assert.deepEqual(back.seed, sk.seed)
    assert.deepEqual(back.publicKey, sk.publicKey)
  })

  it('formats and parses a public key back to the same key', () => {
    const pk = publicKeyOf(generateSecretKey('host-2'))
    const text = formatPublicKey(pk)
    assert.match(text, /^host-2:[A-Za-z0-9+/]{43}=$/)
    assert.deepEqual(parsePublicKey(text), pk)
  })

  it('generates a different key each time', () => {
    assert.notDeepEqual(generateSecretKey('a').seed, generateSecretKey('a').seed)
  })

  it('derives the RFC 8032 public key and signature (test vector 1)', () => {
    const seed = Buffer.from('9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60', 'hex')
    const pub = Buffer.from('d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a', 'hex')
    const sig = Buffer.from('e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b', 'hex')
    const sk = parseSecretKey(`v:${b64([...seed, ...pub])}`)
    assert.equal(sign(sk, ''), `v:${b64(sig)}`)
  })

  it('reads a key with the line ends an editor leaves after it, as `nix store sign -k` does', () => {
    const sk = generateSecretKey('nl')
    for (const end of ['\n', '\n\n', '\r\n']) assert.deepEqual(parseSecretKey(`${formatSecretKey(sk)}${end}`).seed, sk.seed)
    assertFormatError(() => parseSecretKey(`${formatSecretKey(sk)}\n \n`), /"nl" is not valid base64/)
    const pk = publicKeyOf(sk)
    assert.deepEqual(parsePublicKey(`${formatPublicKey(pk)}\n`), pk)
  })

  describe('rejects a malformed secret key, naming the problem and never the secret', () => {
    const sk = generateSecretKey('bad')
    const body = formatSecretKey(sk).slice('bad:'.length)
    const seedB64 = b64(sk.seed)
    it('missing colon', () => { assertFormatError(() => parseSecretKey(body), /no ':'/, body) })
    it('empty name', () => { assertFormatError(() => parseSecretKey(`:${body}`), /empty key name/, body) })
    it('bad base64', () => { assertFormatError(() => parseSecretKey(`bad:${body.slice(0, -4)}!!==`), /"bad" is not valid base64/, body.slice(0, -4)) })
    it('non-canonical base64', () => { assertFormatError(() => parseSecretKey(`bad:${body.replace(/=+$/, '')}`), /not valid base64/, body.slice(0, -2)) })
    it('seed only (32 bytes)', () => { assertFormatError(() => parseSecretKey(`bad:${seedB64}`), /32 bytes, expected 64/, seedB64) })
    it('empty key', () => { assertFormatError(() => parseSecretKey('bad:'), /0 bytes, expected 64/) })
    it('public half of another key', () => {
      const other = generateSecretKey('bad')
      const mixed = b64([...sk.seed, ...other.publicKey])
      assertFormatError(() => parseSecretKey(`bad:${mixed}`), /public half does not match its seed/, seedB64)
    })
  })

  describe('rejects a malformed public key, naming it', () => {
    const pk = formatPublicKey(publicKeyOf(generateSecretKey('p')))
    const body = pk.slice(2)
    it('missing colon', () => { assertFormatError(() => parsePublicKey(body), new RegExp(`"${body.replace(/[+/]/g, '\\$&')}" has no ':'`)) })
    it('empty name', () => { assertFormatError(() => parsePublicKey(`:${body}`), /empty key name/) })
    it('bad base64', () => { assertFormatError(() => parsePublicKey('p:@@@@'), /"p:@@@@" is not valid base64/) })
    it('wrong length', () => { assertFormatError(() => parsePublicKey(`p:${b64(new Uint8Array(64))}`), /64 bytes, expected 32/) })
  })

  it('refuses a key name that is empty or has a colon or whitespace, naming it', () => {
    for (const name of ['', 'a:b', 'a b', 'a\tb', 'a\n']) {
      assertFormatError(() => generateSecretKey(name), new RegExp(`invalid key name ${JSON.stringify(JSON.stringify(name)).slice(1, -1)}`))
    }
  })
})

describe('nix/signing: fingerprints and signatures', () => {
  const path = '/nix/store/34qij1656dsxnlrdscwnr0b802fhgxj9-leaf-x'
  const refs = ['/nix/store/34qij1656dsxnlrdscwnr0b802fhgxj9-leaf-x', '/nix/store/kv6a4c4w2m3z043ngg8rs966l6iz1r27-mid-x']
  let sk: SecretKey
  let trusted: TrustedKeys
  before(() => {
    sk = generateSecretKey('cache-1')
    trusted = new TrustedKeys([publicKeyOf(generateSecretKey('other-1')), publicKeyOf(sk)])
  })

  it('is 1;path;narHash;narSize;refs with the hash in nix32, whatever form it came in', () => {
    const fp = `1;${path};${NAR_HASH};2368;${refs.join(',')}`
    assert.equal(fingerprint(path, NAR_HASH, 2368, refs), fp)
    const sri = `sha256-${Buffer.from(Buffer.from('00'.repeat(32), 'hex')).toString('base64')}`
    assert.equal(fingerprint(path, sri, 0, []), `1;${path};sha256:${'0'.repeat(52)};0;`)
  })

  it('rejects a fingerprint with a malformed NAR hash', () => {
    assertFormatError(() => fingerprint(path, 'md5:abc', 1, []), /"md5:abc"/)
  })

  it('verifies a signature by a trusted key and names the key', () => {
    const fp = fingerprint(path, NAR_HASH, 2368, refs)
    assert.equal(trusted.verify(fp, [sign(sk, fp)]), 'cache-1')
    assert.equal(trusted.size, 2)
  })

  it('rejects a signature over another fingerprint', () => {
    const fp = fingerprint(path, NAR_HASH, 2368, refs)
    assert.equal(trusted.verify(fp, [sign(sk, fingerprint(path, NAR_HASH, 2369, refs))]), undefined)
    assert.equal(trusted.verify(fingerprint(path, NAR_HASH, 2368, refs.slice(1)), [sign(sk, fp)]), undefined)
  })

  it('rejects a signature by a key of the same name that is not trusted', () => {
    const fp = fingerprint(path, NAR_HASH, 1, [])
    assert.equal(trusted.verify(fp, [sign(generateSecretKey('cache-1'), fp)]), undefined)
  })

  it('rejects a signature by a key it does not know, and no signatures at all', () => {
    const fp = fingerprint(path, NAR_HASH, 1, [])
    assert.equal(trusted.verify(fp, [sign(generateSecretKey('stranger-1'), fp)]), undefined)
    assert.equal(trusted.verify(fp, []), undefined)
    assert.equal(new TrustedKeys([]).verify(fp, [sign(sk, fp)]), undefined)
  })

  it('skips malformed signatures and still finds a good one among them', () => {
    const fp = fingerprint(path, NAR_HASH, 1, [])
    const good = sign(sk, fp)
    const sigBody = good.slice('cache-1:'.length)
    const malformed = [
      '', 'cache-1', `:${sigBody}`, 'cache-1:', 'cache-1:!!!!', `cache-1:${sigBody.slice(0, -4)}`,
      `cache-1:${b64(new Uint8Array(63))}`, `cache-1:${b64(new Uint8Array(65))}`, `cache-1:${b64(new Uint8Array(64).fill(255))}`
    ]
    for (const sig of malformed) assert.equal(trusted.verify(fp, [sig]), undefined, sig)
    assert.equal(trusted.verify(fp, [...malformed, good]), 'cache-1')
  })

  it('ignores a trusted "key" that is not a curve point instead of throwing', () => {
    const fp = fingerprint(path, NAR_HASH, 1, [])
    const junk = new TrustedKeys([{ name: 'cache-1', key: new Uint8Array(32).fill(255) }, publicKeyOf(sk)])
    assert.equal(junk.verify(fp, [sign(sk, fp)]), 'cache-1')
    assert.equal(new TrustedKeys([{ name: 'cache-1', key: new Uint8Array(32).fill(255) }]).verify(fp, [sign(sk, fp)]), undefined)
  })

  it('lets a small-order "key" verify nothing, as libsodium (Nix) does, where OpenSSL took a forgery', () => {
    const fp = fingerprint(path, NAR_HASH, 1, [])
    // R = the identity point and S = 0 "verify" under the identity point for any message.
    const forged = new Uint8Array(64)
    forged[0] = 1
    const identity = new Uint8Array(32)
    identity[0] = 1
    const orderTwo = new Uint8Array(32).fill(0xff)
    orderTwo[0] = 0xec
    orderTwo[31] = 0x7f
    for (const key of [identity, orderTwo, new Uint8Array(32)]) {
      const trusted = new TrustedKeys([{ name: 'weird-1', key }])
      assert.equal(trusted.size, 1, 'still counted as configured')
      assert.equal(trusted.verify(fp, [`weird-1:${Buffer.from(forged).toString('base64')}`]), undefined, Buffer.from(key).toString('hex'))
    }
  })

  it('parses a whitespace-separated list of trusted keys and rejects a bad one', () => {
    const a = formatPublicKey(publicKeyOf(generateSecretKey('a-1')))
    const b = formatPublicKey(publicKeyOf(sk))
    const keys = TrustedKeys.parse(`  ${a}\n\t${b} \n`)
    assert.equal(keys.size, 2)
    const fp = fingerprint(path, NAR_HASH, 1, [])
    assert.equal(keys.verify(fp, [sign(sk, fp)]), 'cache-1')
    assert.equal(TrustedKeys.parse('').size, 0)
    assertFormatError(() => TrustedKeys.parse(`${a} nocolon`), /"nocolon" has no ':'/)
  })
})

describe('nix/signing against real Nix', function () {
  this.timeout(120_000)
  let nix: NixEnv
  let root: string
  let top: string
  before(async () => {
    nix = await NixEnv.create()
    root = nix.storeRoot('signer')
    ;[top] = await nix.build(root, sampleClosureExpr('sign'))
  })
  after(async () => { await nix?.cleanup() })

  interface PathInfoJson { path: string, narHash: string, narSize: number, references: string[], signatures?: string[] }

  async function pathInfos (storeRoot: string): Promise<PathInfoJson[]> {
    const { stdout } = await nix.run('nix', ['path-info', '--json', '--sigs', '--store', storeRoot, '-r', top])
    return JSON.parse(stdout) as PathInfoJson[]
  }

  it('parses a key made by nix-store --generate-binary-cache-key and signs exactly as nix store sign does', async () => {
    const key = await nix.generateKey('nixmade-1')
    const skText = await readFile(key.secretFile, 'utf8')
    const pkText = key.publicKey
    const sk = parseSecretKey(skText)
    assert.equal(formatSecretKey(sk), skText, 'our form of the secret key equals the file')
    assert.equal(formatPublicKey(publicKeyOf(sk)), pkText, 'our public key equals the file')

    await nix.run('nix', ['store', 'sign', '--store', root, '--key-file', key.secretFile, '-r', top])
    const infos = await pathInfos(root)
    assert.equal(infos.length, 3)
    assert.ok(infos.some(i => i.references.length >= 2), 'a path with several references is covered')
    const trusted = TrustedKeys.parse(pkText)
    for (const info of infos) {
      const fp = fingerprint(info.path, info.narHash, info.narSize, [...info.references].sort())
      const ours = sign(sk, fp)
      assert.deepEqual(info.signatures?.filter(s => s.startsWith('nixmade-1:')), [ours], info.path)
      const asNarInfo = {
        storePath: info.path,
        url: 'nar/x.nar',
        compression: 'none',
        narHash: info.narHash,
        narSize: info.narSize,
        references: info.references.map(ref => ref.slice('/nix/store/'.length)).reverse(),
        sigs: []
      }
      assert.deepEqual(signNarInfo(asNarInfo, sk).sigs, [ours], `narinfo of ${info.path}`)
      assert.equal(trusted.verify(fp, info.signatures ?? []), 'nixmade-1')
    }
  })
})
