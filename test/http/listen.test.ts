/** What the daemon says when it cannot listen for Nix: the address, the flag, what to change. */
import '../../src/polyfill.js'
import assert from 'node:assert/strict'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { listenShim } from '../../src/http/server.js'

describe('listening for Nix', () => {
  const servers: Server[] = []
  afterEach(async () => {
    await Promise.all(servers.splice(0).map(async s => { await new Promise(resolve => s.close(resolve)) }))
  })
  const server = (): Server => {
    const s = createServer()
    servers.push(s)
    return s
  }

  it('names the address, the flag and the cause when the port is taken', async () => {
    const { port } = await listenShim(server(), '127.0.0.1', 0)
    await assert.rejects(listenShim(server(), '127.0.0.1', port), (err: Error) => {
      assert.equal(err.message, `cannot listen for Nix on 127.0.0.1:${port} (--listen): another program (another peerix?) already listens there; stop it or choose another port`)
      return true
    })
  })

  it('says so when the host has no such address', async () => {
    await assert.rejects(listenShim(server(), '192.0.2.77', 0), /cannot listen for Nix on 192\.0\.2\.77:0 \(--listen\): this host has no such address/)
  })

  it('resolves with the bound address when it can listen', async () => {
    const address: AddressInfo = await listenShim(server(), '127.0.0.1', 0)
    assert.equal(address.address, '127.0.0.1')
    assert.ok(address.port > 0)
  })
})
