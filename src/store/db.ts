/**
 * Nix's SQLite database, read-only. Opened with `readonly` and `fileMustExist` so peerix never
 * writes, never creates a database by mistake, and never holds a write lock that could block
 * a running nix-daemon: in WAL mode readers and the one writer proceed side by side.
 */
import Database from 'better-sqlite3'
import { statSync } from 'node:fs'
import { join } from 'node:path'
import { toNarHash } from '../nix/hash.js'
import { parseHashPart, STORE_DIR } from '../nix/store-path.js'
import type { PathInfo } from './path-info.js'

/** A database that cannot be opened or read; the message names the file and what to do. */
export class NixDbError extends Error {
  override name = 'NixDbError'
}

/** Where Nix keeps its database under a store root (`/` for the system store). */
export function dbPath (storeRoot: string): string {
  return join(storeRoot, 'nix', 'var', 'nix', 'db', 'db.sqlite')
}

/**
 * The writer holds a lock for a moment during checkpoints and WAL recovery; SQLite's busy
 * handler covers most waits, and these retries cover the few it answers with SQLITE_BUSY at once.
 */
const BUSY_TIMEOUT_MS = 2000
const BUSY_RETRIES = 5
const BUSY_BACKOFF_MS = 20

interface ValidPathRow {
  id: number
  path: string
  hash: string
  registrationTime: number
  deriver: string | null
  narSize: number | null
  ultimate: number | null
  sigs: string | null
  ca: string | null
}

/** One open connection with its prepared statements, and the file identity it was opened on. */
class Connection {
  readonly db: Database.Database
  readonly byPrefix: Database.Statement<[string], ValidPathRow>
  readonly references: Database.Statement<[number], { path: string }>
  readonly lookup: (hashPart: string) => PathInfo | undefined

  constructor (readonly file: string, readonly identity: string) {
    this.db = new Database(file, { readonly: true, fileMustExist: true, timeout: BUSY_TIMEOUT_MS })
    try {
      // Like Nix's queryPathFromHashPart: the unique index on `path` makes this a range seek.
      this.byPrefix = this.db.prepare<[string], ValidPathRow>(
        'select id, path, hash, registrationTime, deriver, narSize, ultimate, sigs, ca from ValidPaths where path >= ? order by path limit 1')
      this.references = this.db.prepare<[number], { path: string }>(
        'select p.path as path from Refs r join ValidPaths p on p.id = r.reference where r.referrer = ?')
    } catch (err) {
      this.db.close()
      throw err
    }
    // One read transaction, so a path and its references come from the same snapshot.
    this.lookup = this.db.transaction((hashPart: string) => {
      const prefix = `${STORE_DIR}/${hashPart}-`
      const row = this.byPrefix.get(prefix)
      if (row === undefined || !row.path.startsWith(prefix)) return undefined
      const references = this.references.all(row.id).map(r => r.path).sort()
      return toPathInfo(row, references)
    })
  }
}

function toPathInfo (row: ValidPathRow, references: string[]): PathInfo {
  const info: PathInfo = {
    storePath: row.path,
    narHash: toNarHash(row.hash),
    narSize: row.narSize ?? 0,
    references,
    sigs: (row.sigs ?? '').split(' ').filter(s => s !== ''),
    ultimate: row.ultimate === 1,
    registrationTime: row.registrationTime
  }
  if (row.deriver != null && row.deriver !== '') info.deriver = row.deriver
  if (row.ca != null && row.ca !== '') info.ca = row.ca
  return info
}

/** The file's identity on disk: a new inode means the database was replaced. */
function fileIdentity (file: string): string {
  const st = statSync(file)
  return `${st.dev}:${st.ino}`
}

function isBusy (err: unknown): boolean {
  const code = (err as { code?: unknown }).code
  return typeof code === 'string' && (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED'))
}

/** Sleeps without returning to the event loop: lookups are synchronous like SQLite's own busy wait. */
function sleepSync (ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms)
}

function describe (err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}

export class NixDb {
  private conn: Connection

  private constructor (readonly storeRoot: string, conn: Connection) {
    this.conn = conn
  }

  /** Opens `<storeRoot>/nix/var/nix/db/db.sqlite` read-only; a clear NixDbError if it cannot. */
  static open (storeRoot: string): NixDb {
    return new NixDb(storeRoot, connect(dbPath(storeRoot), storeRoot))
  }

  /**
   * The valid path whose hash part is `hashPart`, with its references; undefined if none.
   * A malformed hash part is a FormatError.
   */
  byHashPart (hashPart: string): PathInfo | undefined {
    parseHashPart(hashPart)
    this.reopenIfReplaced()
    for (let attempt = 0; ; attempt++) {
      try {
        return this.conn.lookup(hashPart)
      } catch (err) {
        if (!isBusy(err) || attempt >= BUSY_RETRIES) throw new NixDbError(`reading Nix database ${this.conn.file} failed: ${describe(err)}`)
        sleepSync(BUSY_BACKOFF_MS << attempt)
      }
    }
  }

  close (): void {
    this.conn.db.close()
  }

  /**
   * A database replaced by a new file (restored, moved into place) would otherwise be read
   * through the old, unlinked inode forever; a stat per lookup notices and reconnects.
   */
  private reopenIfReplaced (): void {
    let identity: string
    try {
      identity = fileIdentity(this.conn.file)
    } catch (err) {
      throw new NixDbError(`Nix database ${this.conn.file} is gone: ${describe(err)}`)
    }
    if (identity === this.conn.identity) return
    const fresh = connect(this.conn.file, this.storeRoot)
    this.conn.db.close()
    this.conn = fresh
  }
}

function connect (file: string, storeRoot: string): Connection {
  const hint = `check --store-root (now ${JSON.stringify(storeRoot)}: the directory holding nix/store and nix/var/nix) and that this user may read the database`
  let identity: string
  try {
    identity = fileIdentity(file)
  } catch (err) {
    throw new NixDbError(`cannot find Nix database ${file} (${describe(err)}); ${hint}`)
  }
  try {
    return new Connection(file, identity)
  } catch (err) {
    throw new NixDbError(`cannot read Nix database ${file}: ${describe(err)}; ${hint}`)
  }
}
