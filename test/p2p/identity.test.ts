import assert from 'node:assert/strict'
import { mkdtemp, rm, stat, writeFile, readdir } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { loadOrCreatePrivateKey } from '../../src/p2p/identity.js'

describe('peer identity', () => {
  let dir: string
  beforeEach(async () => { dir = await mkdtemp(join(tmpdir(), 'peerix-identity-')) })
  afterEach(async () => { await rm(dir, { recursive: true, force: true }) })

  it('creates an Ed25519 key on first start, private to its owner, and keeps the same PeerId after', async () => {
    const stateDir = join(dir, 'state')
    const first = await loadOrCreatePrivateKey(stateDir)
    assert.equal(first.type, 'Ed25519')
    assert.equal((await stat(stateDir)).mode & 0o777, 0o700)
    assert.equal((await stat(join(stateDir, 'peer-key'))).mode & 0o777, 0o600)
    assert.deepEqual(await readdir(stateDir), ['peer-key'])
    const again = await loadOrCreatePrivateKey(stateDir)
    assert.equal(peerIdFromPrivateKey(again).toString(), peerIdFromPrivateKey(first).toString())
  })

  it('gives every new state directory its own identity', async () => {
    const a = await loadOrCreatePrivateKey(join(dir, 'a'))
    const b = await loadOrCreatePrivateKey(join(dir, 'b'))
    assert.notEqual(peerIdFromPrivateKey(a).toString(), peerIdFromPrivateKey(b).toString())
  })

  it('agrees on one key when two starts race on an empty state directory', async () => {
    const keys = await Promise.all([1, 2, 3].map(async () => await loadOrCreatePrivateKey(dir)))
    const ids = new Set(keys.map(k => peerIdFromPrivateKey(k).toString()))
    assert.equal(ids.size, 1)
    assert.equal(peerIdFromPrivateKey(await loadOrCreatePrivateKey(dir)).toString(), [...ids][0])
  })

  it('refuses a corrupt key file, naming it, and leaves it in place', async () => {
    const file = join(dir, 'peer-key')
    await writeFile(file, 'not a key at all')
    await assert.rejects(loadOrCreatePrivateKey(dir), (err: Error) => {
      assert.equal(err.name, 'FormatError')
      assert.match(err.message, new RegExp(`${file}.*not a libp2p private key`))
      return true
    })
    await assert.rejects(loadOrCreatePrivateKey(dir), /not a libp2p private key/)
    assert.equal((await stat(file)).size, 'not a key at all'.length)
  })
})
