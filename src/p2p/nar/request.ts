/** What makes a /peerix/nar/1 request valid, checked the same way by both sides. */
import { FormatError } from '../../nix/errors.js'
import { isNix32 } from '../../nix/nix32.js'
import { SHA256_BYTES } from '../../nix/hash.js'
import { parseHashPart } from '../../nix/store-path.js'
import { MAX_NAR_BYTES } from './constants.js'

export interface NarQuery {
  hashPart: string
  /** `sha256:<nix32>` */
  narHash: string
  offset: number
}

/** Throws a FormatError naming the field that is not what the spec allows. */
export function checkNarQuery (hashPart: string, narHash: string, offset: number | bigint): NarQuery {
  parseHashPart(hashPart)
  if (!narHash.startsWith('sha256:') || !isNix32(narHash.slice(7), SHA256_BYTES)) {
    const shown = narHash.length > 80 ? `${narHash.slice(0, 80)}…` : narHash
    throw new FormatError(`invalid NarHash ${JSON.stringify(shown)}: expected sha256: and 52 nix32 characters`)
  }
  if (offset < 0 || offset > MAX_NAR_BYTES || (typeof offset === 'number' && !Number.isInteger(offset))) {
    throw new FormatError(`invalid NAR offset ${offset}: expected an integer from 0 to ${MAX_NAR_BYTES}`)
  }
  return { hashPart, narHash, offset: Number(offset) }
}
