/**
 * The keys peerix trusts by default are the ones Nix trusts: for each nix.conf below (and the
 * files it includes), our reading of trusted-public-keys equals what the real
 * `nix show-config` prints for it.
 */
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { NIX_DEFAULT_TRUSTED_PUBLIC_KEYS, trustedKeysFromNixConf } from '../../src/nix/nix-conf.js'
import { nixTrustedKeys } from '../../src/daemon/keys.js'
import { formatPublicKey, generateSecretKey, publicKeyOf } from '../../src/nix/signing.js'

const run = promisify(execFile)
const [a, b, c] = ['a-1', 'b-1', 'c-1'].map(name => formatPublicKey(publicKeyOf(generateSecretKey(name))))

const CONFS: Record<string, string> = {
  'no setting (Debian\'s stock nix.conf)': 'sandbox = false\n',
  'extra- only: added to the default': `extra-trusted-public-keys = ${a} ${b}\n`,
  'a plain setting replaces the default': `trusted-public-keys = ${a}\n`,
  'a later plain setting replaces earlier extra- keys': `extra-trusted-public-keys = ${a}\ntrusted-public-keys = ${b}\n`,
  'extra- after plain adds': `trusted-public-keys = ${a} # mine\nextra-trusted-public-keys = ${b}\n`,
  'an empty plain setting trusts nothing': 'trusted-public-keys =\n',
  'the old name, binary-cache-public-keys': `binary-cache-public-keys = ${c}\nextra-binary-cache-public-keys = ${a}\n`,
  'spaces and comments': `   trusted-public-keys   =   ${a}    ${c}   \n# trusted-public-keys = ${b}\n`
}

