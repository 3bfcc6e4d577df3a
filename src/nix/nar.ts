/**
 * Serialises a file-system path into Nix's archive format (NAR), byte for byte what
 * `nix-store --dump` writes, as a stream of chunks with bounded memory: file contents are read
 * straight into the output chunk, a chunk at a time, and the next chunk is only read when the
 * consumer pulls. A transfer can resume mid-NAR (`offset`): positions follow from lstat sizes,
 * so whole files before the offset are skipped without being opened.
 *
 * Metadata calls (lstat, readdir, readlink, open, fstat) are synchronous: each takes
 * microseconds on a local store, while the async ones each wait for a turn in libuv's thread
 * pool, which the reads of other transfers keep busy; a NAR of one file cost four such waits
 * before its first byte. So are reads of small files (SYNC_READ_BYTES); larger files are read
 * asynchronously, so that a disk slow to deliver them does not hold the event loop.
 *
 * The format: every token is a string of an 8-byte little-endian length, the bytes and zero
 * padding to a multiple of 8. A node is `( type regular [executable ""] contents <data> )`,
 * `( type symlink target <target> )` or `( type directory (entry ( name <n> node <node> ))* )`
 * with entries in byte-wise order of their names, the whole prefixed by `nix-archive-1`.
 */
import { closeSync, constants, fstatSync, lstatSync, openSync, read, readdirSync, readlinkSync, readSync, type Stats } from 'node:fs'
import { promisify } from 'node:util'

const readAt = promisify(read)

/**
 * Output chunk size. Measured with `npx tsx bench/nar-writer.ts` (NAR of a 256 MiB file from the
 * page cache, 2-core VM, four runs; figures vary a lot between runs): raw / hashed as it streams,
 * MiB/s — 64 KiB 370–1457 / 444–751; 256 KiB 599–2835 / 886–1072; 1 MiB 1515–3159 / 587–1013;
 * 4 MiB 991–3075 / 434–1181 (`nix-store --dump | sha256sum`: 190–234). 256 KiB is as fast as any
 * once hashed (which serving and verifying always do) and keeps the writer's memory small.
 */
export const DEFAULT_CHUNK_SIZE = 256 * 1024

export interface NarOptions {
  /** Start the output at this byte of the NAR (to resume a transfer). */
  offset?: number
  /** Size of the chunks yielded (the last one may be shorter). */
  chunkSize?: number
  signal?: AbortSignal
}

/**
 * Files up to this size are read synchronously, like the metadata calls: one read of a
 * cached small file takes microseconds, while an async read waits for a thread of libuv's pool
 * and a turn of the event loop. Most files of a store path are this small. (On a cold disk a
 * read waits for the disk as the lstat before it does; the walk's turn every NODES_PER_TURN
 * nodes bounds both.) `npx tsx
 * bench/nar-writer.ts` (a tree of 3,000 files of 0.5–32 KiB, best of 5, alternating twice):
 * 262–264 ms with async reads, 107–108 ms with these, `nix-store --dump` 99–111 ms.
 */
export const SYNC_READ_BYTES = 64 * 1024

/** The path cannot be archived as it is: an unsupported file type or a file changing under us. */
export class NarError extends Error {
  override name = 'NarError'
}

/** A regular file's contents, to be copied in at this point of the NAR. */
interface FileContents { path: Buffer, stat: Stats }

/** The NAR as a sequence of literal bytes and file contents, walked from lstat alone. */
type Piece = Uint8Array | FileContents

