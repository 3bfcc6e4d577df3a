/**
 * Run as an unprivileged user by db-concurrent.test.ts: looks up hash parts in a store's
 * database over and over until all are found or time is up, through one connection held
 * from the start and through a fresh connection each round, and reports as one JSON line.
 * Prints `ready` once the first connection is open, so the writer starts after it. With no
 * Nix process running, that connection starts on a snapshot and must turn live.
 */
import { existsSync } from 'node:fs'
import { setTimeout as sleep } from 'node:timers/promises'
import { NixDb, dbPath } from '../../src/store/db.js'

const [root, timeoutMs, ...hashParts] = process.argv.slice(2)
const deadline = Date.now() + Number(timeoutMs)
const held = NixDb.open(root)
const startedOnSnapshot = held.readingSnapshot
process.stdout.write('ready\n')

/** When each hash part was first found (ms since the epoch). */
const found = new Map<string, number>()
const errors: string[] = []
let lookups = 0
let roundsWithWal = 0
while (found.size < hashParts.length && Date.now() < deadline) {
  const walPresent = existsSync(`${dbPath(root)}-wal`)
  let fresh: NixDb | undefined
  try {
    fresh = NixDb.open(root)
    for (const hashPart of hashParts) {
      lookups += 2
      const viaHeld = held.byHashPart(hashPart)
      const viaFresh = fresh.byHashPart(hashPart)
      if (viaHeld !== undefined && !found.has(hashPart)) found.set(hashPart, Date.now())
      if (viaHeld !== undefined && viaFresh === undefined) errors.push(`${hashPart} vanished for a newer reader`)
    }
  } catch (err) {
    errors.push((err as Error).message)
  } finally {
    fresh?.close()
  }
  if (walPresent && existsSync(`${dbPath(root)}-wal`)) roundsWithWal++
  await sleep(5)
}
const liveAtEnd = !held.readingSnapshot
held.close()
const report = { uid: process.getuid?.(), lookups, found: found.size, firstFoundAt: Math.min(...found.values()), roundsWithWal, startedOnSnapshot, liveAtEnd, errors: errors.slice(0, 10) }
process.stdout.write(JSON.stringify(report) + '\n')
