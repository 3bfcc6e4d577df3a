/**
 * When each peer last sent us bytes, over any of its connections: any protocol's frames, a
 * yamux window update, a ping's reply. A narinfo lookup uses it to tell a peer that is slow
 * (a lossy Wi-Fi link, a busy host: its bytes keep coming) from one that is gone (frozen,
 * cut off: nothing comes), and waits longer only for the first.
 */
import type { ConnectionEncrypter, MessageStream, PeerId } from '@libp2p/interface'
import type { Uint8ArrayList } from 'uint8arraylist'
import { wrapEncrypter } from './wrap-encrypter.js'

export class PeerLiveness {
  readonly #lastHeard = new Map<string, number>()

  /** When bytes last came from `peer` (ms since the epoch), or undefined when none since it connected. */
  lastHeard (peer: string): number | undefined {
    return this.#lastHeard.get(peer)
  }

  /**
   * Notes the bytes `raw` (the connection beneath `secured`, from `peer`) receives, as they
   * come: an encrypted message of 64 KiB takes a second to cross a slow link, and is handed
   * on only whole. The stream's `onData`, where the transport hands over each read, is wrapped
   * on the instance: a 'message' listener would not do, as a stream with one starts
   * delivering, to it alone. A stream without `onData` (another libp2p version) is not watched:
   * its peer is never waited for. The peer is forgotten when the connection closes.
   */
  watch (secured: MessageStream, peer: PeerId, raw: MessageStream): void {
    const stream = raw as MessageStream & { onData?: (data: Uint8Array | Uint8ArrayList) => void }
    const onData = stream.onData
    if (typeof onData !== 'function') return
    const key = peer.toString()
    stream.onData = (data) => {
      this.#lastHeard.set(key, Date.now())
      onData.call(stream, data)
    }
    secured.addEventListener('close', () => { this.#lastHeard.delete(key) }, { once: true })
  }

  /** `encrypter`, whose secured connections this watches. */
  watching<C, E> (encrypter: (components: C) => ConnectionEncrypter<E>): (components: C) => ConnectionEncrypter<E> {
    return wrapEncrypter(encrypter, {
      secured: (connection, peer, raw) => {
        this.watch(connection, peer, raw)
        return connection
      }
    })
  }
}
