import assert from 'node:assert/strict'
import { execFile, spawn } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { appendFile, chmod, mkdir, mkdtemp, rm, symlink, truncate, writeFile } from 'node:fs/promises'
import { createServer, type Server } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { narSize, narStream, NarError, SYNC_READ_BYTES } from '../../src/nix/nar.js'
import { hashing, hashNar, NarHasher } from '../../src/nix/nar-hash.js'
import { formatSha256Nix32, toNarHash } from '../../src/nix/hash.js'
import { NixEnv, sampleClosureExpr } from '../helpers/nix.js'

const MiB = 1024 * 1024

async function collect (chunks: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Uint8Array[] = []
  for await (const chunk of chunks) parts.push(Buffer.from(chunk))
  return Buffer.concat(parts)
}

/** Nix's NAR of `path`, whole: of a path in a chroot store via `nix store dump-path`, else `nix-store --dump`. */
async function nixDump (nix: NixEnv, path: string, store?: string): Promise<Buffer> {
  // nix-store --dump reads the file system directly and so ignores --store; dump-path asks the store.
  const [cmd, args] = store === undefined ? ['nix-store', ['--dump', path]] : ['nix', ['store', 'dump-path', '--store', store, path]]
  return await new Promise((resolve, reject) => {
    execFile(cmd, args, { env: nix.env, encoding: 'buffer', maxBuffer: 64 * MiB }, (err, stdout, stderr) => {
      if (err != null) reject(new Error(`${cmd} ${args.join(' ')} failed: ${stderr.toString()}`))
      else resolve(stdout)
    })
  })
}

