/**
 * One socket write per send on our TCP connections. Noise hands the connection every message
 * as two buffers, its 2-byte length and its ciphertext (a 256 KiB send is four messages), and
 * @libp2p/tcp writes each buffer with a socket write of its own; with Nagle's algorithm off
 * (libp2p sets TCP_NODELAY) each length goes out as a syscall and a TCP segment of its own.
 * Corked, the whole send is one `writev`: 16 MiB sent in 256 KiB pieces between two nodes took
 * 18 socket writes instead of 514 (test/p2p/corked-sends.test.ts counts them for a NAR). On
 * loopback the CPU this saves is inside this machine's noise: 1 GiB from memory between two nodes in one process ran
 * at 300–360 MiB/s corked and 264–335 uncorked (6 runs each, alternating), and
 * `npm run bench -- --only nar` showed no difference beyond its spread either way.
 *
 * The connection encrypter is the first to hold the raw connection, so it is wrapped: the
 * connection's `sendData` (what its message stream calls for every send) is replaced on the
 * instance before Noise sees it. A connection without a socket to cork is left alone.
 */
import type { ConnectionEncrypter, MessageStream, SecureConnectionOptions, SecuredConnection } from '@libp2p/interface'

/** The parts of @libp2p/tcp's connection used here; plain properties at run time. */
interface SocketConnection {
  socket?: { cork?: () => void, uncork?: () => void, write?: (buf: Uint8Array) => boolean, writableNeedDrain?: boolean }
  sendData?: (data: Iterable<Uint8Array> & { byteLength: number, bufs?: unknown[] }) => { sentBytes: number, canSendMore: boolean }
}

/** `encrypter`, securing connections whose sends were made single socket writes. */
export function corkedSends<C, E> (encrypter: (components: C) => ConnectionEncrypter<E>): (components: C) => ConnectionEncrypter<E> {
  return (components) => {
    const inner = encrypter(components)
    return {
      protocol: inner.protocol,
      [Symbol.toStringTag]: String((inner as { [Symbol.toStringTag]?: string })[Symbol.toStringTag] ?? inner.protocol),
      secureInbound: async (connection: MessageStream, options?: SecureConnectionOptions): Promise<SecuredConnection<E>> => {
        return await inner.secureInbound(cork(connection), options)
      },
      secureOutbound: async (connection: MessageStream, options?: SecureConnectionOptions): Promise<SecuredConnection<E>> => {
        return await inner.secureOutbound(cork(connection), options)
      }
    }
  }
}

function cork<T> (connection: T): T {
  const conn = connection as SocketConnection
  const socket = conn.socket
  const sendData = conn.sendData
  if (typeof socket?.cork !== 'function' || typeof socket.uncork !== 'function' || typeof socket.write !== 'function' || typeof sendData !== 'function') return connection
  // All of a send goes to the socket, not only the part that fits under its high-water mark
  // (16 KiB, so a corked send would stop after one message and wait for 'drain'): the bytes
  // were queued anyway, and the muxer above stops sending once the socket needs draining.
  conn.sendData = function (data) {
    if ((data.bufs?.length ?? 0) < 2) return sendData.call(this, data)
    socket.cork?.()
    try {
      for (const buf of data) socket.write?.(buf)
    } finally {
      socket.uncork?.()
    }
    return { sentBytes: data.byteLength, canSendMore: socket.writableNeedDrain !== true }
  }
  return connection
}
