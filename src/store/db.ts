/**
 * Nix's SQLite database, read-only. Opened with `readonly` and `fileMustExist` so peerix never
 * writes, never creates a database by mistake, and never holds a write lock that could block
 * a running nix-daemon: in WAL mode readers and the one writer proceed side by side.
 *
 * A read-only reader of a WAL database needs its `-wal` and `-shm` files. Nix deletes them when
 * its last connection closes, and an unprivileged peerix cannot create them in a root-owned
 * directory. Until some Nix process recreates them, peerix reads a private copy of the
 * database file, which is then exactly the database (with no WAL, nothing is pending); once
 * they exist it switches to a live connection, whose open files keep them from being deleted.
 */
import Database from 'better-sqlite3'
import { copyFileSync, existsSync, mkdtempSync, openSync, closeSync, writeSync, rmSync, statSync, type BigIntStats } from 'node:fs'
import { tmpdir } from 'node:os'
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
 * handler covers most waits, and retries (isTransient) cover what it answers at once.
 */
const BUSY_TIMEOUT_MS = 2000
/**
 * Retries of a read or an open SQLite refused at once for a writer's moment, waiting 1, 2, 4 …
 * 512 ms between them (about 1 s in all): the moment is usually over after the first wait
 * (SQLITE_READONLY_ROLLBACK lasted about 1 ms here), which a first wait of 20 ms overshot.
 */
const TRANSIENT_RETRIES = 10
const TRANSIENT_FIRST_WAIT_MS = 1
/** Between tries to open a database whose WAL files come and go under us. */
const BUSY_BACKOFF_MS = 20
/** Tries to open a database whose WAL files come and go under us, before giving up. */
const SNAPSHOT_ATTEMPTS = 5

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

/** One valid path as the store summary reads it: row id, store path, signatures. */
export interface PathRow {
  id: number
  path: string
  /** Space-separated, as Nix stores them; empty when there are none. */
  sigs: string
}

/** One open connection with its prepared statements. */
class Connection {
  readonly db: Database.Database
  readonly lookup: (hashPart: string) => PathInfo | undefined
  readonly rowsAfter: Database.Statement<[number, number], PathRow>

