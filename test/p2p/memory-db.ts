/** A store database in memory for the index tests: what the store summary reads. */
import { randomBytes } from 'node:crypto'
import { toNix32 } from '../../src/nix/nix32.js'
import type { PathRow } from '../../src/store/db.js'
import type { PathInfo } from '../../src/store/path-info.js'

/** Valid paths in memory, numbered like Nix's rows. */
export class MemoryDb {
  readonly rows: PathRow[] = []
  #nextId = 1

  add (name: string): string {
    const hashPart = toNix32(randomBytes(20))
    this.rows.push({ id: this.#nextId++, path: `/nix/store/${hashPart}-${name}`, sigs: '' })
    return hashPart
  }

  remove (hashPart: string): void {
    this.rows.splice(this.rows.findIndex(r => r.path.includes(hashPart)), 1)
  }

  rowsAfter (afterId: number, limit: number): PathRow[] {
    return this.rows.filter(r => r.id > afterId).slice(0, limit)
  }

  byHashPart (hashPart: string): PathInfo | undefined {
    const row = this.rows.find(r => r.path.includes(hashPart))
    return row === undefined ? undefined : { storePath: row.path, narHash: '', narSize: 0, references: [], sigs: [], ultimate: true, registrationTime: 0 }
  }
}
