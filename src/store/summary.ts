/**
 * What this host would serve, as summary keys (summary-keys.ts) that peers keep so they can
 * skip asking for paths we do not have (protocols/peerix-index-1.md).
 *
 * A peer must learn nothing from a summary about paths it would be refused, so there is one
 * view per audience of the serving policy: `anyone` (the paths served to every peer) and,
 * when there are --trusted-peer peers, `trusted` (what they may have besides). The policy
 * treats every trusted peer alike, so one of them stands for all. A path refused to a peer is
 * then absent from its view: it never asks, and gets the 404 it would have got anyway.
 *
 * Kept current cheaply: a poll reads only the rows Nix added since the last one (row ids only
 * grow); a periodic resync re-reads every row, which catches garbage-collected paths and
 * signatures added to existing ones. Decisions are remembered per row and signature list, so
 * a resync re-decides (and verifies signatures of) only what changed.
 *
 * A pass reads the database a page at a time and lets the event loop turn between pieces of
 * SLICE_MS, whether or not it has anything to decide: a resync that re-decided nothing read a
 * 100,000-path store in one piece of 175-200 ms (2-core VM), every --index-resync, during
 * which the daemon answered neither Nix nor its peers. close() abandons a pass at its next
 * turn: the first pass over a large store takes seconds (5 s for 100,000 paths signed by
 * cache.nixos.org), and a daemon told to stop waited for it.
 */
import { FormatError } from '../nix/errors.js'
import { parseStorePath } from '../nix/store-path.js'
import { silentLogger, type Logger } from '../log.js'
import { LogEvery } from '../log-every.js'
import { keySetDiff, summaryKey, toKeySet, type KeySetDelta } from './summary-keys.js'
import { NixDb, type PathRow } from './db.js'
import type { PathInfo } from './path-info.js'
import type { ServingPolicy } from './serving-policy.js'

export type SummaryViewName = 'anyone' | 'trusted'

/** One audience's keys at one version; versions count changes, starting at 1. */
export interface SummaryView {
  version: number
  keys: Uint32Array
}

/**
 * A view changed: `delta` leads from version - 1 to `version`; without one (the view was
 * rebuilt, or became unknown) a subscriber needs the whole view again.
 */
export interface SummaryChange {
  view: SummaryViewName
  version: number
  delta?: KeySetDelta
}

/** The parts of NixDb the summary reads. */
export interface SummaryDb {
  rowsAfter: (afterId: number, limit: number) => PathRow[]
  byHashPart: (hashPart: string) => PathInfo | undefined
}

export interface StoreSummaryOptions {
  db: SummaryDb
  /** Called by close(): the database the summary opened itself. */
  closeDb?: () => void
  /** The serving policy; without one every valid path is served to every peer. */
  policy?: Pick<ServingPolicy, 'decide'>
  /** The --trusted-peer list: these peers get the `trusted` view. */
  trustedPeers?: readonly string[]
  /** A view with more keys than this is not offered (peers then ask as if there were none). */
  maxKeys?: number
  log?: Logger
}

/** Peers ask a peer without a summary directly, so past this a summary is not worth sending. */
export const DEFAULT_MAX_KEYS = 4_000_000
/** Rows read from the database per query. */
const PAGE_ROWS = 5000
/** A pass (reading rows, verifying signatures) yields to the event loop after this long. */
const SLICE_MS = 10
/** Stands for every peer that is not a --trusted-peer: no peer ID is empty. */
const ANYONE = ''

interface RowState {
  /** A row id names this path only while the database file stays the same (a restore reuses ids). */
  path: string
  key: number
  sigs: string
  /** Indexed like #audiences: visible to that audience. */
  visible: boolean[]
}

interface ViewState {
  name: SummaryViewName
  /** The peer the policy is asked about. */
  peer: string
  version: number
  keys: Set<number>
  sorted?: Uint32Array
}

export class StoreSummary {
  readonly #db: SummaryDb
  readonly #closeDb?: () => void
  readonly #policy?: Pick<ServingPolicy, 'decide'>
  readonly #trusted: Set<string>
  readonly #maxKeys: number
  readonly #log: Logger
  /** A store that cannot be read fails every poll (each --index-interval): one warning a minute. */
  readonly #readFailures: LogEvery
  readonly #views: ViewState[]
  readonly #listeners = new Set<(change: SummaryChange) => void>()
  #rows = new Map<number, RowState>()
  #lastId = 0
  #sliceStart = 0
  /** Polls and resyncs run one at a time, in the order they were asked for. */
  #queue: Promise<void> = Promise.resolve()
  #timer?: NodeJS.Timeout
  /** False until the first resync succeeds, and after a failed read until the next one. */
  #ready = false
  /** Set by close(): a pass under way stops at its next turn of the event loop. */
  #closed = false

