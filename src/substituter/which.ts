/**
 * `peerix which`: which peers have a path, asking every peer (not the first to answer, as a
 * lookup does) and checking each answer on its own, so an operator can see who has it, who
 * refuses it and whose signature we would not accept. Not counted as lookups: looking is not
 * substituting.
 */
import type { Answer, PeerClient } from '../p2p/peer-client.js'
import type { TrustedKeys } from '../nix/signing.js'
import { checkNarInfo } from './verify.js'

export type PeerHolding =
  /** The peer has the path and its narinfo verified against the trusted key `verifiedBy`. */
  | { peer: string, status: 'verified', storePath: string, narHash: string, narSize: number, verifiedBy: string, signatures: string[] }
  /** The peer answered with a narinfo we would not use (bad signature, malformed, other path). */
  | { peer: string, status: 'unverified', reason: string, signatures: string[] }
  | { peer: string, status: 'absent' }
  | { peer: string, status: 'refused', reason: string }
  | { peer: string, status: 'error', reason: string }

/**
 * The longest `peerix which` waits for peers, whatever the daemon's `--timeout` (up to 600 s):
 * the command gives up on the daemon after REQUEST_TIMEOUT_MS (30 s, src/cli/client.ts), and a
 * table naming the peers that did not answer says more than "the daemon did not answer".
 */
export const WHICH_MAX_WAIT_MS = 20_000

/** How long `peerix which` waits for peers on a daemon whose lookups wait `timeoutMs`. */
export function whichWaitMs (timeoutMs: number): number {
  return Math.min(timeoutMs, WHICH_MAX_WAIT_MS)
}

/**
 * Every peer's answer for `hashPart`, in the order of `client.peers()`; waits at most
 * `timeoutMs` (and WHICH_MAX_WAIT_MS), a peer still silent then is an error saying so.
 */
export async function whichPeers (client: PeerClient, trusted: TrustedKeys, hashPart: string, timeoutMs: number, signal?: AbortSignal): Promise<PeerHolding[]> {
  const waitMs = whichWaitMs(timeoutMs)
  const budget = AbortSignal.timeout(waitMs)
  const asks = signal === undefined ? budget : AbortSignal.any([signal, budget])
  return await Promise.all(client.peers().map(async peer => {
    let answer: Answer<string>
    try {
      answer = await client.narInfo(peer, hashPart, asks)
    } catch (err) {
      answer = { status: 'error', message: (err as Error).message }
    }
    if (answer.status === 'error' && budget.aborted) answer = { status: 'error', message: `no answer within ${waitMs / 1000} s` }
    return holding(peer, hashPart, answer, trusted)
  }))
}

function holding (peer: string, hashPart: string, answer: Answer<string>, trusted: TrustedKeys): PeerHolding {
  switch (answer.status) {
    case 'absent':
      return { peer, status: 'absent' }
    case 'refused':
      return { peer, status: 'refused', reason: answer.reason }
    case 'error':
      return { peer, status: 'error', reason: answer.message }
    case 'found': {
      const checked = checkNarInfo(answer.value, hashPart, trusted)
      const signatures = signaturesOf(answer.value)
      if (!checked.ok) return { peer, status: 'unverified', reason: checked.reason, signatures }
      const { storePath, narHash, narSize } = checked.info
      return { peer, status: 'verified', storePath, narHash, narSize, verifiedBy: checked.key, signatures }
    }
  }
}

/** The key names of a narinfo's `Sig:` lines, read leniently: the text may not parse at all. */
function signaturesOf (text: string): string[] {
  return text.split('\n').filter(line => line.startsWith('Sig: ')).map(line => line.slice('Sig: '.length).split(':')[0])
}
