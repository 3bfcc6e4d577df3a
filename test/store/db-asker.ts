/**
 * Run as an unprivileged user by db-concurrent.test.ts: holds one NixDb open and, for each line
 * read from stdin, looks up the hash parts given on the command line and prints one JSON line
 * (which were found, and whether it read a snapshot), so the test decides when reads happen.
 */
import { createInterface } from 'node:readline'
import { NixDb } from '../../src/store/db.js'

const [root, ...hashParts] = process.argv.slice(2)
const db = NixDb.open(root)
for await (const _line of createInterface({ input: process.stdin })) {
  const found = hashParts.filter(h => db.byHashPart(h) !== undefined).length
  process.stdout.write(JSON.stringify({ found, snapshot: db.readingSnapshot }) + '\n')
}
db.close()
