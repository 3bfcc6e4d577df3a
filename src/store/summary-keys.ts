/**
 * The keys of a store summary: the first 32 bits of each served path's hash part, kept as a
 * sorted Uint32Array without duplicates. A hash part is a truncated SHA-256, so its first
 * bits are uniform and need no further hashing; 4 bytes per path keep a 100,000-path store's
 * key set at 400 KB in memory, and a lookup is a binary search.
 */
import { fromNix32 } from '../nix/nix32.js'
import { parseHashPart } from '../nix/store-path.js'

/** The summary key of a store hash part (FormatError when it is not one). */
export function summaryKey (hashPart: string): number {
  const bytes = fromNix32(parseHashPart(hashPart))
  return ((bytes[0] << 24) | (bytes[1] << 16) | (bytes[2] << 8) | bytes[3]) >>> 0
}

/** The keys sorted, duplicates removed. */
export function toKeySet (keys: Iterable<number>): Uint32Array {
  const sorted = Uint32Array.from(keys).sort()
  let n = 0
  for (let i = 0; i < sorted.length; i++) {
    if (i === 0 || sorted[i] !== sorted[i - 1]) sorted[n++] = sorted[i]
  }
  return sorted.slice(0, n)
}

export function keySetHas (set: Uint32Array, key: number): boolean {
  let lo = 0
  let hi = set.length - 1
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1
    const value = set[mid]
    if (value === key) return true
    if (value < key) lo = mid + 1
    else hi = mid - 1
  }
  return false
}

export interface KeySetDelta {
  added: Uint32Array
  removed: Uint32Array
}

/** What turns `before` into `after` (both sorted sets). */
export function keySetDiff (before: Uint32Array, after: Uint32Array): KeySetDelta {
  const added: number[] = []
  const removed: number[] = []
  let i = 0
  let j = 0
  while (i < before.length || j < after.length) {
    if (j === after.length || (i < before.length && before[i] < after[j])) removed.push(before[i++])
    else if (i === before.length || after[j] < before[i]) added.push(after[j++])
    else { i++; j++ }
  }
  return { added: Uint32Array.from(added), removed: Uint32Array.from(removed) }
}

/** `set` without `delta.removed` and with `delta.added` (all sorted), as a new sorted set. */
export function applyKeySetDelta (set: Uint32Array, delta: KeySetDelta): Uint32Array {
  const out = new Uint32Array(set.length + delta.added.length)
  const { added, removed } = delta
  let n = 0
  let i = 0
  let a = 0
  let r = 0
  while (i < set.length || a < added.length) {
    const next = a === added.length || (i < set.length && set[i] <= added[a]) ? set[i++] : added[a++]
    while (r < removed.length && removed[r] < next) r++
    if (r < removed.length && removed[r] === next) continue
    if (n === 0 || out[n - 1] !== next) out[n++] = next
  }
  return out.slice(0, n)
}
