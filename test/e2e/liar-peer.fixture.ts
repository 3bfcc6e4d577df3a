/**
 * A lying peer for the lying-peer test, run in a lab host's namespace: a real peerix libp2p
 * node (found by mDNS like any daemon) serving a real chroot store whose paths carry genuine
 * signatures by a key the victim trusts, but each path it is asked for gets one lie:
 *
 * - `other-path`: the genuine, signed narinfo of a different path
 * - `nar-size`: the genuine narinfo with its NarSize changed (the signature no longer covers it)
 * - `wrong-bytes`: the right narinfo; the NAR has one byte flipped in its middle
 * - `small-wrong-bytes`: the same for a NAR small enough to be sent with its narinfo
 * - `short`: the NAR announced and sent only up to its middle, then a clean end
 * - `endless`: the NAR announced as endless, its bytes followed by junk forever
 * - `stall`: half the NAR, then nothing, forever
 *
 * Args (JSON): { storeRoot, lies: { <hashPart>: <lie> } }. Prints `{ id }` once started, and a
 * `{ lied: <lie>, hashPart }` line for each lie told. Stops on SIGTERM.
 */
import '../../src/polyfill.js'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { createPeerixNode } from '../../src/p2p/node.js'
import { LocalStore } from '../../src/store/local-store.js'
import { generateSecretKey } from '../../src/nix/signing.js'
import type { NarBytes, NarInfoOptions, PathSource, Served, ServedNarInfo } from '../../src/store/source.js'

export type Lie = 'other-path' | 'nar-size' | 'wrong-bytes' | 'small-wrong-bytes' | 'short' | 'endless' | 'stall'
export interface LiarArgs { storeRoot: string, lies: Record<string, Lie> }

const print = (value: unknown): void => { process.stdout.write(JSON.stringify(value) + '\n') }
const args = JSON.parse(process.argv[2]) as LiarArgs

/** Its own signature is by a key nobody trusts; the genuine ones in the store stay. */
const store = LocalStore.open({ storeRoot: args.storeRoot, signingKey: generateSecretKey('liar-1') })

async function * concat (...parts: Array<AsyncIterable<Uint8Array>>): AsyncGenerator<Uint8Array> {
  for (const part of parts) yield * part
}

async function * junkForever (): AsyncGenerator<Uint8Array> {
  const junk = new Uint8Array(64 * 1024).fill(0x5a)
  for (;;) yield junk
}

async function * stallForever (): AsyncGenerator<Uint8Array> {
  await new Promise(() => {})
}

/** The first `limit` bytes of `stream`, then `then`. */
async function * upTo (stream: AsyncIterable<Uint8Array>, limit: number, flip?: number): AsyncGenerator<Uint8Array> {
  let at = 0
  for await (const chunk of stream) {
    const piece = Uint8Array.from(chunk.subarray(0, Math.max(0, limit - at)))
    if (flip !== undefined && flip >= at && flip < at + piece.length) piece[flip - at] ^= 0xff
    at += piece.length
    if (piece.length > 0) yield piece
    if (at >= limit) return
  }
}

/** The NAR as the lie for `hashPart` has it: the same bytes when there is none. */
function lieAbout (hashPart: string, nar: NarBytes): NarBytes {
  const lie = args.lies[hashPart]
  const { length, stream } = nar
  const half = Math.floor(length / 2)
  switch (lie) {
    case 'wrong-bytes':
    case 'small-wrong-bytes': return told(lie, hashPart, { length, stream: upTo(stream, length, half) })
    case 'short': return told(lie, hashPart, { length: half, stream: upTo(stream, half) })
    case 'endless': return told(lie, hashPart, { length: Number.MAX_SAFE_INTEGER, stream: concat(stream, junkForever()) })
    case 'stall': return told(lie, hashPart, { length, stream: concat(upTo(stream, half), stallForever()) })
    default: return nar
  }
}

function told<T> (lie: Lie, hashPart: string, value: T): T {
  print({ lied: lie, hashPart })
  return value
}

const liar: PathSource = {
  async narInfo (hashPart: string, peer: string, options?: NarInfoOptions): Promise<ServedNarInfo> {
    const lie = args.lies[hashPart]
    const answer = await store.narInfo(hashPart, peer, options)
    if (answer.status !== 'found') return answer
    if (lie === 'other-path') {
      const other = Object.keys(args.lies).find(h => h !== hashPart) as string
      return told(lie, hashPart, await store.narInfo(other, peer))
    }
    if (lie === 'nar-size') return told(lie, hashPart, { status: 'found', value: { ...answer.value, narSize: answer.value.narSize + 8 } })
    return answer.nar === undefined ? answer : { ...answer, nar: lieAbout(hashPart, answer.nar) }
  },

  async nar (hashPart: string, narHash: string, offset: number, peer: string, signal?: AbortSignal): Promise<Served<NarBytes>> {
    const answer = await store.nar(hashPart, narHash, offset, peer, signal)
    return answer.status === 'found' ? { status: 'found', value: lieAbout(hashPart, answer.value) } : answer
  }
}

const node = await createPeerixNode({
  privateKey: await generateKeyPair('Ed25519'),
  listen: ['/ip4/0.0.0.0/tcp/12305'],
  mdns: true,
  source: liar
})
print({ id: node.peerId.toString() })
process.once('SIGTERM', () => {
  void (async () => {
    await node.stop()
    store.close()
    process.exit(0)
  })()
})