  constructor (opts: StoreSummaryOptions) {
    this.#db = opts.db
    this.#closeDb = opts.closeDb
    this.#policy = opts.policy
    this.#trusted = new Set(opts.trustedPeers ?? [])
    this.#maxKeys = opts.maxKeys ?? DEFAULT_MAX_KEYS
    this.#log = opts.log ?? silentLogger
    this.#readFailures = new LogEvery((line) => { this.#log.warn(line) }, (line) => { this.#log.debug(line) })
    const first = opts.trustedPeers?.[0]
    this.#views = [{ name: 'anyone', peer: ANYONE, version: 0, keys: new Set() }]
    if (first !== undefined && opts.policy !== undefined) this.#views.push({ name: 'trusted', peer: first, version: 0, keys: new Set() })
  }

  /** A summary of the store at `storeRoot` over its own read-only connection (NixDbError if unreadable). */
  static open (storeRoot: string, opts: Omit<StoreSummaryOptions, 'db' | 'closeDb'> = {}): StoreSummary {
    const db = NixDb.open(storeRoot)
    return new StoreSummary({ ...opts, db, closeDb: () => { db.close() } })
  }

  /** The view a peer gets. */
  viewNameOf (peer: string): SummaryViewName {
    return this.#trusted.has(peer) && this.#views.length > 1 ? 'trusted' : 'anyone'
  }

