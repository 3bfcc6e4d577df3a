import assert from 'node:assert/strict'
import { createServer, request, type Server, type ServerResponse } from 'node:http'
import { createHash } from 'node:crypto'
import { BatchedWriter } from '../../src/http/batched-writer.js'

const PIECE = 64 * 1024
const PIECES = 96

function piece (i: number): Uint8Array {
  return new Uint8Array(PIECE).fill(i % 251)
}

describe('BatchedWriter (NAR pieces to an HTTP response)', function () {
  let server: Server | undefined

  afterEach(async () => {
    server?.closeAllConnections()
    await new Promise(resolve => server?.close(resolve) ?? resolve(undefined))
    server = undefined
  })

  /** Serves PIECES pieces through a BatchedWriter; reports the largest backlog and the socket writes. */
  async function serve (maxBytes: number): Promise<{ url: string, stats: { maxBacklog: number, flushes: number, done: Promise<void> } }> {
    let finished = (): void => {}
    const stats = { maxBacklog: 0, flushes: 0, done: new Promise<void>(resolve => { finished = resolve }) }
    server = createServer((_req, res: ServerResponse) => {
      void (async () => {
        res.writeHead(200, { 'Content-Length': PIECE * PIECES })
        const out = new BatchedWriter(res, maxBytes)
        const uncork = res.uncork.bind(res)
        res.uncork = () => { stats.flushes++; uncork() }
        for (let i = 0; i < PIECES; i++) {
          await out.write(piece(i))
          stats.maxBacklog = Math.max(stats.maxBacklog, res.writableLength)
        }
        out.flush()
        res.end()
        finished()
      })()
    })
    await new Promise<void>(resolve => server?.listen(0, '127.0.0.1', resolve))
    const address = server.address()
    assert.ok(address !== null && typeof address === 'object')
    return { url: `http://127.0.0.1:${address.port}/`, stats }
  }

  async function fetchBody (url: string, delayMs: number): Promise<string> {
    return await new Promise((resolve, reject) => {
      request(url, res => {
        const hash = createHash('sha256')
        res.on('data', (chunk: Buffer) => {
          hash.update(chunk)
          if (delayMs > 0) {
            res.pause()
            setTimeout(() => res.resume(), delayMs)
          }
        })
        res.on('end', () => { resolve(hash.digest('hex')) })
        res.on('error', reject)
      }).on('error', reject).end()
    })
  }

  function expectedHash (): string {
    const hash = createHash('sha256')
    for (let i = 0; i < PIECES; i++) hash.update(piece(i))
    return hash.digest('hex')
  }

  it('delivers every byte in order, in fewer socket writes than pieces', async () => {
    const { url, stats } = await serve(1024 * 1024)
    assert.equal(await fetchBody(url, 0), expectedHash())
    await stats.done
    assert.ok(stats.flushes < PIECES, `${stats.flushes} flushes for ${PIECES} pieces`)
  })

  it('waits for a slow client instead of buffering the whole body', async () => {
    const maxBytes = 256 * 1024
    const { url, stats } = await serve(maxBytes)
    assert.equal(await fetchBody(url, 5), expectedHash())
    await stats.done
    // one batch plus the piece that completed it may wait in the response; never the 6 MiB body
    assert.ok(stats.maxBacklog <= maxBytes + 2 * PIECE, `backlog reached ${stats.maxBacklog} bytes`)
  })
})
