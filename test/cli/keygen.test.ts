import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { access, readFile, stat, writeFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { fingerprint, formatPublicKey, generateSecretKey, parseSecretKey, publicKeyOf, TrustedKeys } from '../../src/nix/signing.js'
import { NixEnv, sampleClosureExpr } from '../helpers/nix.js'

const REPO = resolve(import.meta.dirname, '../..')

interface Exit { code: number, stdout: string, stderr: string }

/** Runs `peerix <args>` from the sources; resolves with the exit code instead of throwing. */
async function peerix (args: string[], env: NodeJS.ProcessEnv = process.env): Promise<Exit> {
  return await new Promise((resolve) => {
    execFile(process.execPath, ['--import', 'tsx', join(REPO, 'src/cli.ts'), ...args], { cwd: REPO, env, encoding: 'utf8' },
      (err, stdout, stderr) => { resolve({ code: err == null ? 0 : Number((err as { code?: number }).code ?? 1), stdout, stderr }) })
  })
}

async function exists (file: string): Promise<boolean> {
  return await access(file).then(() => true, () => false)
}

describe('peerix keygen', function () {
  this.timeout(120_000)
  let nix: NixEnv
  let n = 0
  /** Fresh file names under the test's temp dir. */
  const files = (): { sk: string, pk: string } => { n++; return { sk: join(nix.dir, `sk${n}`), pk: join(nix.dir, `pk${n}`) } }
  before(async () => { nix = await NixEnv.create() })
  after(async () => { await nix?.cleanup() })

  it('writes a key pair in the form nix-store --generate-binary-cache-key writes, secret file mode 0600', async () => {
    const ours = files()
    const out = await peerix(['keygen', '--name', 'host1-1', '--secret-key-file', ours.sk, '--public-key-file', ours.pk])
    assert.equal(out.code, 0, out.stderr)
    const theirs = files()
    await nix.run('nix-store', ['--generate-binary-cache-key', 'host1-1', theirs.sk, theirs.pk])

    const [sk, pk, nixSk, nixPk] = await Promise.all([ours.sk, ours.pk, theirs.sk, theirs.pk].map(async f => await readFile(f, 'utf8')))
    assert.match(sk, /^host1-1:[A-Za-z0-9+/]{86}==$/, 'secret: name, 64 bytes of base64, no newline')
    assert.match(pk, /^host1-1:[A-Za-z0-9+/]{43}=$/, 'public: name, 32 bytes of base64, no newline')
    assert.match(nixSk, /^host1-1:[A-Za-z0-9+/]{86}==$/)
    assert.match(nixPk, /^host1-1:[A-Za-z0-9+/]{43}=$/)
    assert.equal(sk.length, nixSk.length)
    assert.equal(pk.length, nixPk.length)
    assert.notEqual(sk, nixSk)

    assert.equal(formatPublicKey(publicKeyOf(parseSecretKey(sk))), pk, 'the public key file belongs to the secret key')
    assert.equal(out.stdout, `${pk}\n`, 'prints the public key')
    assert.equal((await stat(ours.sk)).mode & 0o777, 0o600)
  })

  it('makes a key that nix store sign uses and whose signatures Nix and peerix both accept', async () => {
    const key = files()
    assert.equal((await peerix(['keygen', '--name', 'peerix-1', '--secret-key-file', key.sk, '--public-key-file', key.pk])).code, 0)
    const publicKey = await readFile(key.pk, 'utf8')
    const signer = nix.storeRoot('signer')
    const [top] = await nix.build(signer, sampleClosureExpr('keygen'))
    await nix.run('nix', ['store', 'sign', '--store', signer, '--key-file', key.sk, '-r', top])

    const { stdout } = await nix.run('nix', ['path-info', '--json', '--sigs', '--store', signer, '-r', top])
    const infos = JSON.parse(stdout) as Array<{ path: string, narHash: string, narSize: number, references: string[], signatures?: string[] }>
    assert.equal(infos.length, 3)
    const trusted = TrustedKeys.parse(publicKey)
    const stranger = new TrustedKeys([{ ...publicKeyOf(generateSecretKey('x')), name: 'peerix-1' }])
    for (const info of infos) {
      const fp = fingerprint(info.path, info.narHash, info.narSize, [...info.references].sort())
      assert.equal(trusted.verify(fp, info.signatures ?? []), 'peerix-1', info.path)
      assert.equal(stranger.verify(fp, info.signatures ?? []), undefined, `${info.path} with another key`)
    }

    // Locally built paths are "ultimate" and pass without keys: check in a second store.
    const copy = nix.storeRoot('copy')
    await nix.run('nix', ['copy', '--store', signer, '--no-check-sigs', '--to', copy, top])
    await nix.run('nix', ['store', 'verify', '--store', copy, '--sigs-needed', '1', '--trusted-public-keys', publicKey, '-r', top])
    const otherKey = formatPublicKey({ ...publicKeyOf(generateSecretKey('x')), name: 'peerix-1' })
    await assert.rejects(nix.run('nix', ['store', 'verify', '--store', copy, '--sigs-needed', '1', '--trusted-public-keys', otherKey, '-r', top]),
      /is untrusted/)
  })

  it('refuses to overwrite an existing secret or public key file, naming it', async () => {
    const { sk, pk } = files()
    await writeFile(sk, 'precious')
    const out = await peerix(['keygen', '--name', 'a-1', '--secret-key-file', sk, '--public-key-file', pk])
    assert.notEqual(out.code, 0)
    assert.ok(out.stderr.includes(sk), out.stderr)
    assert.match(out.stderr, /refusing to overwrite/)
    assert.equal(await readFile(sk, 'utf8'), 'precious')
    assert.equal(await exists(pk), false)

    const second = files()
    await writeFile(second.pk, 'precious')
    const out2 = await peerix(['keygen', '--name', 'a-1', '--secret-key-file', second.sk, '--public-key-file', second.pk])
    assert.notEqual(out2.code, 0)
    assert.ok(out2.stderr.includes(second.pk), out2.stderr)
    assert.equal(await readFile(second.pk, 'utf8'), 'precious')
    assert.equal(await exists(second.sk), false, 'no half key pair is left behind')
  })

  it('refuses the same file for both keys', async () => {
    const { sk } = files()
    const out = await peerix(['keygen', '--name', 'a-1', '--secret-key-file', sk, '--public-key-file', sk])
    assert.notEqual(out.code, 0)
    assert.ok(out.stderr.includes(sk), out.stderr)
    assert.equal(await exists(sk), false)
  })

  it('rejects a key name that is empty or has a colon or whitespace, naming it', async () => {
    await Promise.all(['', 'a:b', 'a b'].map(async name => {
      const { sk, pk } = files()
      const out = await peerix(['keygen', '--name', name, '--secret-key-file', sk, '--public-key-file', pk])
      assert.notEqual(out.code, 0, name)
      assert.ok(out.stderr.includes(`invalid key name ${JSON.stringify(name)}`), out.stderr)
      assert.equal(await exists(sk), false)
    }))
  })

  it('explains itself with --help and fails without its required options', async () => {
    const help = await peerix(['keygen', '--help'])
    assert.equal(help.code, 0)
    for (const option of ['--name', '--secret-key-file', '--public-key-file']) assert.ok(help.stdout.includes(option), help.stdout)
    const missing = await peerix(['keygen', '--name', 'a-1'])
    assert.notEqual(missing.code, 0)
    assert.match(missing.stderr, /--secret-key-file/)
  })
})
