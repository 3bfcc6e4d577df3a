/**
 * What the parts of the substituter share: the peers, the keys, the memory of who has what,
 * the counters and the log. One object, built by the Substituter, passed to each part.
 */
import type { PeerClient } from '../p2p/peer-client.js'
import type { TrustedKeys } from '../nix/signing.js'
import type { SubstituterCounters } from './counters.js'
import type { LogOnce } from '../log-once.js'
import type { PeerMemory } from './peer-memory.js'
import type { WireCompressionPolicy } from './wire-compression.js'

export interface SubstituterContext {
  client: PeerClient
  trusted: TrustedKeys
  memory: PeerMemory
  /** Which peers to ask for zstd-compressed NARs, from their measured link rates. */
  compression: WireCompressionPolicy
  counters: SubstituterCounters
  log: (line: string) => void
  /** For problems a peer repeats on every ask: logged once. */
  logOnce: LogOnce
  /** How long a narinfo lookup waits for peers that have not answered. */
  timeoutMs: number
  /** How long in all it waits for a peer that may have the path and is slow, not gone. */
  patienceMs: number
  /** How long a NAR download waits for a peer's next bytes before moving to another peer. */
  stallMs: number
}

export { shortPeer } from '../log.js'
