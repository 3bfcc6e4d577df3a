import '../../src/polyfill.js'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { Uint8ArrayList } from 'uint8arraylist'
import { hashPartOf, Nodes, servedNar } from './node-helpers.js'

const MiB = 1024 * 1024
const PROTOCOL = '/peerix-test/sink/1'

/**
 * Counts the gathering copies of this process: Uint8ArrayList.subarray over more than one
 * piece, of at least 32 KiB (half a Noise message), each a new buffer the bytes are copied into.
 */
class GatheringCopies {
  count = 0
  readonly #subarray = Uint8ArrayList.prototype.subarray

  start (): void {
    const counts = this
    const subarray = this.#subarray
    Uint8ArrayList.prototype.subarray = function (this: Uint8ArrayList, ...args: [number?, number?]) {
      const result = subarray.apply(this, args)
      if (result.byteLength >= 32 * 1024 && (this as unknown as { bufs: unknown[] }).bufs.length > 1) counts.count++
      return result
    }
  }

  stop (): void {
    Uint8ArrayList.prototype.subarray = this.#subarray
  }
}

describe('Noise messages without gathering copies', function () {
  this.timeout(30_000)
  const nodes = new Nodes()
  let copies: GatheringCopies

  beforeEach(() => { copies = new GatheringCopies() })
  afterEach(async () => {
    copies.stop()
    await nodes.stopAll()
  })

  it('deliver a NAR between peerix nodes byte for byte, without gathering its messages into new buffers', async () => {
    // not a multiple of Noise's 65,519-byte plaintext: the last message is short
    const bytes = randomBytes(4 * MiB + 12_345)
    const { server, client, fetchAll } = await servedNar(nodes, 'no-copies', bytes)
    copies.start()
    const received = await fetchAll()
    copies.stop()

    assert.ok(received.equals(bytes), 'the NAR arrives intact')
    // 4 MiB is 65 Noise messages; socket reads cut most of them in two
    assert.ok(copies.count <= 2, `saw ${copies.count} gathering copies`)
    // small messages (under the 1,200 bytes where Noise switches ciphers) too: a narinfo exchange
    const small = await client.services.narinfo.query(server.peerId, hashPartOf('absent'))
    assert.equal(small.status, 'absent', JSON.stringify(small))
  })

  it('are what makes the difference: stock libp2p gathers most messages of a transfer', async () => {
    const receiver = await nodes.plain()
    const sender = await nodes.plain()
    let received = 0
    await receiver.handle(PROTOCOL, async (stream) => { for await (const chunk of stream) received += chunk.byteLength })
    const stream = await sender.dialProtocol(receiver.getMultiaddrs()[0], PROTOCOL)
    copies.start()
    const piece = new Uint8Array(256 * 1024)
    for (let i = 0; i < 16; i++) if (!stream.send(piece)) await stream.onDrain()
    await stream.close()
    while (received < 16 * piece.byteLength) await new Promise(resolve => setTimeout(resolve, 10))
    copies.stop()
    assert.ok(copies.count >= 16, `expected the stock stack to gather messages, saw ${copies.count}`)
  })
})
