/**
 * A store larger than a test can build: valid paths written straight into a chroot store's
 * database (Nix's own schema, made by `nix-store --init`), as Nix registers substituted paths.
 * Only the database has them; their files do not exist.
 */
import { randomBytes } from 'node:crypto'
import Database from 'better-sqlite3'
import { toNix32 } from '../../src/nix/nix32.js'
import { dbPath } from '../../src/store/db.js'

/**
 * Adds `count` paths, each with a signature by `sigKeyName` (random bytes: a key's check of
 * it fails, as it costs, like one by a key of a cache that is not this one) and a reference
 * to the path before it. Returns their store paths.
 */
export function addSyntheticPaths (storeRoot: string, count: number, sigKeyName = 'cache.nixos.org-1'): string[] {
  const db = new Database(dbPath(storeRoot))
  try {
    const insert = db.prepare('insert into ValidPaths (path, hash, registrationTime, deriver, narSize, ultimate, sigs, ca) values (?, ?, ?, ?, ?, null, ?, null)')
    const ref = db.prepare('insert into Refs (referrer, reference) values (?, ?)')
    const paths: string[] = []
    db.transaction(() => {
      let previous: number | bigint | undefined
      for (let i = 0; i < count; i++) {
        const path = `/nix/store/${toNix32(randomBytes(20))}-synthetic-${i}`
        const sig = `${sigKeyName}:${randomBytes(64).toString('base64')}`
        const { lastInsertRowid } = insert.run(path, `sha256:${randomBytes(32).toString('hex')}`, 1700000000 + i, null, 1000 + i, sig)
        if (previous !== undefined) ref.run(lastInsertRowid, previous)
        previous = lastInsertRowid
        paths.push(path)
      }
    })()
    return paths
  } finally {
    db.close()
  }
}
