/**
 * The narinfo benchmark's requests: a hit and a miss in turn over one kept-alive connection,
 * each timed. Runs in a host process of its own (op `narinfo-latencies`), not in the
 * benchmark's process, whose other work (tsx, the hosts' IPC) would land in the tails.
 */
import { randomBytes } from 'node:crypto'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { toNix32 } from '../src/nix/nix32.js'
import { HttpClient } from './http-client.js'

export interface Latencies { hits: number[], misses: number[], errors: number }

/** A store hash part (20 random bytes in nix32) that no store holds. */
function randomHashPart (): string {
  return toNix32(randomBytes(20))
}

/**
 * Alternates a hit and a miss, `rounds` times over; a hit must be 200 and a miss 404, else it
 * counts as an error. With `missesOnly`, asks only the misses (one per hash). With `missUrl`,
 * the misses go to that server instead (over a connection of their own), each right after a
 * hit on `baseUrl`: the miss pattern of the shim rows, for a server that does nothing.
 */
export async function narinfoLatencies (baseUrl: string, hitHashes: string[], rounds = 1, missesOnly = false, missUrl = baseUrl): Promise<Latencies> {
  const out: Latencies = { hits: [], misses: [], errors: 0 }
  const client = new HttpClient()
  const missClient = missUrl === baseUrl ? client : new HttpClient()
  try {
    for (let round = 0; round < rounds; round++) {
      for (const hit of hitHashes) {
        if (!missesOnly) {
          const h = await client.get(`${baseUrl}/${hit}.narinfo`)
          if (h.status === 200) out.hits.push(h.ms)
          else out.errors++
        }
        const m = await missClient.get(`${missUrl}/${randomHashPart()}.narinfo`)
        if (m.status === 404) out.misses.push(m.ms)
        else out.errors++
      }
    }
  } finally {
    client.close()
    missClient.close()
  }
  return out
}

/**
 * An HTTP server that answers 404 to everything at once: the floor under any miss a Node
 * daemon can answer on this machine, measured with the same client.
 */
export async function listenAbsentServer (): Promise<{ url: string, close: () => void }> {
  const server: Server = createServer((_req, res) => {
    res.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': 7 })
    res.end('absent\n')
  })
  await new Promise<void>((resolve) => { server.listen(0, '127.0.0.1', resolve) })
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, close: () => { server.close() } }
}
