/** The substituter's view of the peers (PeerClient) over a running peerix node. */
import { peerIdFromString } from '@libp2p/peer-id'
import type { Answer, NarBody, PeerClient } from './peer-client.js'
import type { PeerixNode } from './node.js'
import type { PeerId } from '@libp2p/interface'

export class Libp2pPeerClient implements PeerClient {
  readonly #node: PeerixNode

  constructor (node: PeerixNode) {
    this.#node = node
  }

  /** Connected peers whose identify listed /peerix/narinfo/1. */
  peers (): string[] {
    return this.#node.services.peerixPeers.list().map(String)
  }

  async narInfo (peer: string, hashPart: string, signal: AbortSignal): Promise<Answer<string>> {
    const peerId = toPeerId(peer)
    if (peerId === undefined) return notAPeer(peer)
    return await this.#node.services.narinfo.query(peerId, hashPart, { signal })
  }

  async nar (peer: string, hashPart: string, narHash: string, offset: number, signal: AbortSignal, options: { acceptZstd?: boolean } = {}): Promise<Answer<NarBody>> {
    const peerId = toPeerId(peer)
    if (peerId === undefined) return notAPeer(peer)
    return await this.#node.services.nar.fetch(peerId, hashPart, narHash, offset, { signal, acceptZstd: options.acceptZstd })
  }
}

function toPeerId (text: string): PeerId | undefined {
  try {
    return peerIdFromString(text)
  } catch {
    return undefined
  }
}

function notAPeer (text: string): Answer<never> {
  return { status: 'error', message: `${JSON.stringify(text)} is not a libp2p peer ID` }
}
