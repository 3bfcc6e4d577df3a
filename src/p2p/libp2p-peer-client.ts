/** The substituter's view of the peers (PeerClient) over a running peerix node. */
import { peerIdFromString } from '@libp2p/peer-id'
import type { Answer, NarBody, NarInfoAnswer, NarOptions, PeerClient } from './peer-client.js'
import type { PeerixNode } from './node.js'
import type { PeerId } from '@libp2p/interface'

/** Peer IDs remembered by their text; more are forgotten all at once (peers are few). */
const MAX_REMEMBERED_IDS = 1024

/** How long a probe (a ping) may take: a peer slower than this is not waited for anyway. */
const PROBE_TIMEOUT_MS = 10_000

export class Libp2pPeerClient implements PeerClient {
  readonly #node: PeerixNode
  /**
   * The PeerIds behind the texts handed out, so that a request does not parse its peer's ID
   * again (and the stream pool print it again): that took 0.1–0.16 ms of every NAR request
   * through the shim (timestamps in both daemons, curl asking a 1 KiB NAR, 4.2 ms in all).
   */
  readonly #ids = new Map<string, PeerId>()
  /** Peers a probe is out to: one at a time each. */
  readonly #probing = new Set<string>()

  constructor (node: PeerixNode) {
    this.#node = node
  }

  /** Connected peers whose identify listed /peerix/narinfo/1. */
  peers (): string[] {
    return this.#node.services.peerixPeers.list().map(id => this.#remember(id.toString(), id))
  }

  async narInfo (peer: string, hashPart: string, signal: AbortSignal, options: { maxNarBytes?: number } = {}): Promise<NarInfoAnswer> {
    const peerId = this.#peerId(peer)
    if (peerId === undefined) return notAPeer(peer)
    return await this.#node.services.narinfo.query(peerId, hashPart, { signal, maxNarBytes: options.maxNarBytes })
  }

  async nar (peer: string, hashPart: string, narHash: string, offset: number, signal: AbortSignal, options: NarOptions = {}): Promise<Answer<NarBody>> {
    const peerId = this.#peerId(peer)
    if (peerId === undefined) return notAPeer(peer)
    return await this.#node.services.nar.fetch(peerId, hashPart, narHash, offset, { signal, acceptZstd: options.acceptZstd, onQueued: options.onQueued })
  }

  lastHeard (peer: string): number | undefined {
    return this.#node.services.liveness.lastHeard(peer)
  }

  probe (peer: string): void {
    const peerId = this.#peerId(peer)
    if (peerId === undefined || this.#probing.has(peer)) return
    this.#probing.add(peer)
    // The reply is what counts (in lastHeard); a ping that fails tells nothing more.
    void this.#node.services.ping.ping(peerId, { signal: AbortSignal.timeout(PROBE_TIMEOUT_MS) })
      .catch(() => {})
      .finally(() => { this.#probing.delete(peer) })
  }

  #peerId (text: string): PeerId | undefined {
    const known = this.#ids.get(text)
    if (known !== undefined) return known
    const parsed = toPeerId(text)
    if (parsed !== undefined) this.#remember(text, parsed)
    return parsed
  }

  #remember (text: string, id: PeerId): string {
    if (this.#ids.get(text) !== id) {
      if (this.#ids.size >= MAX_REMEMBERED_IDS) this.#ids.clear()
      this.#ids.set(text, id)
    }
    return text
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
