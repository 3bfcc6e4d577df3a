/** Small helpers for answers with a short text body. */
import type { IncomingMessage, ServerResponse } from 'node:http'

/** A text answer; HEAD gets the same headers and no body. */
export function sendText (req: IncomingMessage, res: ServerResponse, status: number, body: string, headers: Record<string, string> = {}, contentType = 'text/plain; charset=utf-8'): void {
  res.writeHead(status, { 'Content-Type': contentType, 'Content-Length': Buffer.byteLength(body), ...headers })
  res.end(req.method === 'HEAD' ? undefined : body)
}
