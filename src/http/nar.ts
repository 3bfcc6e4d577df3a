/**
 * `GET`/`HEAD /nar/<hash>-<narhash>.nar`: the NAR streamed from peers with `Content-Length`
 * set to its NarSize. Written only as fast as Nix reads it; when the download fails midway the
 * connection is cut, never ended cleanly, so Nix sees a broken transfer, not a short NAR.
 *
 * `Range: bytes=N-` is honoured (206), and announced with `Accept-Ranges`, so that Nix resumes
 * a NAR when this daemon restarts mid-transfer instead of failing the path. The whole NAR is
 * still fetched and hashed; only the bytes before N are not sent again.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Substituter } from '../substituter/substituter.js'
import { BatchedWriter } from './batched-writer.js'
import { sendText } from './respond.js'

export async function serveNar (req: IncomingMessage, res: ServerResponse, substituter: Substituter, target: { hashPart: string, narHash: string }, signal: AbortSignal, log: (line: string) => void): Promise<void> {
  const download = await substituter.nar(target.hashPart, target.narHash, signal)
  if (signal.aborted) return
  if (download === undefined) {
    sendText(req, res, 404, `no peer has the NAR of ${target.hashPart} with ${target.narHash}\n`)
    return
  }
  const start = rangeStart(req.headers.range)
  if (start !== undefined && start >= download.narSize) {
    sendText(req, res, 416, `range starts past the end of the ${download.narSize}-byte NAR\n`, { 'Content-Range': `bytes */${download.narSize}` })
    return
  }
  const headers = { 'Content-Type': 'application/x-nix-nar', 'Accept-Ranges': 'bytes' }
  if (start === undefined) {
    res.writeHead(200, { ...headers, 'Content-Length': download.narSize })
  } else {
    res.writeHead(206, { ...headers, 'Content-Length': download.narSize - start, 'Content-Range': `bytes ${start}-${download.narSize - 1}/${download.narSize}` })
  }
  if (req.method === 'HEAD') {
    res.end()
    return
  }
  const started = Date.now()
  if (start !== undefined) log(`nar ${target.hashPart}: resuming at byte ${start} of ${download.narSize}`)
  let skip = start ?? 0
  const out = new BatchedWriter(res)
  try {
    for await (const chunk of download.stream) {
      const rest = skip === 0 ? chunk : chunk.subarray(Math.min(skip, chunk.byteLength))
      skip -= chunk.byteLength - rest.byteLength
      if (rest.byteLength > 0) await out.write(rest)
      if (signal.aborted) return
    }
  } catch (err) {
    if (!signal.aborted) log(`nar ${target.hashPart}: cutting the connection: ${(err as Error).message}`)
    res.destroy()
    return
  }
  out.flush()
  res.end()
  log(`fetched ${target.hashPart} (${download.narSize} bytes) in ${Date.now() - started} ms`)
}

/**
 * N of a `bytes=N-` range, the form curl (and so Nix) sends to resume; any other range is
 * ignored and the whole NAR sent with 200, as RFC 9110 allows.
 */
export function rangeStart (header: string | undefined): number | undefined {
  const m = header === undefined ? null : /^bytes=(\d{1,15})-$/.exec(header.trim())
  return m === null ? undefined : Number(m[1])
}
