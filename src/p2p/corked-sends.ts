/**
 * Gathered socket writes on our TCP connections. Noise hands the connection every message as
 * two buffers, its 2-byte length and its ciphertext (a 256 KiB send is four messages), and
 * @libp2p/tcp writes each buffer with a socket write of its own; with Nagle's algorithm off
 * (libp2p sets TCP_NODELAY) each length goes out as a syscall and a TCP segment of its own.
 * Corked, a message's length and ciphertext leave in one `writev`, and small messages sent
 * together (window updates, narinfo answers) share one. A whole send in one write was tried:
 * it held the first message back until the last was encrypted, and the bare stream of
 * `npm run bench -- --only nar` ran at 303–363 MiB/s against 486–544 flushed per message (two
 * runs each, alternating, a temporary switch); against plain writes the difference stayed
 * inside this machine's noise (bare stream 280–465 against 277–433 MiB/s).
 *
 * The connection encrypter is the first to hold the raw connection, so it is wrapped
 * (`wrap-encrypter.ts`): the connection's `sendData` (what its message stream calls for every
 * send) is replaced on the instance before Noise sees it. A connection without a socket to cork is left alone.
 */
import { wrapEncrypter } from './wrap-encrypter.js'
import type { ConnectionEncrypter } from '@libp2p/interface'

/** The parts of @libp2p/tcp's socket used here. */
interface CorkableSocket {
  cork: () => void
  uncork: () => void
  write: (buf: Uint8Array) => boolean
  writableNeedDrain: boolean
}

/** The parts of @libp2p/tcp's connection used here; plain properties at run time. */
interface SocketConnection {
  socket?: Partial<CorkableSocket>
  sendData?: (data: Iterable<Uint8Array> & { byteLength: number, bufs?: unknown[] }) => { sentBytes: number, canSendMore: boolean }
}

function corkable (socket: Partial<CorkableSocket> | undefined): socket is CorkableSocket {
  return typeof socket?.cork === 'function' && typeof socket.uncork === 'function' && typeof socket.write === 'function'
}

/** `encrypter`, securing connections whose sends were made single socket writes. */
export function corkedSends<C, E> (encrypter: (components: C) => ConnectionEncrypter<E>): (components: C) => ConnectionEncrypter<E> {
  return wrapEncrypter(encrypter, { raw: corkSends })
}

/** Bytes gathered before they go to the socket: one Noise message (a length and up to 64 KiB). */
const FLUSH_BYTES = 64 * 1024

/** Makes a connection's sends gathered socket writes; exported for the tests. */
export function corkSends<T> (connection: T): T {
  const conn = connection as SocketConnection
  const socket = conn.socket
  const sendData = conn.sendData
  if (!corkable(socket) || typeof sendData !== 'function') return connection
  // All of a send goes to the socket, not only the part that fits under its high-water mark
  // (16 KiB, so a send would stop after one message and wait for 'drain'): the bytes were
  // queued anyway, and the muxer above stops sending once the socket needs draining.
  conn.sendData = function (data) {
    if ((data.bufs?.length ?? 0) < 2) return sendData.call(this, data)
    // cork and uncork pair up: Node counts corks, and one left over would hold the socket
    let corked = false
    let gathered = 0
    try {
      for (const buf of data) {
        if (!corked) socket.cork()
        corked = true
        socket.write(buf)
        gathered += buf.byteLength
        if (gathered >= FLUSH_BYTES) {
          socket.uncork()
          corked = false
          gathered = 0
        }
      }
    } finally {
      if (corked) socket.uncork()
    }
    return { sentBytes: data.byteLength, canSendMore: !socket.writableNeedDrain }
  }
  return connection
}
