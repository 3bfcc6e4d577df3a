/**
 * A connection encrypter whose connections are adjusted around it: the raw connection before
 * the encrypter sees it, the secured one after. The encrypter is the first to hold the raw
 * connection and the last to hold the secured one, so this is where peerix reaches both.
 */
import type { ConnectionEncrypter, MessageStream, PeerId, SecureConnectionOptions, SecuredConnection } from '@libp2p/interface'

export interface EncrypterHooks {
  /** Applied to the raw connection (TCP) before the encrypter secures it. */
  raw?: (connection: MessageStream) => MessageStream
  /**
   * Applied to the message stream the encrypter returns, with the remote peer it authenticated
   * and the raw connection beneath (as it came to this wrapper).
   */
  secured?: (connection: MessageStream, remotePeer: PeerId, raw: MessageStream) => MessageStream
}

export function wrapEncrypter<C, E> (encrypter: (components: C) => ConnectionEncrypter<E>, hooks: EncrypterHooks): (components: C) => ConnectionEncrypter<E> {
  const raw = hooks.raw ?? ((connection) => connection)
  const secured = async (connection: MessageStream, result: Promise<SecuredConnection<E>>): Promise<SecuredConnection<E>> => {
    const done = await result
    if (hooks.secured !== undefined) done.connection = hooks.secured(done.connection, done.remotePeer, connection)
    return done
  }
  return (components) => {
    const inner = encrypter(components)
    return {
      protocol: inner.protocol,
      [Symbol.toStringTag]: String((inner as { [Symbol.toStringTag]?: string })[Symbol.toStringTag] ?? inner.protocol),
      secureInbound: async (connection: MessageStream, options?: SecureConnectionOptions) => await secured(connection, inner.secureInbound(raw(connection), options)),
      secureOutbound: async (connection: MessageStream, options?: SecureConnectionOptions) => await secured(connection, inner.secureOutbound(raw(connection), options))
    }
  }
}
