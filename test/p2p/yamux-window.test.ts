import '../../src/polyfill.js'
import assert from 'node:assert/strict'
import { YamuxStream } from '@chainsafe/libp2p-yamux/stream'
import { batchYamuxWindowUpdates } from '../../src/p2p/yamux-window.js'
import { loopbackNode } from './node-helpers.js'
import type { Libp2p, Stream } from '@libp2p/interface'

const PROTOCOL = '/peerix-test/bytes/1'
const WINDOW_UPDATE = 1 // yamux frame type

describe('yamux window updates', function () {
  let nodes: Libp2p[] = []

  afterEach(async () => {
    await Promise.all(nodes.map(async n => { await n.stop() }))
    nodes = []
  })

  async function node (): Promise<Libp2p> {
    const n = await loopbackNode()
    nodes.push(n)
    return n
  }

  it('are sent once half the window is used, not after every data frame, and never stall a transfer', async () => {
    batchYamuxWindowUpdates()
    const sender = await node()
    const receiver = await node()
    const total = 8 * 1024 * 1024
    const piece = new Uint8Array(64 * 1024).fill(7)
    let windowUpdates = 0
    let dataFrames = 0
    let delivered = (_bytes: number): void => {}
    const received = new Promise<number>(resolve => { delivered = resolve })
    await receiver.handle(PROTOCOL, async (stream: Stream) => {
      assert.ok(stream instanceof YamuxStream, 'the handler gets the yamux stream itself')
      const target = stream as unknown as { sendFrame: (frame: { type: number }) => boolean, handleData: (frame: unknown) => void }
      const sendFrame = target.sendFrame
      target.sendFrame = (frame) => {
        if (frame.type === WINDOW_UPDATE) windowUpdates++
        return sendFrame(frame)
      }
      const handleData = target.handleData.bind(stream)
      target.handleData = (frame) => {
        dataFrames++
        handleData(frame)
      }
      let bytes = 0
      for await (const chunk of stream) bytes += chunk.byteLength
      delivered(bytes)
      await stream.close()
    })
    const stream = await sender.dialProtocol(receiver.getMultiaddrs()[0], PROTOCOL)
    for (let sent = 0; sent < total; sent += piece.byteLength) {
      if (!stream.send(piece)) await stream.onDrain()
    }
    await stream.close()
    assert.equal(await received, total)
    // at most one update per half of the initial 256 KiB window, plus opening and closing;
    // the library alone sends one per data frame (37 for 36 frames when this test was written)
    assert.ok(windowUpdates <= total / (128 * 1024) + 4, `${windowUpdates} window updates for ${dataFrames} data frames`)
    assert.ok(windowUpdates < dataFrames / 2, `${windowUpdates} window updates for ${dataFrames} data frames`)
  })
})
