import '../../src/polyfill.js'
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { formatSha256Nix32 } from '../../src/nix/hash.js'
import { toNix32 } from '../../src/nix/nix32.js'
import { nar, type NarService } from '../../src/p2p/nar/index.js'
import { loopbackNode } from './node-helpers.js'
import type { PathSource } from '../../src/store/source.js'
import type { Libp2p } from '@libp2p/interface'

/**
 * A store whose NARs come from memory: `short` announces and sends half of 2 MiB (a complete
 * exchange that leaves the stream to the pool), `endless` never ends: zeros, which zstd
 * shrinks to almost nothing.
 */
const fromMemory: PathSource = {
  async narInfo () { return { status: 'absent' } },
  async nar (hashPart) {
    const zeros = new Uint8Array(64 * 1024)
    if (hashPart === hashOf('short')) return { status: 'found', value: { length: 1024 * 1024, stream: (async function * () { for (let i = 0; i < 16; i++) yield zeros })() } }
    return { status: 'found', value: { length: Number.MAX_SAFE_INTEGER, stream: (async function * () { for (;;) yield zeros })() } }
  }
}

function hashOf (label: string): string {
  return toNix32(createHash('sha256').update(label).digest().subarray(0, 20))
}

describe('/peerix/nar/1 responder and the event loop', function () {
  this.timeout(60_000)
  const nodes: Array<Libp2p<{ nar: NarService }>> = []
  afterEach(async () => { await Promise.all(nodes.splice(0).map(async n => { await n.stop() })) })

  it('keeps the event loop turning while it compresses a body that never waits for I/O', async () => {
    const server = await loopbackNode({ nar: nar({ source: fromMemory }) })
    const client = await loopbackNode({ nar: nar({ source: fromMemory, timeout: 5_000 }) })
    nodes.push(server, client)
    await client.dial(server.getMultiaddrs()[0])
    const narHash = formatSha256Nix32(createHash('sha256').update('any').digest())
    // both nodes share this process: a responder that held the event loop would starve the
    // requester too, and no answer would arrive within its 5 s
    const read = async (label: string, upTo: number): Promise<number> => {
      const answer = await client.services.nar.fetch(server.peerId, hashOf(label), narHash, 0, { acceptZstd: true })
      assert.equal(answer.status, 'found', `${label}: ${JSON.stringify(answer)}`)
      let got = 0
      for await (const chunk of (answer as { value: AsyncIterable<Uint8Array> }).value) {
        got += chunk.byteLength
        if (got >= upTo) break
      }
      return got
    }
    assert.equal(await read('short', 1024 * 1024), 1024 * 1024)
    assert.ok(await read('endless', 2 * 1024 * 1024) >= 2 * 1024 * 1024)
    assert.equal(await read('short', 1024 * 1024), 1024 * 1024, 'the node answers after the endless body was dropped')
  })
})
