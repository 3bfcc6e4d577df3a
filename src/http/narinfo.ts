/**
 * `GET`/`HEAD /<hash>.narinfo`: the first verified narinfo any peer has, rewritten to point at
 * our stable NAR URL, or 404 as soon as no peer has it (never 5xx: Nix would retry a 5xx).
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { formatNarInfo } from '../nix/narinfo.js'
import type { Substituter } from '../substituter/substituter.js'
import { sendText } from './respond.js'

export async function serveNarInfo (req: IncomingMessage, res: ServerResponse, substituter: Substituter, hashPart: string, signal: AbortSignal): Promise<void> {
  const info = await substituter.narInfo(hashPart, signal)
  if (signal.aborted) return // the client went away; there is no one to answer
  if (info === undefined) {
    sendText(req, res, 404, `no peer has ${hashPart}\n`)
    return
  }
  sendText(req, res, 200, formatNarInfo(info), {}, 'text/x-nix-narinfo')
}
