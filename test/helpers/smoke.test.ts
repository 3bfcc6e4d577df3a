import assert from 'node:assert/strict'
import { NixEnv, sampleClosureExpr } from './nix.js'

describe('test harness: a private offline Nix', () => {
  let nix: NixEnv
  before(async () => { nix = await NixEnv.create() })
  after(async () => { await nix.cleanup() })

  it('builds a closure of three paths with references into a chroot store', async () => {
    const root = nix.storeRoot('hostA')
    const [top] = await nix.build(root, sampleClosureExpr())
    assert.match(top, /^\/nix\/store\/[0-9a-z]{32}-top-x$/)
    const closure = await nix.closure(root, top)
    assert.equal(closure.length, 3)
  })
})