/** Streams the NAR of `fsPath` (not following a symlink at `fsPath` or below it). */
export async function * narStream (fsPath: string, opts: NarOptions = {}): AsyncGenerator<Uint8Array> {
  const offset = opts.offset ?? 0
  const chunkSize = opts.chunkSize ?? DEFAULT_CHUNK_SIZE
  if (!Number.isSafeInteger(offset) || offset < 0) throw new RangeError(`invalid NAR offset ${offset}: expected a non-negative integer`)
  if (!Number.isSafeInteger(chunkSize) || chunkSize < 1) throw new RangeError(`invalid NAR chunk size ${chunkSize}: expected a positive integer`)

  const out = new ChunkedOutput(chunkSize, offset)
  for await (const piece of narPieces(Buffer.from(fsPath), opts.signal)) {
    if (piece instanceof Uint8Array) yield * out.put(piece)
    else yield * out.copyFile(piece, opts.signal)
  }
  if (out.skipLeft > 0) throw new RangeError(`NAR offset ${offset} is beyond the end of the NAR of ${fsPath} (${offset - out.skipLeft} bytes)`)
  yield * out.flush()
}

/** The length of the NAR of `fsPath`, from lstat and readlink alone. */
export async function narSize (fsPath: string): Promise<number> {
  let size = 0
  for await (const piece of narPieces(Buffer.from(fsPath))) {
    size += piece instanceof Uint8Array ? piece.length : piece.stat.size
  }
  return size
}

/** Fills fixed-size chunks from literal bytes and file contents, dropping the first `skip` bytes. */
class ChunkedOutput {
  private chunk: Buffer
  private filled = 0

  constructor (private readonly chunkSize: number, private skip: number) {
    this.chunk = Buffer.allocUnsafe(chunkSize)
  }

  /** Bytes of the requested offset not reached yet (0 once output has started). */
  get skipLeft (): number {
    return this.skip
  }

  * put (bytes: Uint8Array): Generator<Uint8Array> {
    if (this.skip >= bytes.length) { this.skip -= bytes.length; return }
    bytes = bytes.subarray(this.skip)
    this.skip = 0
    while (bytes.length > 0) {
      const n = Math.min(bytes.length, this.chunkSize - this.filled)
      this.chunk.set(bytes.subarray(0, n), this.filled)
      this.filled += n
      bytes = bytes.subarray(n)
      if (this.filled === this.chunkSize) yield this.take()
    }
  }

  /**
   * Reads the file straight into the output chunks. The file must still be the one lstat saw
   * and keep that size throughout, or the NAR (whose lengths came from lstat) would be wrong.
   */
  async * copyFile ({ path, stat }: FileContents, signal?: AbortSignal): AsyncGenerator<Uint8Array> {
    const size = stat.size
    if (this.skip >= size) { this.skip -= size; return }
    let position = this.skip
    this.skip = 0
    const fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW)
    try {
      const opened = fstatSync(fd)
      if (opened.ino !== stat.ino || opened.dev !== stat.dev) throw new NarError(`${path.toString()} was replaced while being archived`)
      if (opened.size !== size) throw new NarError(`${path.toString()} changed size while being archived (${size} → ${opened.size} bytes)`)
      while (position < size) {
        signal?.throwIfAborted()
        const want = Math.min(size - position, this.chunkSize - this.filled)
        const bytesRead = size <= SYNC_READ_BYTES
          ? readSync(fd, this.chunk, this.filled, want, position)
          : (await readAt(fd, this.chunk, this.filled, want, position)).bytesRead
        if (bytesRead === 0) throw new NarError(`${path.toString()} shrank while being archived (expected ${size} bytes, ended at ${position})`)
        this.filled += bytesRead
        position += bytesRead
        if (this.filled === this.chunkSize) yield this.take()
      }
      const after = fstatSync(fd)
      if (after.size !== size) throw new NarError(`${path.toString()} changed size while being archived (${size} → ${after.size} bytes)`)
    } finally {
      // an async generator cannot be closed while it awaits a read, so none is in flight here
      closeSync(fd)
    }
  }

  /** The last, partial chunk: a copy, so a consumer keeping it does not keep a whole chunk. */
  * flush (): Generator<Uint8Array> {
    if (this.filled > 0) yield Buffer.from(this.chunk.subarray(0, this.filled))
    this.filled = 0
  }

  /** Hands the full chunk to the consumer, who may keep it, and starts a fresh one. */
  private take (): Uint8Array {
    const full = this.chunk
    this.chunk = Buffer.allocUnsafe(this.chunkSize)
    this.filled = 0
    return full
  }
}

