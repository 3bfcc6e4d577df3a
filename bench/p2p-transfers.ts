/**
 * Bench-only libp2p protocols, registered on the daemons' own nodes so they run over the very
 * connection (TCP, Noise, yamux) the daemons use for /peerix/nar/1:
 * - `/peerix-bench/bytes/1` streams bytes from memory: the bare stream, the ceiling for NARs;
 * - `/peerix-bench/nar-chunks/1` streams a file's NAR like /peerix/nar/1 does (NAR writer,
 *   pieces gathered into writes, back-pressure), with the writer chunk and the send chunk
 *   chosen per request, to measure those sizes end to end.
 * Both write with the daemon's `send` and read with its `StreamReader`, as the NAR service
 * does. They serve any file to any peer: for benchmark hosts on loopback only.
 */
import { Uint8ArrayList } from 'uint8arraylist'
import { narSize, narStream } from '../src/nix/nar.js'
import { READ_BUFFER_LIMIT, READ_HIGH_WATER_MARK, SEND_STALL_TIMEOUT } from '../src/p2p/nar/constants.js'
import { encodeFrame } from '../src/p2p/wire/frame.js'
import { send } from '../src/p2p/wire/send.js'
import { StreamReader } from '../src/p2p/wire/stream-reader.js'
import type { PeerixNode } from '../src/p2p/node.js'
import type { PeerId, Stream } from '@libp2p/interface'
import type { Transfer } from './host-protocol.js'

export const BYTES_PROTOCOL = '/peerix-bench/bytes/1'
export const NAR_CHUNKS_PROTOCOL = '/peerix-bench/nar-chunks/1'
const MAX_REQUEST = 4096
const IDLE_TIMEOUT = 30_000

interface BytesRequest { bytes: number, sendChunk: number }
interface NarChunksRequest { file: string, writerChunk: number, sendChunk: number }

export async function handleBenchProtocols (node: PeerixNode): Promise<void> {
  await node.handle(BYTES_PROTOCOL, async (stream) => {
    await serve(stream, async (req: BytesRequest) => {
      const chunk = new Uint8Array(req.sendChunk).fill(0x5a)
      await sendFrame(stream, { length: req.bytes })
      for (let left = req.bytes; left > 0; left -= chunk.byteLength) {
        await send(stream, left >= chunk.byteLength ? chunk : chunk.subarray(0, left), SEND_STALL_TIMEOUT)
      }
    })
  })
  await node.handle(NAR_CHUNKS_PROTOCOL, async (stream) => {
    await serve(stream, async (req: NarChunksRequest) => {
      await sendFrame(stream, { length: await narSize(req.file) })
      let pending = new Uint8ArrayList()
      for await (const piece of narStream(req.file, { chunkSize: req.writerChunk })) {
        pending.append(piece)
        if (pending.byteLength >= req.sendChunk) {
          await send(stream, pending, SEND_STALL_TIMEOUT)
          pending = new Uint8ArrayList()
        }
      }
      if (pending.byteLength > 0) await send(stream, pending, SEND_STALL_TIMEOUT)
    })
  })
}

export async function pullBytes (node: PeerixNode, peer: PeerId, bytes: number, sendChunk: number): Promise<Transfer> {
  return await pull(node, peer, BYTES_PROTOCOL, { bytes, sendChunk } satisfies BytesRequest)
}

export async function pullNarChunks (node: PeerixNode, peer: PeerId, file: string, writerChunk: number, sendChunk: number): Promise<Transfer> {
  return await pull(node, peer, NAR_CHUNKS_PROTOCOL, { file, writerChunk, sendChunk } satisfies NarChunksRequest)
}

/**
 * Reads a request and runs `body` on it (with `many`, again for each request that follows on the
 * stream until the requester ends it), then closes; any failure resets the stream.
 */
export async function serve<T> (stream: Stream, body: (req: T) => Promise<void>, many = false): Promise<void> {
  const reader = new StreamReader(stream)
  try {
    do {
      const req = JSON.parse(new TextDecoder().decode(await reader.readFrame(MAX_REQUEST))) as T
      await body(req)
    } while (many && await reader.hasMore())
    await stream.close()
  } catch (err) {
    stream.abort(err instanceof Error ? err : new Error(String(err)))
  } finally {
    reader.dispose()
  }
}

/** One length-prefixed JSON frame. */
export async function sendFrame (stream: Stream, value: unknown): Promise<void> {
  await send(stream, encodeFrame(new TextEncoder().encode(JSON.stringify(value))), SEND_STALL_TIMEOUT)
}

/** Sends the request, reads the announced length and then the body to the end; times it all. */
async function pull (node: PeerixNode, peer: PeerId, protocol: string, request: unknown): Promise<Transfer> {
  const t0 = process.hrtime.bigint()
  let bytes = 0
  for await (const chunk of pullBody(node, peer, protocol, request)) bytes += chunk.byteLength
  return { bytes, seconds: Number(process.hrtime.bigint() - t0) / 1e9 }
}

/** The bare stream's bytes as B reads them: for a relay that does something with each chunk. */
export function bytesBody (node: PeerixNode, peer: PeerId, bytes: number, sendChunk: number): AsyncGenerator<Uint8Array> {
  return pullBody(node, peer, BYTES_PROTOCOL, { bytes, sendChunk } satisfies BytesRequest)
}

/** Sends the request, reads the announced length, then yields the body's chunks to the end. */
async function * pullBody (node: PeerixNode, peer: PeerId, protocol: string, request: unknown): AsyncGenerator<Uint8Array> {
  const stream = await node.dialProtocol(peer, protocol)
  stream.maxReadBufferLength = Math.max(stream.maxReadBufferLength, READ_BUFFER_LIMIT)
  const reader = new StreamReader(stream, { highWaterMark: READ_HIGH_WATER_MARK })
  try {
    await sendFrame(stream, request)
    await stream.close()
    const { length } = JSON.parse(new TextDecoder().decode(await reader.readFrame(MAX_REQUEST))) as { length: number }
    yield * reader.readBody(length, { idleTimeout: IDLE_TIMEOUT })
  } finally {
    reader.dispose()
  }
}
