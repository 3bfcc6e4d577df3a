/**
 * The keys peerix trusts by default are the ones Nix trusts: for each nix.conf below, our
 * reading of trusted-public-keys equals what the real `nix show-config` prints for it.
 */
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
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
    await writeFile(join(conf, 'nix.conf'), `experimental-features = nix-command\n${text}`)
    const env = { ...process.env, NIX_CONF_DIR: conf, XDG_CONFIG_HOME: join(conf, 'none'), NIX_USER_CONF_FILES: '' }
    const { stdout } = await run('nix', ['show-config'], { env })
    const line = stdout.split('\n').find(l => l.startsWith('trusted-public-keys = ')) ?? ''
    return line.slice('trusted-public-keys = '.length).split(' ').filter(k => k !== '')
  }

  for (const [name, text] of Object.entries(CONFS)) {
    it(`${name}: the keys nix show-config prints`, async () => {
      assert.deepEqual(trustedKeysFromNixConf(text), await nixSays(text))
    })
  }

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
