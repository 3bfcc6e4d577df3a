/**
 * `GET`/`HEAD /<hash>.narinfo`: the first verified narinfo any peer has, rewritten to point at
 * our stable NAR URL, or 404 as soon as no peer has it (never 5xx: Nix would retry a 5xx).
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { formatNarInfo } from '../nix/narinfo.js'
import { verifyNarInfo } from '../nix/narinfo-signing.js'
import type { TrustedKeys } from '../nix/signing.js'
import type { Substituter } from '../substituter/substituter.js'
import { sendText } from './respond.js'

/** `publicKeys`: for another host's client, the keys one of which must have signed the path. */
export async function serveNarInfo (req: IncomingMessage, res: ServerResponse, substituter: Substituter, hashPart: string, signal: AbortSignal, publicKeys?: TrustedKeys): Promise<void> {
  const info = await substituter.narInfo(hashPart, signal)
  if (signal.aborted) return // the client went away; there is no one to answer
  if (info === undefined) {
    sendText(req, res, 404, `no peer has ${hashPart}\n`)
    return
  }
  if (publicKeys !== undefined && verifyNarInfo(info, publicKeys) === undefined) {
    sendText(req, res, 404, `${hashPart} is for this host only: no public cache signed it\n`)
    return
  }
  sendText(req, res, 200, formatNarInfo(info), {}, 'text/x-nix-narinfo')
}
