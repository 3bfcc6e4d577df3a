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

/** Every peer's answer for `hashPart`, in the order of `client.peers()`; waits at most `timeoutMs`. */
export async function whichPeers (client: PeerClient, trusted: TrustedKeys, hashPart: string, timeoutMs: number, signal?: AbortSignal): Promise<PeerHolding[]> {
  const budget = AbortSignal.timeout(timeoutMs)
  const asks = signal === undefined ? budget : AbortSignal.any([signal, budget])
  return await Promise.all(client.peers().map(async peer => {
    let answer: Answer<string>
    try {
      answer = await client.narInfo(peer, hashPart, asks)
    } catch (err) {
      answer = { status: 'error', message: (err as Error).message }
    }
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