  constructor (file: string) {
    this.db = new Database(file, { readonly: true, fileMustExist: true, timeout: BUSY_TIMEOUT_MS })
    try {
      // Like Nix's queryPathFromHashPart: the unique index on `path` makes this a range seek.
      const byPrefix = this.db.prepare<[string], ValidPathRow>(
        'select id, path, hash, registrationTime, deriver, narSize, ultimate, sigs, ca from ValidPaths where path >= ? order by path limit 1')
      const references = this.db.prepare<[number], { path: string }>(
        'select p.path as path from Refs r join ValidPaths p on p.id = r.reference where r.referrer = ?')
      // One read transaction, so a path and its references come from the same state.
      this.lookup = this.db.transaction((hashPart: string) => {
        const prefix = `${STORE_DIR}/${hashPart}-`
        const row = byPrefix.get(prefix)
        if (row === undefined || !row.path.startsWith(prefix)) return undefined
        return toPathInfo(row, references.all(row.id).map(r => r.path).sort())
      })
      // `id` is the rowid: a range scan, and Nix's autoincrement never reuses an id.
      this.rowsAfter = this.db.prepare<[number, number], PathRow>(
        "select id, path, coalesce(sigs, '') as sigs from ValidPaths where id > ? order by id limit ?")
    } catch (err) {
      this.db.close()
      throw err
    }
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

/**
 * A connection and the state of the file it stands for: a live connection stays valid while
 * the file is the same inode; a snapshot only while the file is also unchanged and no WAL exists.
 */
interface Source {
  conn: Connection
  snapshot: boolean
  stamp: string
}

function stampOf (st: BigIntStats, snapshot: boolean): string {
  return snapshot ? `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}` : `${st.dev}:${st.ino}`
}

/**
 * SQLite refused for a moment a writer is in: a lock it holds (SQLITE_BUSY, SQLITE_LOCKED), or,
 * in a database Nix keeps without a WAL (`use-sqlite-wal = false`), the journal of a commit under
 * way, which a read-only connection meeting it at the wrong moment takes for a hot journal it
 * may not roll back (SQLITE_READONLY_ROLLBACK, "attempt to write a readonly database"): 1 % of
 * reads and 5 % of opens failed so while `nix-store --add` ran in a loop. A journal
 * left hot by a Nix that crashed stays so until the next Nix rolls it back: the retries run out.
 */
function isTransient (err: unknown): boolean {
  const code = (err as { code?: unknown }).code
  return typeof code === 'string' && (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED') || code === 'SQLITE_READONLY_ROLLBACK')
}

/**
 * SQLite could not create the `-wal`/`-shm` files next to the database: a directory this user
 * may not write (EACCES: SQLITE_READONLY_DIRECTORY), or a read-only mount such as systemd's
 * ProtectSystem=strict / ReadOnlyPaths= (EROFS: plain SQLITE_CANTOPEN, and no `-shm` yet).
 */
function needsWalFiles (err: unknown, file: string): boolean {
  const code = (err as { code?: unknown }).code
  return code === 'SQLITE_READONLY_DIRECTORY' || (code === 'SQLITE_CANTOPEN' && !existsSync(`${file}-shm`))
}

/** Sleeps without returning to the event loop: lookups are synchronous like SQLite's own busy wait. */
function sleepSync (ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms)
}

function describe (err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}

export class NixDb {
  private source: Source
  private readonly file: string

  private constructor (readonly storeRoot: string, private readonly snapshotDir: string) {
    this.file = dbPath(storeRoot)
    this.source = this.connect()
  }

  /**
   * Opens `<storeRoot>/nix/var/nix/db/db.sqlite` read-only; a clear NixDbError if it cannot.
   * `snapshotDir` is where a private copy goes when one is needed (the daemon's state
   * directory: on disk, where a tmpfs /tmp would hold the copy in memory).
   */
  static open (storeRoot: string, opts: { snapshotDir?: string } = {}): NixDb {
    return new NixDb(storeRoot, opts.snapshotDir ?? tmpdir())
  }

  /** True while reading a private copy because the WAL files are missing and cannot be created. */
  get readingSnapshot (): boolean {
    return this.source.snapshot
  }

  /**
   * The valid path whose hash part is `hashPart`, with its references; undefined if none.
   * A malformed hash part is a FormatError.
   */
  byHashPart (hashPart: string): PathInfo | undefined {
    parseHashPart(hashPart)
    return this.read(conn => conn.lookup(hashPart))
  }

  /**
   * Up to `limit` valid paths with a row id above `afterId`, in id order: the paths added
   * since an earlier call (Nix numbers rows in insertion order), or the whole table in pages.
   */
  rowsAfter (afterId: number, limit: number): PathRow[] {
    return this.read(conn => conn.rowsAfter.all(afterId, limit))
  }

  /** Runs a read on the current connection, retrying while a writer is in the way. */
  private read<T> (query: (conn: Connection) => T): T {
    this.refresh()
    for (let attempt = 0; ; attempt++) {
      try {
        return query(this.source.conn)
      } catch (err) {
        if (!isTransient(err) || attempt >= TRANSIENT_RETRIES) throw new NixDbError(`reading Nix database ${this.file} failed: ${describe(err)}`)
        sleepSync(TRANSIENT_FIRST_WAIT_MS << attempt)
      }
    }
  }

  close (): void {
    this.source.conn.db.close()
  }

  /**
   * Reconnects when the connection no longer shows the database: the file was replaced by a
   * new one (restored, moved into place), which the old connection would read forever; or a
   * snapshot went stale, or can give way to a live connection now that the WAL files exist.
   */
  private refresh (): void {
    const { snapshot, stamp } = this.source
    if (stampOf(this.stat(), snapshot) === stamp && !(snapshot && existsSync(`${this.file}-wal`))) return
    const fresh = this.connect()
    this.source.conn.db.close()
    this.source = fresh
  }

  private stat (): BigIntStats {
    try {
      return statSync(this.file, { bigint: true })
    } catch (err) {
      throw new NixDbError(`cannot find Nix database ${this.file} (${describe(err)}); ${this.hint()}`)
    }
  }

  private hint (): string {
    return `check --store-root (now ${JSON.stringify(this.storeRoot)}: the directory holding nix/store and nix/var/nix) and that this user may read the database`
  }

  /** A live connection if possible, else a snapshot when only the missing WAL files prevent one. */
  private connect (): Source {
    let attempts = 0
    let transient = 0
    while (true) {
      const before = this.stat()
      try {
        return { conn: new Connection(this.file), snapshot: false, stamp: stampOf(before, false) }
      } catch (err) {
        if (isTransient(err) && transient < TRANSIENT_RETRIES) {
          // A writer's moment, not missing WAL files: try again, live.
          sleepSync(TRANSIENT_FIRST_WAIT_MS << transient++)
          continue
        }
        if (!needsWalFiles(err, this.file)) throw new NixDbError(`cannot read Nix database ${this.file}: ${describe(err)}; ${this.hint()}`)
      }
      attempts++
      // With a WAL present a writer is creating its files right now: wait for them instead.
      if (!existsSync(`${this.file}-wal`)) {
        const conn = this.openCopy()
        // A writer that started meanwhile may have changed the file as it was copied: retry, live first.
        if (stampOf(this.stat(), true) === stampOf(before, true) && !existsSync(`${this.file}-wal`)) {
          return { conn, snapshot: true, stamp: stampOf(before, true) }
        }
        conn.db.close()
      }
      if (attempts >= SNAPSHOT_ATTEMPTS) throw new NixDbError(`Nix database ${this.file} kept changing while peerix tried to open it; ${this.hint()}`)
      sleepSync(BUSY_BACKOFF_MS << attempts)
    }
  }

  /**
   * Opens a private copy of the database file in rollback-journal mode (header bytes 18 and
   * 19 set to 1), which needs no WAL files. The copy is unlinked once open.
   */
  private openCopy (): Connection {
    const dir = mkdtempSync(join(this.snapshotDir, 'peerix-nixdb-'))
    try {
      const copy = join(dir, 'db.sqlite')
      copyFileSync(this.file, copy)
      const fd = openSync(copy, 'r+')
      try {
        writeSync(fd, Uint8Array.of(1, 1), 0, 2, 18)
      } finally {
        closeSync(fd)
      }
      return new Connection(copy)
    } catch (err) {
      throw new NixDbError(`cannot read a copy of Nix database ${this.file}: ${describe(err)}; ${this.hint()}`)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  }
}
