/**
 * Yamux window updates only when half the receive window is used up, as Go's yamux (the
 * reference implementation) sends them.
 *
 * @chainsafe/libp2p-yamux 8 sends a window update after every data frame it receives. Each
 * is a 12-byte frame that costs a Noise message and a socket write on the receiver and a
 * decrypt on the sender: for a NAR, one per ~64 KiB, tens of thousands per GiB — measured as
 * 3 % of the shim daemon's CPU while it streams (bench/profile-nar.ts). Holding an update back
 * until the unused window drops below half never stalls the sender: it may still send the
 * other half, and the update then goes out with the next frame it sends.
 *
 * The library gives no option for this, so the one method is wrapped on its exported stream
 * class, once, before any stream exists. Opening, closing and pausing (which need their
 * flags or their own rules) still go through the library's code unchanged.
 */
import { StreamState, YamuxStream } from '@chainsafe/libp2p-yamux/stream'

/** The fields the wrapper reads; private in the library's types, plain properties at run time. */
interface WindowState {
  state: StreamState
  recvWindow: number
  recvWindowCapacity: number
}

let installed = false

/** Wraps YamuxStream's window update so that it skips updates below half the window. */
export function batchYamuxWindowUpdates (): void {
  if (installed) return
  installed = true
  const proto = YamuxStream.prototype as unknown as { sendWindowUpdate: (this: WindowState) => void }
  const sendWindowUpdate = proto.sendWindowUpdate
  if (typeof sendWindowUpdate !== 'function') return
  proto.sendWindowUpdate = function (this: WindowState): void {
    const established = this.state === StreamState.Established
    if (established && this.recvWindowCapacity > this.recvWindow / 2) return
    sendWindowUpdate.call(this)
  }
}