describe('NAR writer and hasher', () => {
  let nix: NixEnv
  let dir: string

  before(async () => {
    nix = await NixEnv.create('peerix-nar-')
    dir = await mkdtemp(join(tmpdir(), 'peerix-nar-files-'))
  })
  after(async () => {
    await rm(dir, { recursive: true, force: true })
    await nix.cleanup()
  })

  describe('a closure built by nix-build into a chroot store', () => {
    let root: string
    let paths: string[]
    let info: Map<string, { narHash: string, narSize: number }>
    const dumps = new Map<string, Buffer>()

    before(async () => {
      root = nix.storeRoot('store')
      const [top] = await nix.build(root, sampleClosureExpr('nar'))
      paths = await nix.closure(root, top)
      const { stdout } = await nix.run('nix', ['path-info', '--json', '--store', root, ...paths])
      info = new Map((JSON.parse(stdout) as Array<{ path: string, narHash: string, narSize: number }>)
        .map(p => [p.path, { narHash: toNarHash(p.narHash), narSize: p.narSize }]))
      for (const path of paths) dumps.set(path, await nixDump(nix, path, root))
    })

    it('writes every path byte for byte as Nix dumps it, with the NarHash and NarSize Nix reports', async () => {
      assert.equal(paths.length, 3)
      for (const path of paths) {
        const fsPath = join(root, path)
        const dump = dumps.get(path)!
        assert.ok(dump.equals(await collect(narStream(fsPath))), `NAR of ${path} differs from nix-store --dump`)
        assert.equal(await narSize(fsPath), dump.length)
        assert.deepEqual(await hashNar(narStream(fsPath)), info.get(path))
      }
    })

    it('yields chunks of exactly chunkSize but the last, and the same bytes for any chunk size', async () => {
      const leaf = paths.find(p => p.endsWith('-leaf-nar'))!
      for (const chunkSize of [1, 7, 8, 100, 4096]) {
        const chunks: Buffer[] = []
        for await (const chunk of narStream(join(root, leaf), { chunkSize })) chunks.push(Buffer.from(chunk))
        chunks.slice(0, -1).forEach(c => assert.equal(c.length, chunkSize))
        assert.ok(Buffer.concat(chunks).equals(dumps.get(leaf)!), `chunk size ${chunkSize}`)
      }
    })

    it('resumes at any offset with exactly the rest of the dump', async () => {
      const leaf = paths.find(p => p.endsWith('-leaf-nar'))!
      const dump = dumps.get(leaf)!
      const fsPath = join(root, leaf)
      const insideContents = dump.indexOf('#!/bin/sh') + 3
      const named = { start: 0, insideHeader: 5, tokenBoundary: 16, insideContents, end: dump.length }
      for (const [what, offset] of Object.entries(named)) {
        assert.ok(dump.subarray(offset).equals(await collect(narStream(fsPath, { offset }))), `offset ${offset} (${what})`)
      }
      // A stride of 3 (prime to 8) meets every alignment within tokens and keeps the sweep quick.
      for (let offset = 0; offset <= dump.length; offset += 3) {
        const chunkSize = 64 + (offset % 256)
        const rest = await collect(narStream(fsPath, { offset, chunkSize }))
        assert.ok(dump.subarray(offset).equals(rest), `offset ${offset}, chunk size ${chunkSize}`)
      }
    })

    it('refuses an offset beyond the end of the NAR', async () => {
      const fsPath = join(root, paths[0])
      const size = await narSize(fsPath)
      await assert.rejects(collect(narStream(fsPath, { offset: size + 1 })), (err: Error) => err instanceof RangeError && err.message.includes(`offset ${size + 1} is beyond the end`))
    })
  })

  it('writes a lone file, an executable, a symlink, a dangling symlink and an empty dir as nix-store --dump', async () => {
    const cases = join(dir, 'roots')
    await mkdir(cases)
    await writeFile(join(cases, 'plain'), 'eight b\n') // no padding
    await writeFile(join(cases, 'exec'), '#!/bin/sh\n')
    await chmod(join(cases, 'exec'), 0o755)
    await writeFile(join(cases, 'empty'), '')
    await symlink('plain', join(cases, 'link'))
    await symlink('/nonexistent/target', join(cases, 'dangling'))
    await mkdir(join(cases, 'empty-dir'))
    for (const name of ['plain', 'exec', 'empty', 'link', 'dangling', 'empty-dir']) {
      const fsPath = join(cases, name)
      const dump = await nixDump(nix, fsPath)
      assert.ok(dump.equals(await collect(narStream(fsPath))), name)
      assert.equal(await narSize(fsPath), dump.length, name)
    }
  })

  it('orders entries by their bytes, including case, non-ASCII and non-UTF-8 names', async () => {
    const tree = join(dir, 'names')
    await mkdir(tree)
    // JavaScript's default sort (UTF-16 code units) puts '😀' before 'ﬀ'; their UTF-8 bytes do not.
    for (const name of ['B', 'b', 'a', 'ﬀ', '😀', 'é', 'z', 'a.b', 'a-b', 'a b']) await writeFile(join(tree, name), name)
    await writeFile(Buffer.concat([Buffer.from(tree + '/'), Buffer.from([0x61, 0xff, 0xfe])]), 'not utf-8')
    const dump = await nixDump(nix, tree)
    assert.ok(dump.equals(await collect(narStream(tree))))
  })

  /** The NAR of `tree` and how often the event loop turned while it was written. */
  async function turnsWhileWriting (tree: string): Promise<{ nar: Buffer, turns: number }> {
    // setImmediate callbacks run only when the event loop turns, never between microtasks
    let turns = 0
    let walking = true
    const count = (): void => { turns++; if (walking) setImmediate(count) }
    setImmediate(count)
    const nar = await collect(narStream(tree))
    walking = false
    return { nar, turns }
  }

  it('lets the event loop turn while it walks a tree that needs no reads (symlinks, empty files)', async () => {
    const tree = join(dir, 'many-links')
    await mkdir(tree)
    for (let i = 0; i < 2000; i++) await symlink(`target-${i}`, join(tree, `link-${i}`))
    for (let i = 0; i < 500; i++) await writeFile(join(tree, `empty-${i}`), '')
    const { nar, turns } = await turnsWhileWriting(tree)
    assert.ok(turns >= 20, `the event loop turned ${turns} times during a walk of 2,501 nodes`)
    assert.ok(nar.equals(await nixDump(nix, tree)), 'NAR differs from nix-store --dump')
  })

  it('writes a tree of small files (read synchronously) as nix-store --dump, letting the event loop turn', async () => {
    const tree = join(dir, 'small-files')
    await mkdir(tree)
    for (let i = 0; i < 1500; i++) await writeFile(join(tree, `f-${i}`), randomBytes(1 + (i * 37) % SYNC_READ_BYTES))
    await writeFile(join(tree, 'just-above'), randomBytes(SYNC_READ_BYTES + 1))
    const { nar, turns } = await turnsWhileWriting(tree)
    assert.ok(turns >= 20, `the event loop turned ${turns} times while 1,501 files were read`)
    assert.ok(nar.equals(await nixDump(nix, tree)), 'NAR differs from nix-store --dump')
  })

  it('names the path and the file type it cannot archive', async () => {
    const withFifo = join(dir, 'fifo-dir')
    await mkdir(withFifo)
    await nix.run('mkfifo', [join(withFifo, 'pipe')])
    await assert.rejects(collect(narStream(withFifo)), (err: Error) => err instanceof NarError && err.message === `${join(withFifo, 'pipe')} cannot be archived: unsupported file type (named pipe)`)
    await assert.rejects(narSize(withFifo), NarError)

    const withSocket = join(dir, 'socket-dir')
    await mkdir(withSocket)
    const server: Server = createServer()
    server.listen(join(withSocket, 'sock'))
    await once(server, 'listening')
    try {
      await assert.rejects(collect(narStream(withSocket)), (err: Error) => err instanceof NarError && err.message.endsWith('sock cannot be archived: unsupported file type (socket)'))
    } finally {
      server.close()
    }
  })

  describe('a file changing while being read', () => {
    const size = 2 * MiB
    let file: string
    beforeEach(async () => {
      file = join(dir, 'changing')
      await writeFile(file, Buffer.alloc(size, 1))
    })

    it('fails when the file grows', async () => {
      const chunks = narStream(file, { chunkSize: 64 * 1024 })
      await chunks.next()
      await appendFile(file, 'more')
      await assert.rejects(collect(chunks), (err: Error) => err instanceof NarError && err.message === `${file} changed size while being archived (${size} → ${size + 4} bytes)`)
    })

    it('fails when the file shrinks', async () => {
      const chunks = narStream(file, { chunkSize: 64 * 1024 })
      await chunks.next()
      await truncate(file, 100_000)
      await assert.rejects(collect(chunks), (err: Error) => err instanceof NarError && err.message.startsWith(`${file} shrank while being archived (expected ${size} bytes`))
    })
  })

  it('stops when the signal is aborted', async () => {
    const file = join(dir, 'abortable')
    await writeFile(file, Buffer.alloc(MiB))
    const controller = new AbortController()
    const chunks = narStream(file, { chunkSize: 64 * 1024, signal: controller.signal })
    assert.equal((await chunks.next()).done, false)
    controller.abort()
    await assert.rejects(chunks.next(), { name: 'AbortError' })
    await assert.rejects(collect(narStream(file, { signal: AbortSignal.abort() })), { name: 'AbortError' })
  })

  it('refuses a bad offset or chunk size', async () => {
    await assert.rejects(collect(narStream(dir, { offset: -1 })), /invalid NAR offset -1/)
    await assert.rejects(collect(narStream(dir, { offset: 1.5 })), /invalid NAR offset 1\.5/)
    await assert.rejects(collect(narStream(dir, { chunkSize: 0 })), /invalid NAR chunk size 0/)
  })

  it('hashes as bytes flow by, and takes no bytes after the digest', async () => {
    const file = join(dir, 'hashed')
    await writeFile(file, 'some contents')
    const hasher = new NarHasher()
    const passed = await collect(hashing(narStream(file, { chunkSize: 5 }), hasher))
    assert.equal(hasher.size, passed.length)
    const digest = hasher.digest()
    assert.deepEqual(digest, { narHash: formatSha256Nix32(createHash('sha256').update(passed).digest()), narSize: passed.length })
    assert.deepEqual(digest, await hashNar(narStream(file)))
    assert.throws(() => hasher.update(new Uint8Array(1)), /after digest/)
  })

  it('streams a 200 MiB file as nix-store --dump does, in bounded memory, and resumes near its end cheaply', async function () {
    this.timeout(300_000)
    const big = join(dir, 'big')
    await nix.run('sh', ['-c', `head -c ${200 * MiB} /dev/urandom > '${big}'`])
    try {
      const size = await narSize(big)
      const resumeAt = size - 100

      // Nix's dump, hashed as it streams: the whole and the tail from `resumeAt`.
      const nixWhole = createHash('sha256')
      const nixTail = createHash('sha256')
      const child = spawn('nix-store', ['--dump', big], { env: nix.env, stdio: ['ignore', 'pipe', 'inherit'] })
      let seen = 0
      for await (const chunk of child.stdout as AsyncIterable<Buffer>) {
        nixWhole.update(chunk)
        if (seen + chunk.length > resumeAt) nixTail.update(chunk.subarray(Math.max(0, resumeAt - seen)))
        seen += chunk.length
      }
      assert.equal(seen, size)

      const before = process.memoryUsage()
      let peakRss = before.rss
      let peakArrayBuffers = before.arrayBuffers
      const ours = createHash('sha256')
      let chunks = 0
      const fullStart = process.hrtime.bigint()
      for await (const chunk of narStream(big)) {
        ours.update(chunk)
        if (++chunks % 16 === 0) {
          const now = process.memoryUsage()
          peakRss = Math.max(peakRss, now.rss)
          peakArrayBuffers = Math.max(peakArrayBuffers, now.arrayBuffers)
        }
      }
      const fullSeconds = Number(process.hrtime.bigint() - fullStart) / 1e9
      assert.equal(ours.digest('hex'), nixWhole.digest('hex'))
      assert.ok(peakRss - before.rss < 64 * MiB, `RSS grew by ${((peakRss - before.rss) / MiB).toFixed(1)} MiB`)
      assert.ok(peakArrayBuffers - before.arrayBuffers < 64 * MiB, `ArrayBuffers grew by ${((peakArrayBuffers - before.arrayBuffers) / MiB).toFixed(1)} MiB`)

      // the quickest of a few resumes: one stall of a busy machine is not the cost of resuming
      const wantTail = nixTail.digest('hex')
      let resumeSeconds = Infinity
      for (let i = 0; i < 3; i++) {
        const resumeStart = process.hrtime.bigint()
        const tail = await collect(narStream(big, { offset: resumeAt }))
        resumeSeconds = Math.min(resumeSeconds, Number(process.hrtime.bigint() - resumeStart) / 1e9)
        assert.equal(createHash('sha256').update(tail).digest('hex'), wantTail)
      }
      assert.ok(resumeSeconds < fullSeconds / 10, `resuming took ${resumeSeconds}s, the whole NAR ${fullSeconds}s`)
    } finally {
      await rm(big, { force: true })
    }
  })
})
