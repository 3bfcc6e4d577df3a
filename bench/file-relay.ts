/**
 * The floor for a peer-to-peer copy of a closure: the least work any shim that fetches NARs
 * from a peer and checks them can do, for the closure benchmark to be read against.
 *
 * A's host serves files over a bench-only protocol, `/peerix-bench/file/1`, on the daemons'
 * own connection (TCP, Noise, yamux): one request after another on a stream kept open, each
 * answered with the file's length and its bytes read from disk. B's host runs an HTTP server
 * for Nix over the static cache's directory: `nix-cache-info` and narinfos come from the local
 * disk (as if B knew every answer without asking), and each NAR is pulled from A over that
 * protocol, SHA-256 over every byte as it passes, written to Nix with the shim's own batched
 * writer. No signatures, no database, no NAR writer, no index, no failover: per NAR one round
 * trip and per byte Noise both ways, a hash and the loopback HTTP hop.
 *
 * For benchmark hosts on loopback only: A serves any file it is asked for.
 */
import { closeSync, fstatSync, openSync, read, readFileSync } from 'node:fs'
import { readFile, stat } from 'node:fs/promises'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join, normalize } from 'node:path'
import { READ_BUFFER_LIMIT, READ_HIGH_WATER_MARK, SEND_CHUNK_BYTES, SEND_STALL_TIMEOUT } from '../src/p2p/nar/constants.js'
import { send } from '../src/p2p/wire/send.js'
import { StreamPool, type PooledStream } from '../src/p2p/wire/stream-pool.js'
import { StreamReader } from '../src/p2p/wire/stream-reader.js'
import { relayHashed } from './bare-relay.js'
import { sendFrame, serve } from './p2p-transfers.js'
import type { PeerixNode } from '../src/p2p/node.js'
import type { PeerId, Stream } from '@libp2p/interface'

export const FILE_PROTOCOL = '/peerix-bench/file/1'
const MAX_FRAME = 4096
const IDLE_TIMEOUT = 30_000
const SMALL_FILE_BYTES = 64 * 1024
/** Idle streams kept to the peer; Nix copies one or two NARs at a time. */
const IDLE_STREAMS = 16

interface FileRequest { file: string }
/** The file's length in bytes, -1 when it cannot be opened; its bytes follow. */
interface FileAnswer { length: number }

/** A's side: answers each request on a stream with the file's length and bytes, until the stream ends. */
export async function handleFileProtocol (node: PeerixNode): Promise<void> {
  await node.handle(FILE_PROTOCOL, async (stream) => {
    await serve(stream, async ({ file }: FileRequest) => { await sendFile(stream, file) }, true)
  })
}

async function sendFile (stream: Stream, file: string): Promise<void> {
  let fd: number
  try {
    fd = openSync(file, 'r')
  } catch {
    await sendFrame(stream, { length: -1 } satisfies FileAnswer)
    return
  }
  try {
    const { size } = fstatSync(fd)
    // a small file (a narinfo) is read at once: no thread-pool round trips in a hit's floor
    if (size <= SMALL_FILE_BYTES) {
      const bytes = readFileSync(fd)
      await sendFrame(stream, { length: bytes.byteLength } satisfies FileAnswer)
      await send(stream, bytes, SEND_STALL_TIMEOUT)
      return
    }
    await sendFrame(stream, { length: size } satisfies FileAnswer)
    for (let offset = 0; offset < size;) {
      const buf = Buffer.allocUnsafe(Math.min(SEND_CHUNK_BYTES, size - offset))
      const bytesRead = await new Promise<number>((resolve, reject) => { read(fd, buf, 0, buf.byteLength, offset, (err, n) => { if (err != null) reject(err); else resolve(n) }) })
      if (bytesRead === 0) throw new Error(`${file} shrank while it was sent`)
      await send(stream, buf.subarray(0, bytesRead), SEND_STALL_TIMEOUT)
      offset += bytesRead
    }
  } finally {
    closeSync(fd)
  }
}

/** B's side: files pulled from one peer over streams kept open (the daemon's StreamPool), one request at a time on each. */
class FilePuller {
  readonly #pool: StreamPool

  constructor (node: PeerixNode, private readonly peer: PeerId) {
    this.#pool = new StreamPool({ openStream: async (peer, protocol, options) => await node.dialProtocol(peer, protocol, { signal: options?.signal }) }, {
      protocol: FILE_PROTOCOL,
      maxIdlePerPeer: IDLE_STREAMS,
      idleTimeout: IDLE_TIMEOUT,
      createReader: (stream) => {
        stream.maxReadBufferLength = Math.max(stream.maxReadBufferLength, READ_BUFFER_LIMIT)
        return new StreamReader(stream, { highWaterMark: READ_HIGH_WATER_MARK })
      }
    })
  }

  /** The file's length and bytes, or undefined when the peer cannot open it. */
  async pull (file: string): Promise<{ length: number, body: AsyncGenerator<Uint8Array> } | undefined> {
    const pooled = await this.#pool.acquire(this.peer)
    try {
      await sendFrame(pooled.stream, { file } satisfies FileRequest)
      const { length } = JSON.parse(new TextDecoder().decode(await pooled.reader.readFrame(MAX_FRAME, { idleTimeout: IDLE_TIMEOUT }))) as FileAnswer
      if (length < 0) {
        this.#pool.release(pooled, true)
        return undefined
      }
      return { length, body: this.body(pooled, length) }
    } catch (err) {
      this.#pool.release(pooled, false)
      throw err
    }
  }

  private async * body (pooled: PooledStream, length: number): AsyncGenerator<Uint8Array> {
    let done = false
    try {
      yield * pooled.reader.readBody(length, { idleTimeout: IDLE_TIMEOUT })
      done = true
    } finally {
      this.#pool.release(pooled, done)
    }
  }

  close (): void {
    this.#pool.stop()
  }
}

/**
 * B's HTTP server over `dir` (the static cache's directory on A's side; the same machine here).
 * NARs are pulled from the peer, everything else read from the local disk; with `pullAll`,
 * every file is pulled from the peer (a narinfo hit's floor: one round trip, nothing else).
 */
export async function listenFileRelay (node: PeerixNode, peer: PeerId, dir: string, pullAll = false): Promise<{ url: string, close: () => void }> {
  const puller = new FilePuller(node, peer)
  const server = createServer((req, res) => {
    answer(puller, dir, pullAll, req, res).catch(() => { res.destroy() })
  })
  await new Promise<void>((resolve) => { server.listen(0, '127.0.0.1', resolve) })
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => { puller.close(); server.close() }
  }
}

async function answer (puller: FilePuller, dir: string, pullAll: boolean, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const path = normalize(decodeURIComponent(new URL(req.url ?? '/', 'http://relay').pathname))
  const file = join(dir, path)
  const head = req.method === 'HEAD'
  const nar = path.startsWith('/nar/')
  if (!nar && !pullAll) {
    const text = await readFile(file).catch(() => undefined)
    if (text === undefined) return notFound(res)
    res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': text.byteLength })
    res.end(head ? undefined : text)
    return
  }
  if (head) {
    const size = await stat(file).then(s => s.size, () => undefined)
    if (size === undefined) return notFound(res)
    res.writeHead(200, { 'Content-Type': 'application/x-nix-nar', 'Content-Length': size }).end()
    return
  }
  const pulled = await puller.pull(file)
  if (pulled === undefined) return notFound(res)
  await relayHashed(pulled.body, pulled.length, res, nar ? 'application/x-nix-nar' : 'text/plain')
}

function notFound (res: ServerResponse): void {
  res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not here\n')
}
