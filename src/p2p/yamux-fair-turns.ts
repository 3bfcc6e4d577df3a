/**
 * Fair turns for the streams of a busy connection. libp2p's muxer (@libp2p/utils 7.4) wakes
 * every stream, in the order they were opened, when the connection drains; the first one with
 * bytes queued fills it again (one yamux frame: all it had queued, up to its window), and the
 * others are told to wait for the next drain. So the oldest streams with data always went first,
 * and a stream opened while NARs were streaming (a new NAR stream's protocol reply, a ping) waited
 * until every older one had nothing queued. Measured with A's link at 20 Mbit/s and B's Nix
 * substituting 100 paths of 0.5–4 MiB, 25 at once: NAR streams got no byte for 20 s (B gave them
 * up as stalled), A gave up waiting for their requests (10 s), A's pings to B timed out (30 s) and
 * A closed the connection: Nix got 404s for 18–34 paths and failed, 10 runs of 10. Now the stream
 * that filled the connection goes to the back of the order, and a frame carries at most one
 * Noise message, so a stream with bytes queued waits for at most one message of each other busy
 * stream. The 1 GiB NAR benchmark showed no cost (`npm run bench -- --only nar --runs 2`,
 * alternating with the code before, two rounds each).
 */
import { AbstractStreamMuxer } from '@libp2p/utils'
import { YamuxStream } from '@chainsafe/libp2p-yamux/stream'
import { MAX_NOISE_PLAINTEXT } from './noise-copies.js'
import type { Uint8ArrayList } from 'uint8arraylist'

/** Yamux's frame header. */
const YAMUX_HEADER_BYTES = 12

/**
 * The most bytes one data frame carries: with its 12-byte header, one whole Noise message
 * (65,519 bytes of plaintext). A frame of 64 KiB took two messages, the second of 29 bytes.
 */
export const MAX_FRAME_BYTES = MAX_NOISE_PLAINTEXT - YAMUX_HEADER_BYTES

interface SendResult { sentBytes: number, canSendMore: boolean }
type SendData = (this: object, buf: Uint8ArrayList) => SendResult
type MuxerSend = (this: { streams: object[] }, data: unknown) => boolean

let installed = false
/** The stream whose frame the muxer is sending now (sends are synchronous). */
let sender: object | undefined

export function fairMuxerTurns (): void {
  if (installed) return
  installed = true
  const streamProto = YamuxStream.prototype as unknown as { sendData: SendData }
  const muxerProto = AbstractStreamMuxer.prototype as unknown as { send: MuxerSend }
  const sendData = streamProto.sendData
  const send = muxerProto.send
  if (typeof sendData !== 'function' || typeof send !== 'function') return
  streamProto.sendData = function (buf) {
    const outer = sender
    sender = this
    try {
      // The rest stays in the stream's write buffer and goes in its next turn.
      return sendData.call(this, buf.byteLength > MAX_FRAME_BYTES ? buf.sublist(0, MAX_FRAME_BYTES) : buf)
    } finally {
      sender = outer
    }
  }
  muxerProto.send = function (data) {
    const more = send.call(this, data)
    if (!more && sender !== undefined) {
      const at = this.streams.indexOf(sender)
      if (at >= 0 && at < this.streams.length - 1) {
        this.streams.splice(at, 1)
        this.streams.push(sender)
      }
    }
    return more
  }
}