/**
 * Nodes walked between two turns of the event loop. The walk's calls are synchronous, and a
 * tree of symlinks or empty files needs no read: without turns the NAR of 20,000 symlinks held
 * the loop for 0.5 s in one piece, during which the daemon answered nothing else; with a turn
 * every 64 nodes the longest piece is ~1.7 ms and the walk takes as long (0.5 s, against 1.9 s
 * when every lstat and readlink waited for the thread pool).
 */
const NODES_PER_TURN = 64

async function * narPieces (path: Buffer, signal?: AbortSignal): AsyncGenerator<Piece> {
  yield MAGIC
  yield * nodePieces(path, signal, { nodes: 0 })
}

async function * nodePieces (path: Buffer, signal: AbortSignal | undefined, walk: { nodes: number }): AsyncGenerator<Piece> {
  if (++walk.nodes % NODES_PER_TURN === 0) await new Promise(resolve => setImmediate(resolve))
  signal?.throwIfAborted()
  const stat = lstatSync(path)
  if (stat.isFile()) {
    yield Buffer.concat([(stat.mode & 0o100) !== 0 ? EXECUTABLE_OPEN : REGULAR_OPEN, u64(stat.size)])
    yield { path, stat }
    yield Buffer.concat([ZEROS.subarray(0, padding(stat.size)), CLOSE])
  } else if (stat.isSymbolicLink()) {
    yield Buffer.concat([SYMLINK_OPEN, token(readlinkSync(path, { encoding: 'buffer' })), CLOSE])
  } else if (stat.isDirectory()) {
    yield DIRECTORY_OPEN
    // Nix keeps entries in a std::map<std::string, …>: byte-wise order, which Buffer.compare gives.
    const names = readdirSync(path, { encoding: 'buffer' }).sort(Buffer.compare)
    for (const name of names) {
      yield Buffer.concat([ENTRY_OPEN, token(name), NODE])
      yield * nodePieces(Buffer.concat([path, SLASH, name]), signal, walk)
      yield CLOSE
    }
    yield CLOSE
  } else {
    throw new NarError(`${path.toString()} cannot be archived: unsupported file type (${fileType(stat)})`)
  }
}

function fileType (stat: Stats): string {
  if (stat.isSocket()) return 'socket'
  if (stat.isFIFO()) return 'named pipe'
  if (stat.isCharacterDevice()) return 'character device'
  if (stat.isBlockDevice()) return 'block device'
  return `mode ${stat.mode.toString(8)}`
}

function padding (length: number): number {
  return (8 - (length % 8)) % 8
}

function u64 (n: number): Buffer {
  const b = Buffer.alloc(8)
  b.writeBigUInt64LE(BigInt(n))
  return b
}

/** A NAR string: length, bytes, zero padding to 8. */
function token (s: string | Uint8Array): Buffer {
  const bytes = typeof s === 'string' ? Buffer.from(s) : s
  return Buffer.concat([u64(bytes.length), bytes, ZEROS.subarray(0, padding(bytes.length))])
}

const ZEROS = Buffer.alloc(8)
const SLASH = Buffer.from('/')
const MAGIC = token('nix-archive-1')
const CLOSE = token(')')
const NODE = token('node')
const ENTRY_OPEN = Buffer.concat(['entry', '(', 'name'].map(token))
const REGULAR_OPEN = Buffer.concat(['(', 'type', 'regular', 'contents'].map(token))
const EXECUTABLE_OPEN = Buffer.concat(['(', 'type', 'regular', 'executable', '', 'contents'].map(token))
const SYMLINK_OPEN = Buffer.concat(['(', 'type', 'symlink', 'target'].map(token))
const DIRECTORY_OPEN = Buffer.concat(['(', 'type', 'directory'].map(token))
