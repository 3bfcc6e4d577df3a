/**
 * `GET`/`HEAD /<hash>.narinfo`: the first verified narinfo any peer has, rewritten to point at
 * our stable NAR URL, or 404 as soon as no peer has it (never 5xx: Nix would retry a 5xx).
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { formatNarInfo } from '../nix/narinfo.js'
import type { TrustedKeys } from '../nix/signing.js'
import type { Substituter } from '../substituter/substituter.js'
import { sendText } from './respond.js'

/** `publicKeys`: for another host's client, the keys one of which must have signed the path. */
export async function serveNarInfo (req: IncomingMessage, res: ServerResponse, substituter: Substituter, hashPart: string, signal: AbortSignal, publicKeys?: TrustedKeys): Promise<void> {
  const answer = await substituter.lookup(hashPart, { signal, publicKeys })
  if (signal.aborted) return // the client went away; there is no one to answer
  if (answer.status === 'absent') {
    sendText(req, res, 404, `no peer has ${hashPart}\n`)
    return
  }
  if (answer.status === 'refused') {
    sendText(req, res, 404, `${hashPart} is for this host only: ${answer.reason}\n`)
    return
  }
  sendText(req, res, 200, formatNarInfo(answer.value), {}, 'text/x-nix-narinfo')
}
