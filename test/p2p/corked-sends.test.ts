import '../../src/polyfill.js'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { Socket } from 'node:net'
import { corkSends } from '../../src/p2p/corked-sends.js'
import { Nodes, portOf, servedNar } from './node-helpers.js'
import { Uint8ArrayList } from 'uint8arraylist'

const MiB = 1024 * 1024
const PROTOCOL = '/peerix-test/sink/1'

/** Counts the socket writes of this process: single buffers (`_write`) and gathered ones (`_writev`). */
class SocketWrites {
  /** Writes (single or gathered) on sockets whose local port is this one, when set. */
  port?: number
  onPort = 0
  singles = 0
  /** Single writes of a 2-byte buffer: a Noise length on its own. */
  lengthsAlone = 0
  gathered = 0
  readonly #write = Object.getOwnPropertyDescriptor(Socket.prototype, '_write')
  readonly #writev = Object.getOwnPropertyDescriptor(Socket.prototype, '_writev')

  start (): void {
    const counts = this
    const write = Socket.prototype._write
    const writev = Socket.prototype._writev
    Socket.prototype._write = function (this: Socket, chunk: Buffer, ...rest: unknown[]) {
      counts.singles++
      if (this.localPort === counts.port) counts.onPort++
      if (chunk.byteLength === 2) counts.lengthsAlone++
      return (write as (...args: unknown[]) => void).call(this, chunk, ...rest)
    }
    Socket.prototype._writev = function (this: Socket, ...args: unknown[]) {
      counts.gathered++
      if (this.localPort === counts.port) counts.onPort++
      return (writev as (...args: unknown[]) => void).call(this, ...args)
    }
  }

  stop (): void {
    if (this.#write !== undefined) Object.defineProperty(Socket.prototype, '_write', this.#write)
    if (this.#writev !== undefined) Object.defineProperty(Socket.prototype, '_writev', this.#writev)
  }
}

describe('corked sends on peer connections', function () {
  this.timeout(30_000)
  const nodes = new Nodes()
  let writes: SocketWrites

  beforeEach(() => { writes = new SocketWrites() })
  afterEach(async () => {
    writes.stop()
    await nodes.stopAll()
  })

  it('send a NAR with each Noise length and ciphertext in one write, and deliver every byte', async () => {
    const bytes = randomBytes(4 * MiB)
    const { fetchAll } = await servedNar(nodes, 'corked', bytes)
    writes.start()
    const received = await fetchAll()
    writes.stop()

    assert.ok(received.equals(bytes), 'the NAR arrives intact')
    assert.equal(writes.lengthsAlone, 0, 'no Noise length went out as a socket write of its own')
    // 4 MiB is 64 Noise messages, each a length and a ciphertext: 128 buffers, one writev each pair
    assert.ok(writes.gathered >= 64, `the NAR went out in gathered writes, saw ${writes.gathered}`)
    assert.ok(writes.singles + writes.gathered < 128, `fewer socket writes than buffers, saw ${writes.singles} + ${writes.gathered}`)
  })

  it('send a small NAR\'s header and body in one socket write', async () => {
    const bytes = randomBytes(1024)
    const { server, fetchAll } = await servedNar(nodes, 'small', bytes)
    await fetchAll() // opens the stream the next fetches reuse
    writes.port = portOf(server)
    writes.start()
    for (let i = 0; i < 5; i++) assert.ok((await fetchAll()).equals(bytes), 'the NAR arrives intact')
    writes.stop()
    assert.equal(writes.onPort, 5, 'one socket write from the server per NAR')
  })

  it('are what makes the difference: stock libp2p writes each Noise length on its own', async () => {
    const receiver = await nodes.plain()
    const sender = await nodes.plain()
    await receiver.handle(PROTOCOL, async (stream) => { for await (const _ of stream) { /* discard */ } })
    const stream = await sender.dialProtocol(receiver.getMultiaddrs()[0], PROTOCOL)
    writes.start()
    const piece = new Uint8Array(256 * 1024)
    for (let i = 0; i < 8; i++) if (!stream.send(piece)) await stream.onDrain()
    await stream.close()
    writes.stop()
    assert.ok(writes.lengthsAlone >= 8, `expected the stock stack to write lengths alone, saw ${writes.lengthsAlone}`)
  })

  it('leave the socket uncorked after every send, empty buffers and exact 64 KiB boundaries included', () => {
    // Node counts corks: one cork too many and the socket holds every later byte
    let depth = 0
    let maxDepth = 0
    const written: Buffer[] = []
    const socket = {
      writableNeedDrain: false,
      cork () { depth++; maxDepth = Math.max(maxDepth, depth) },
      uncork () { depth-- },
      write (buf: Uint8Array) { written.push(Buffer.from(buf)); return true }
    }
    const original = (_data: Uint8ArrayList): { sentBytes: number, canSendMore: boolean } => { throw new Error('a send of several buffers goes around the original') }
    const connection = corkSends({ socket, sendData: original })
    const sends = [
      [Buffer.alloc(2, 1), Buffer.alloc(0), Buffer.alloc(64 * 1024 - 2, 2), Buffer.alloc(0)],
      [Buffer.alloc(0), Buffer.alloc(2, 3), Buffer.alloc(65519, 4), Buffer.alloc(2, 5), Buffer.alloc(100, 6)],
      [Buffer.alloc(0), Buffer.alloc(0)]
    ]
    for (const bufs of sends) {
      const result = connection.sendData(new Uint8ArrayList(...bufs))
      assert.equal(depth, 0, 'corks and uncorks pair up')
      assert.deepEqual(result, { sentBytes: bufs.reduce((n, b) => n + b.byteLength, 0), canSendMore: true })
    }
    assert.equal(maxDepth, 1, 'never corked twice')
    assert.ok(Buffer.concat(written).equals(Buffer.concat(sends.flat())), 'every byte written, in order')
  })
})