describe('nix.conf trusted-public-keys, read as Nix reads it', function () {
  let dir: string
  before(async () => { dir = await mkdtemp(join(tmpdir(), 'peerix-nix-conf-')) })
  after(async () => { await rm(dir, { recursive: true, force: true }) })

  /** What the real Nix trusts with `text` as its only nix.conf. */
  async function nixSays (text: string): Promise<string[]> {
    const conf = await mkdtemp(join(dir, 'conf-'))
    await writeFile(join(conf, 'nix.conf'), text)
    return await nixSaysIn(conf)
  }

  /** What the real Nix trusts with the nix.conf in `conf`. */
  async function nixSaysIn (conf: string): Promise<string[]> {
    const env = { ...process.env, NIX_CONF_DIR: conf, XDG_CONFIG_HOME: join(conf, 'none'), NIX_USER_CONF_FILES: '', NIX_CONFIG: 'experimental-features = nix-command' }
    const { stdout } = await run('nix', ['show-config'], { env })
    const line = stdout.split('\n').find(l => l.startsWith('trusted-public-keys = ')) ?? ''
    return line.slice('trusted-public-keys = '.length).split(' ').filter(k => k !== '')
  }

  for (const [name, text] of Object.entries(CONFS)) {
    it(`${name}: the keys nix show-config prints`, async () => {
      assert.deepEqual(trustedKeysFromNixConf(text), await nixSays(text))
    })
  }

  /**
   * Several files: `nix.conf` and the files it includes (names relative to the conf dir). The
   * Determinate installer's nix.conf ends with `!include nix.custom.conf`, where its users put
   * their own settings.
   */
  const INCLUDES: Record<string, Record<string, string>> = {
    'include: the included file\'s settings in its place': {
      'nix.conf': `extra-trusted-public-keys = ${a}\ninclude extra.conf\nextra-trusted-public-keys = ${c}\n`,
      'extra.conf': `trusted-public-keys = ${b}\n`
    },
    '!include, as the Determinate installer writes it': {
      'nix.conf': 'sandbox = false\n!include nix.custom.conf\n',
      'nix.custom.conf': `extra-trusted-public-keys = ${a} ${b}\n`
    },
    '!include of a missing file is skipped': {
      'nix.conf': `extra-trusted-public-keys = ${a}\n!include nix.custom.conf\n`
    },
    'an included file\'s own include is relative to its directory; absolute names work': {
      'nix.conf': 'include sub/one.conf\ninclude @DIR@/two.conf\n',
      'sub/one.conf': `extra-trusted-public-keys = ${a}\ninclude deeper.conf\n`,
      'sub/deeper.conf': `extra-trusted-public-keys = ${b}\n`,
      'two.conf': `extra-trusted-public-keys = ${c}\n`
    }
  }

  /** Writes `files` into a new conf dir (`@DIR@` in a file stands for that dir). */
  async function confDir (files: Record<string, string>): Promise<string> {
    const conf = await mkdtemp(join(dir, 'conf-'))
    for (const [name, text] of Object.entries(files)) {
      await mkdir(join(conf, name, '..'), { recursive: true })
      await writeFile(join(conf, name), text.replaceAll('@DIR@', conf))
    }
    return conf
  }

  for (const [name, files] of Object.entries(INCLUDES)) {
    it(`follows include and !include as Nix does: ${name}`, async () => {
      const conf = await confDir(files)
      const keys = await nixTrustedKeys({ NIX_CONF_DIR: conf })
      assert.deepEqual(keys.map(formatPublicKey), await nixSaysIn(conf))
    })
  }

  it('fails, as Nix does, when an include (without !) names a missing file', async () => {
    const conf = await confDir({ 'nix.conf': `extra-trusted-public-keys = ${a}\ninclude gone.conf\n` })
    await assert.rejects(nixSaysIn(conf), /gone\.conf/)
    await assert.rejects(nixTrustedKeys({ NIX_CONF_DIR: conf }), new RegExp(`cannot read ${conf}/nix.conf for its trusted-public-keys: ${conf}/gone.conf, included from ${conf}/nix.conf, does not exist`))
  })

  it('skips, as Nix does, an include (without !) of a dangling symbolic link: it exists for Nix, which cannot read it', async () => {
    // Nix looks with lstat (pathExists) and skips an included file it cannot read; a link to
    // a secret that is not there yet (agenix, sops-nix) must not stop the daemon.
    const conf = await confDir({ 'nix.conf': `extra-trusted-public-keys = ${a}\ninclude secret.conf\nextra-trusted-public-keys = ${b}\n` })
    await symlink(join(conf, 'not-there-yet'), join(conf, 'secret.conf'))
    const keys = await nixTrustedKeys({ NIX_CONF_DIR: conf })
    assert.deepEqual(keys.map(formatPublicKey), await nixSaysIn(conf))
  })

  it('a nix.conf that is a dangling symbolic link: Nix\'s default key, as for Nix', async () => {
    const conf = await mkdtemp(join(dir, 'conf-'))
    await symlink(join(conf, 'not-there'), join(conf, 'nix.conf'))
    const keys = await nixTrustedKeys({ NIX_CONF_DIR: conf })
    assert.deepEqual(keys.map(formatPublicKey), await nixSaysIn(conf))
    assert.deepEqual(keys.map(formatPublicKey), [...NIX_DEFAULT_TRUSTED_PUBLIC_KEYS])
  })

  it('without a nix.conf, Nix\'s default key', async () => {
    const keys = await nixTrustedKeys({ NIX_CONF_DIR: join(dir, 'missing') })
    assert.deepEqual(keys.map(formatPublicKey), [...NIX_DEFAULT_TRUSTED_PUBLIC_KEYS])
  })

  it('rejects a malformed key naming nix.conf, and an unreadable nix.conf', async () => {
    const conf = join(dir, 'bad')
    await mkdir(conf)
    await writeFile(join(conf, 'nix.conf'), 'extra-trusted-public-keys = bogus\n')
    await assert.rejects(nixTrustedKeys({ NIX_CONF_DIR: conf }), new RegExp(`${conf}/nix.conf, trusted-public-keys: .*bogus`))
    await assert.rejects(nixTrustedKeys({ NIX_CONF_DIR: join(conf, 'nix.conf') }), /cannot read .*nix.conf\/nix.conf for its trusted-public-keys/)
  })
})