  /** The peer's view, or undefined while there is none to offer (not built, read failed, too large). */
  view (peer: string): SummaryView | undefined {
    const view = this.#view(this.viewNameOf(peer))
    if (!this.#ready || view.keys.size > this.#maxKeys) return undefined
    view.sorted ??= toKeySet(view.keys)
    return { version: view.version, keys: view.sorted }
  }

  /** Calls `listener` on every change of any view; returns the function that stops it. */
  onChange (listener: (change: SummaryChange) => void): () => void {
    this.#listeners.add(listener)
    return () => { this.#listeners.delete(listener) }
  }

  /**
   * Builds the summary, then polls every `intervalMs` and resyncs every `resyncMs`: a path
   * Nix adds is in the views within one interval, a collected or re-signed one within one
   * resync interval.
   */
  start (intervalMs: number, resyncMs: number): void {
    let nextResync = Date.now() + resyncMs
    const tick = async (): Promise<void> => {
      if (Date.now() >= nextResync) {
        nextResync = Date.now() + resyncMs
        await this.resync()
      } else {
        await this.poll()
      }
      if (this.#timer !== undefined) this.#timer = setTimeout(() => { void tick() }, intervalMs)
    }
    this.#timer = setTimeout(() => { void tick() }, 0)
  }

  stop (): void {
    clearTimeout(this.#timer)
    this.#timer = undefined
  }

  /** Stops, and closes the database once the poll or resync under way has stopped at its next turn. */
  async close (): Promise<void> {
    this.#closed = true
    this.stop()
    await this.#queue
    this.#closeDb?.()
  }

  /** Adds the paths Nix registered since the last poll (a full resync if there is no summary yet). */
  async poll (): Promise<void> {
    await this.#exclusive(async () => {
      if (this.#ready) await this.#poll()
      else await this.#resync()
    })
  }

  /** Re-reads every row: drops collected paths, re-decides rows whose signatures changed. */
  async resync (): Promise<void> {
    await this.#exclusive(async () => { await this.#resync() })
  }

  async #exclusive (work: () => Promise<void>): Promise<void> {
    const run = this.#queue.then(work)
    this.#queue = run
    await run
  }

  async #poll (): Promise<void> {
    try {
      const added = this.#views.map(() => new Set<number>())
      for (let rows = await this.#page(this.#lastId); rows.length > 0; rows = await this.#page(this.#lastId)) {
        for (const row of rows) {
          const state = await this.#decide(row)
          this.#rows.set(row.id, state)
          this.#lastId = row.id
          this.#views.forEach((view, i) => {
            if (state.visible[i] && !view.keys.has(state.key)) {
              view.keys.add(state.key)
              added[i].add(state.key)
            }
          })
        }
      }
      this.#views.forEach((view, i) => {
        if (added[i].size === 0) return
        view.sorted = undefined
        this.#changed(view, { added: toKeySet(added[i]), removed: new Uint32Array(0) })
      })
    } catch (err) {
      this.#fail(err)
    }
  }

  async #resync (): Promise<void> {
    try {
      const rows = new Map<number, RowState>()
      // Each view's keys, gathered as the rows are read rather than in one more pass over them.
      const viewKeys = this.#views.map(() => new Set<number>())
      let lastId = 0
      for (let page = await this.#page(0); page.length > 0; page = await this.#page(lastId)) {
        for (const row of page) {
          const known = this.#rows.get(row.id)
          const state = known !== undefined && known.path === row.path && known.sigs === row.sigs ? known : await this.#decide(row)
          rows.set(row.id, state)
          viewKeys.forEach((keys, i) => { if (state.visible[i]) keys.add(state.key) })
          lastId = row.id
        }
      }
      const wasReady = this.#ready
      if (!wasReady) this.#log.info(`index: summary of ${rows.size} paths ready for peers`)
      this.#rows = rows
      this.#lastId = lastId
      this.#ready = true
      this.#views.forEach((view, i) => {
        const keys = viewKeys[i]
        const before = view.sorted ?? toKeySet(view.keys)
        view.keys = keys
        view.sorted = toKeySet(keys)
        if (!wasReady) { this.#changed(view); return }
        const delta = keySetDiff(before, view.sorted)
        if (delta.added.length > 0 || delta.removed.length > 0) this.#changed(view, delta)
      })
    } catch (err) {
      this.#fail(err)
    }
  }

  /**
   * The row's key and who may see it. A row this daemon cannot read (a name older Nix allowed
   * and newer Nix refuses, such as `.-x`) is left out, logged, and hides only itself.
   */
  async #decide (row: PathRow): Promise<RowState> {
    try {
      return await this.#decideRow(row)
    } catch (err) {
      // Only a row that will never read differently; a failed database read fails the pass.
      if (!(err instanceof FormatError)) throw err
      this.#log.warn(`index: leaving ${row.path} out of the summary: ${err.message}`)
      return { path: row.path, key: 0, sigs: row.sigs, visible: this.#views.map(() => false) }
    }
  }

  /** `#decide` for a row that may throw; yields first when deciding has held the loop too long. */
  async #decideRow (row: PathRow): Promise<RowState> {
    const { hashPart } = parseStorePath(row.path)
    const key = summaryKey(hashPart)
    const policy = this.#policy
    if (policy === undefined) return { path: row.path, key, sigs: row.sigs, visible: this.#views.map(() => true) }
    await this.#turn()
    const info = this.#db.byHashPart(hashPart)
    // Gone since the row was read: the next resync drops it; meanwhile nobody is told of it.
    const visible = this.#views.map(view => info !== undefined && policy.decide(info, view.peer).allowed)
    return { path: row.path, key, sigs: row.sigs, visible }
  }

  /** The next page of rows after `afterId`, read at a turn of the event loop if the pass has held it long enough. */
  async #page (afterId: number): Promise<PathRow[]> {
    await this.#turn()
    return this.#db.rowsAfter(afterId, PAGE_ROWS)
  }

  /** Lets the event loop turn once the pass has held it for SLICE_MS; throws Closed once close() was called. */
  async #turn (): Promise<void> {
    if (performance.now() - this.#sliceStart > SLICE_MS) {
      await new Promise(resolve => setImmediate(resolve))
      this.#sliceStart = performance.now()
    }
    if (this.#closed) throw new Closed()
  }

  #view (name: SummaryViewName): ViewState {
    return this.#views.find(v => v.name === name) ?? this.#views[0]
  }

  #changed (view: ViewState, delta?: KeySetDelta): void {
    view.version += 1
    const change: SummaryChange = delta === undefined ? { view: view.name, version: view.version } : { view: view.name, version: view.version, delta }
    for (const listener of this.#listeners) listener(change)
  }

  /** A read failed: offer no view (peers ask directly) until a resync succeeds. */
  #fail (err: unknown): void {
    // Abandoned by close(): nobody is told anything any more.
    if (err instanceof Closed) return
    this.#readFailures.line('read', `index: cannot read the store for the summary: ${err instanceof Error ? err.message : String(err)}`)
    const wasReady = this.#ready
    this.#ready = false
    if (wasReady) for (const view of this.#views) this.#changed(view)
  }
}

/** Ends a pass that close() abandoned. */
class Closed extends Error {
  override name = 'Closed'
}
