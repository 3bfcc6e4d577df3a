/**
 * The floor for any shim that verifies what it relays: an HTTP server in B's host process that
 * answers `GET /<bytes>` with that many bytes pulled over the bare libp2p stream from A (same
 * connection as /peerix/nar/1), SHA-256 over every byte as they pass, written to the client
 * with the shim's own batched writer. No NAR, no narinfo, no failover, no checks: what is left
 * is the work every verifying relay must do, so the shim's row can be read against it.
 */
import { createHash } from 'node:crypto'
import { createServer, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { BatchedWriter } from '../src/http/batched-writer.js'
import { SEND_CHUNK_BYTES } from '../src/p2p/nar/constants.js'
import { bytesBody } from './p2p-transfers.js'
import type { PeerixNode } from '../src/p2p/node.js'
import type { PeerId } from '@libp2p/interface'

export async function listenBareRelay (node: PeerixNode, peer: PeerId): Promise<{ url: string, close: () => void }> {
  const server = createServer((req, res) => {
    const bytes = Number(req.url?.slice(1))
    if (!Number.isSafeInteger(bytes) || bytes <= 0) {
      res.writeHead(400).end('GET /<bytes>\n')
      return
    }
    relay(node, peer, bytes, res).catch(() => { res.destroy() })
  })
  await new Promise<void>((resolve) => { server.listen(0, '127.0.0.1', resolve) })
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, close: () => { server.close() } }
}

async function relay (node: PeerixNode, peer: PeerId, bytes: number, res: ServerResponse): Promise<void> {
  await relayHashed(bytesBody(node, peer, bytes, SEND_CHUNK_BYTES), bytes, res)
}

/** Writes `body` (`length` bytes) to the client as a 200 with SHA-256 over every byte as it passes. */
export async function relayHashed (body: AsyncIterable<Uint8Array>, length: number, res: ServerResponse, contentType = 'application/octet-stream'): Promise<void> {
  const hash = createHash('sha256')
  res.writeHead(200, { 'Content-Type': contentType, 'Content-Length': length })
  const out = new BatchedWriter(res)
  for await (const chunk of body) {
    hash.update(chunk)
    await out.write(chunk)
  }
  hash.digest()
  out.flush()
  res.end()
}
