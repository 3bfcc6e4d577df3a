/**
 * `GET`/`HEAD /nar/<hash>-<narhash>.nar`: the NAR streamed from peers with `Content-Length`
 * set to its NarSize. Written only as fast as Nix reads it; when the download fails midway the
 * connection is cut, never ended cleanly, so Nix sees a broken transfer, not a short NAR. A
 * download that fails before its first byte is a 404: no peer has the NAR after all.
 *
 * `Range: bytes=N-` is honoured (206), and announced with `Accept-Ranges`, so that Nix resumes
 * a NAR when this daemon restarts mid-transfer instead of failing the path. The whole NAR is
 * still fetched and hashed; only the bytes before N are not sent again.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { TrustedKeys } from '../nix/signing.js'
import type { Substituter } from '../substituter/substituter.js'
import { BatchedWriter } from './batched-writer.js'
import { sendText } from './respond.js'

export async function serveNar (req: IncomingMessage, res: ServerResponse, substituter: Substituter, target: { hashPart: string, narHash: string }, signal: AbortSignal, log: (line: string) => void, publicKeys?: TrustedKeys): Promise<void> {
  if (publicKeys !== undefined) {
    // Another host's client: only the NAR of a narinfo it could have (see serveNarInfo).
    const allowed = await substituter.isPublicNar(target.hashPart, target.narHash, publicKeys, signal)
    if (signal.aborted) return
    if (!allowed) {
      sendText(req, res, 404, `the NAR of ${target.hashPart} with ${target.narHash} is not a public cache's\n`)
      return
    }
  }
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
  const status = start === undefined
    ? { code: 200, headers: { ...headers, 'Content-Length': download.narSize } }
    : { code: 206, headers: { ...headers, 'Content-Length': download.narSize - start, 'Content-Range': `bytes ${start}-${download.narSize - 1}/${download.narSize}` } }
  if (req.method === 'HEAD') {
    res.writeHead(status.code, status.headers)
    res.end()
    return
  }
  const started = Date.now()
  const chunks = download.stream[Symbol.asyncIterator]()
  try {
    let next: IteratorResult<Uint8Array>
    try {
      next = await chunks.next()
    } catch (err) {
      if (signal.aborted) return
      // Nothing has gone to Nix yet: every peer that offered the NAR failed before its first
      // byte (it was collected, the peer went away). To Nix that is absent, a 404: it then
      // builds the path or takes another substituter, where a cut connection makes it retry
      // us and fail the build.
      log(`nar ${target.hashPart}: absent: ${(err as Error).message}`)
      sendText(req, res, 404, `no peer could deliver the NAR of ${target.hashPart} with ${target.narHash}\n`)
      return
    }
    res.writeHead(status.code, status.headers)
    if (start !== undefined) log(`nar ${target.hashPart}: resuming at byte ${start} of ${download.narSize}`)
    let skip = start ?? 0
    const out = new BatchedWriter(res)
    try {
      for (; next.done !== true; next = await chunks.next()) {
        const chunk = next.value
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
  } finally {
    // Ends the download (and its peer stream) when Nix left or the transfer failed.
    await chunks.return?.(undefined)
  }
}

/**
 * N of a `bytes=N-` range, the form curl (and so Nix) sends to resume; any other range is
 * ignored and the whole NAR sent with 200, as RFC 9110 allows.
 */
export function rangeStart (header: string | undefined): number | undefined {
  const m = header === undefined ? null : /^bytes=(\d{1,15})-$/.exec(header.trim())
  return m === null ? undefined : Number(m[1])
}
