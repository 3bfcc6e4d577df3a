/** What the peerix node tests share: a fixture store, nodes on loopback that are stopped after each test, polling. */
import { createHash } from 'node:crypto'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { identify, type Identify } from '@libp2p/identify'
import { tcp } from '@libp2p/tcp'
import { createLibp2p, type ServiceFactoryMap } from 'libp2p'
import { createLogger, type Logger } from '../../src/log.js'
import { formatSha256Nix32 } from '../../src/nix/hash.js'
import { toNix32 } from '../../src/nix/nix32.js'
import { createPeerixNode, type PeerixNode, type PeerixNodeOptions } from '../../src/p2p/node.js'
import type { NarInfo } from '../../src/nix/narinfo.js'
import type { NarBytes, NarInfoOptions, PathSource, Served, ServedNarInfo } from '../../src/store/source.js'
import type { Libp2p, PeerId, PrivateKey, ServiceMap, Stream } from '@libp2p/interface'

/** `bytes` as a NAR handed out by a store, in pieces of at most `pieceBytes`. */
function bytesFrom (bytes: Uint8Array, pieceBytes: number): NarBytes {
  return {
    length: bytes.length,
    stream: (async function * () {
      for (let at = 0; at < bytes.length; at += pieceBytes) yield bytes.subarray(at, at + pieceBytes)
    })()
  }
}

/**
 * A store of narinfos and NAR bytes kept in memory, answering every peer alike; a NAR comes
 * in one piece, or in pieces of `pieceBytes` as a store reading files yields it.
 */
export class MemorySource implements PathSource {
  readonly infos = new Map<string, NarInfo>()
  readonly nars = new Map<string, Uint8Array>()

  constructor (readonly pieceBytes = Number.MAX_SAFE_INTEGER) {}

  /** Adds a NAR of `bytes` under a hash part made from `label`; returns what a fetch names it by. */
  add (label: string, bytes: Uint8Array): { hashPart: string, narHash: string } {
    const hashPart = hashPartOf(label)
    const narHash = narHashOf(bytes)
    this.nars.set(hashPart, bytes)
    this.infos.set(hashPart, { storePath: `/nix/store/${hashPart}-${label}`, url: `nar/${hashPart}.nar`, compression: 'none', narHash, narSize: bytes.byteLength, references: [], sigs: [] })
    return { hashPart, narHash }
  }

  async narInfo (hashPart: string, _peer?: string, options: NarInfoOptions = {}): Promise<ServedNarInfo> {
    const info = this.infos.get(hashPart)
    if (info === undefined) return { status: 'absent' }
    const bytes = this.nars.get(hashPart)
    const small = bytes !== undefined && options.narUpTo !== undefined && info.narSize <= options.narUpTo
    return small ? { status: 'found', value: info, nar: bytesFrom(bytes, this.pieceBytes) } : { status: 'found', value: info }
  }

  async nar (hashPart: string, narHash: string, offset: number): Promise<Served<NarBytes>> {
    const bytes = this.nars.get(hashPart)
    if (bytes === undefined || this.infos.get(hashPart)?.narHash !== narHash) return { status: 'absent' }
    return { status: 'found', value: bytesFrom(bytes.subarray(offset), this.pieceBytes) }
  }
}

/** Log lines kept in memory with the time they were written. */
export class LogLines {
  readonly lines: Array<{ at: number, line: string }> = []
  readonly logger: Logger = createLogger('debug', (line) => { this.lines.push({ at: Date.now(), line }) })

  matching (re: RegExp): Array<{ at: number, line: string }> {
    return this.lines.filter(l => re.test(l.line))
  }
}

/**
 * A stock libp2p node on loopback (TCP, Noise, yamux) with the given services: what the
 * protocol tests run their services on. The caller stops it.
 */
export async function loopbackNode <T extends ServiceMap = ServiceMap> (services?: ServiceFactoryMap<T>, privateKey?: PrivateKey): Promise<Libp2p<T>> {
  return await createLibp2p({
    privateKey,
    addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    services
  })
}

/** The streams of `protocol` that `node` has open to `peer` right now. */
export function streamsOf (node: Libp2p, peer: PeerId, protocol: string): Stream[] {
  return node.getConnections(peer).flatMap(c => c.streams).filter(s => s.protocol === protocol)
}

/** The status a stream ends in: 'reset' when the remote reset it, 'closed' when it closed cleanly. */
export async function ending (stream: Stream, within: number): Promise<string> {
  if (stream.status === 'open' || stream.status === 'closing') {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => { reject(new Error(`stream still ${stream.status} after ${within} ms`)) }, within)
      stream.addEventListener('close', () => { clearTimeout(timer); resolve() }, { once: true })
    })
  }
  return stream.status
}

/** Starts nodes and stops every one of them in `stopAll` (call it in afterEach). */
export class Nodes {
  readonly #running: Array<{ stop: () => void | Promise<void> }> = []

  async peerix (opts: Partial<PeerixNodeOptions> = {}): Promise<PeerixNode> {
    const node = await createPeerixNode({
      privateKey: opts.privateKey ?? await generateKeyPair('Ed25519'),
      listen: ['/ip4/127.0.0.1/tcp/0'],
      mdns: false,
      source: new MemorySource(),
      ...opts
    })
    this.#running.push(node)
    return node
  }

  /** A stock libp2p node that speaks identify but none of peerix's protocols. */
  async plain (privateKey?: PrivateKey): Promise<Libp2p<{ identify: Identify }>> {
    const node = await loopbackNode({ identify: identify() }, privateKey)
    this.#running.push(node)
    return node
  }

  async stopAll (): Promise<void> {
    await Promise.all(this.#running.splice(0).map(async node => { await node.stop() }))
  }
}

/** Resolves once `check` holds, polling; rejects naming `what` after `timeoutMs`. */
export async function eventually (what: string, check: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 25))
  }
}

/** The TCP port a node listens on (its first address). */
export function portOf (node: Libp2p): number {
  return Number(node.getMultiaddrs()[0].getComponents().find(c => c.name === 'tcp')?.value)
}

/** A store hash part made from `label`. */
export function hashPartOf (label: string): string {
  return toNix32(createHash('sha256').update(label).digest().subarray(0, 20))
}

/** The NarHash of `bytes` as a narinfo writes it. */
export function narHashOf (bytes: Uint8Array): string {
  return formatSha256Nix32(createHash('sha256').update(bytes).digest())
}

/** Two connected peerix nodes, the server holding a NAR of `bytes`; `fetchAll` pulls all of it. */
export async function servedNar (nodes: Nodes, label: string, bytes: Uint8Array): Promise<{ server: PeerixNode, client: PeerixNode, hashPart: string, narHash: string, fetchAll: () => Promise<Buffer> }> {
  const source = new MemorySource()
  const { hashPart, narHash } = source.add(label, bytes)
  const server = await nodes.peerix({ source })
  const client = await nodes.peerix()
  await client.dial(server.getMultiaddrs()[0])
  const fetchAll = async (): Promise<Buffer> => {
    const answer = await client.services.nar.fetch(server.peerId, hashPart, narHash, 0)
    if (answer.status !== 'found') throw new Error(`expected the NAR, got ${JSON.stringify(answer)}`)
    const chunks: Uint8Array[] = []
    for await (const chunk of answer.value) chunks.push(chunk)
    return Buffer.concat(chunks)
  }
  return { server, client, hashPart, narHash, fetchAll }
}
