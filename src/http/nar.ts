/**
 * `GET`/`HEAD /nar/<hash>-<narhash>.nar`: the NAR streamed from peers with `Content-Length`
 * set to its NarSize. Written only as fast as Nix reads it; when the download fails midway the
 * connection is cut, never ended cleanly, so Nix sees a broken transfer, not a short NAR.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Substituter } from '../substituter/substituter.js'
import { sendText } from './respond.js'

export async function serveNar (req: IncomingMessage, res: ServerResponse, substituter: Substituter, target: { hashPart: string, narHash: string }, signal: AbortSignal, log: (line: string) => void): Promise<void> {
  const download = await substituter.nar(target.hashPart, target.narHash, signal)
  if (signal.aborted) return
  if (download === undefined) {
    sendText(req, res, 404, `no peer has the NAR of ${target.hashPart} with ${target.narHash}\n`)
    return
  }
  res.writeHead(200, { 'Content-Type': 'application/x-nix-nar', 'Content-Length': download.narSize })
  if (req.method === 'HEAD') {
    res.end()
    return
  }
  const started = Date.now()
  try {
    for await (const chunk of download.stream) {
      if (!res.write(chunk)) await drained(res)
      if (signal.aborted) return
    }
  } catch (err) {
    if (!signal.aborted) log(`nar ${target.hashPart}: cutting the connection: ${(err as Error).message}`)
    res.destroy()
    return
  }
  res.end()
  log(`fetched ${target.hashPart} (${download.narSize} bytes) in ${Date.now() - started} ms`)
}

/** Resolves when the response can take more, or when the client has gone. */
async function drained (res: ServerResponse): Promise<void> {
  await new Promise<void>(resolve => {
    const done = (): void => {
      res.off('drain', done)
      res.off('close', done)
      resolve()
    }
    res.on('drain', done)
    res.on('close', done)
  })
}
