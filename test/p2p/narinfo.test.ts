import '../../src/polyfill.js'
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import { formatSha256Nix32 } from '../../src/nix/hash.js'
import { formatNarInfo } from '../../src/nix/narinfo.js'
import { toNix32 } from '../../src/nix/nix32.js'
import { narinfo, NARINFO_PROTOCOL } from '../../src/p2p/narinfo/index.js'
import { NarinfoResponse } from '../../src/p2p/narinfo/pb/message.js'
import { encodeFrame } from '../../src/p2p/wire/frame.js'
import { StreamReader } from '../../src/p2p/wire/stream-reader.js'
import { LogLines, loopbackNode } from './node-helpers.js'
import type { NarinfoService, NarinfoServiceInit } from '../../src/p2p/narinfo/index.js'
import type { NarInfo } from '../../src/nix/narinfo.js'
import type { NarBytes, NarInfoOptions, PathSource, Served, ServedNarInfo } from '../../src/store/source.js'
import type { Libp2p, Stream } from '@libp2p/interface'

type Node = Libp2p<{ narinfo: NarinfoService }>

/** A store hash part made from a label, so each fixture path has its own. */
function hashPartOf (label: string): string {
  return toNix32(createHash('sha256').update(label).digest().subarray(0, 20))
}

function infoFor (label: string): NarInfo {
  const hashPart = hashPartOf(label)
  return {
    storePath: `/nix/store/${hashPart}-${label}`,
    url: `nar/${hashPart}.nar`,
    compression: 'none',
    narHash: formatSha256Nix32(createHash('sha256').update(`nar of ${label}`).digest()),
    narSize: 1234,
    references: [],
    sigs: []
  }
}

/**
 * What a fixture store was asked, and its answers: found, refused, throwing, hanging. Asked
 * for a NAR with the narinfo, it hands out the one it has whatever its size, so the tests see
 * the responder's own limits.
 */
class FixtureSource implements PathSource {
  readonly asked: Array<{ hashPart: string, peer: string, narUpTo?: number }> = []
  readonly found = new Map<string, NarInfo>()
  readonly refused = new Map<string, string>()
  readonly failing = new Set<string>()
  readonly hanging = new Set<string>()
  /** NAR bytes by hash part, for the NARs sent with a narinfo (r2). */
  readonly nars = new Map<string, Uint8Array>()

  async narInfo (hashPart: string, peer: string, options: NarInfoOptions = {}): Promise<ServedNarInfo> {
    this.asked.push({ hashPart, peer, ...(options.narUpTo !== undefined && { narUpTo: options.narUpTo }) })
    if (this.hanging.has(hashPart)) return await new Promise(() => {})
    if (this.failing.has(hashPart)) throw new Error('database is locked at /secret/path')
    const reason = this.refused.get(hashPart)
    if (reason !== undefined) return { status: 'refused', reason }
    const info = this.found.get(hashPart)
    if (info === undefined) return { status: 'absent' }
    const nar = this.nars.get(hashPart)
    if (options.narUpTo === undefined || nar === undefined) return { status: 'found', value: info }
    return { status: 'found', value: info, nar: { length: info.narSize, stream: (async function * () { yield nar.subarray(0, 600); yield nar.subarray(600) })() } }
  }

  async nar (): Promise<Served<NarBytes>> {
    throw new Error('the narinfo service never reads a NAR on its own')
  }
}

async function createNode (init: Omit<NarinfoServiceInit, 'source'> & { source?: PathSource } = {}): Promise<Node> {
  return await loopbackNode({ narinfo: narinfo({ source: init.source ?? new FixtureSource(), ...init }) })
}

/** A stream to the server's narinfo protocol on which the test writes bytes by hand. */
async function rawStream (from: Node, to: Node): Promise<Stream> {
  return await from.dialProtocol(to.getMultiaddrs()[0], NARINFO_PROTOCOL)
}

/** The status a stream ends in: 'reset' when the remote reset it, 'closed' when it closed cleanly. */
async function ending (stream: Stream, within: number): Promise<string> {
  if (stream.status === 'open' || stream.status === 'closing') {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => { reject(new Error(`stream still ${stream.status} after ${within} ms`)) }, within)
      stream.addEventListener('close', () => { clearTimeout(timer); resolve() }, { once: true })
    })
  }
  return stream.status
}

describe('/peerix/narinfo/1', function () {
  this.timeout(20_000)
  const nodes: Node[] = []
  let source: FixtureSource
  let server: Node
  let client: Node

  async function started (init: Parameters<typeof createNode>[0] = {}): Promise<Node> {
    const node = await createNode(init)
    nodes.push(node)
    return node
  }

  beforeEach(async () => {
    source = new FixtureSource()
    server = await started({ source })
    client = await started({ timeout: 10_000 })
    await client.dial(server.getMultiaddrs()[0])
  })

  afterEach(async () => {
    await Promise.all(nodes.splice(0).map(async (node) => { await node.stop() }))
  })

  it('answers FOUND with the narinfo text the server store serves, naming the asking peer to the store', async () => {
    const info = infoFor('hello-2.12')
    source.found.set(hashPartOf('hello-2.12'), info)
    const answer = await client.services.narinfo.query(server.peerId, hashPartOf('hello-2.12'))
    assert.deepEqual(answer, { status: 'found', value: formatNarInfo(info) })
    assert.deepEqual(source.asked, [{ hashPart: hashPartOf('hello-2.12'), peer: client.peerId.toString() }])
  })

  it('sends the NAR along when asked for it and it is no larger than asked (r2), read for the asking peer', async () => {
    const label = 'small-1'
    const info = infoFor(label)
    const nar = new Uint8Array(1234).map((_, i) => i * 31)
    source.found.set(hashPartOf(label), info)
    source.nars.set(hashPartOf(label), nar)
    const asked = async (maxNarBytes?: number): Promise<unknown> => await client.services.narinfo.query(server.peerId, hashPartOf(label), { maxNarBytes })
    const answer = await asked(1234) as { status: string, value: string, nar: Uint8Array }
    assert.deepEqual({ ...answer, nar: Uint8Array.from(answer.nar) }, { status: 'found', value: formatNarInfo(info), nar })
    assert.deepEqual(source.asked, [{ hashPart: hashPartOf(label), peer: client.peerId.toString(), narUpTo: 1234 }])
    assert.deepEqual(await asked(1233), { status: 'found', value: formatNarInfo(info) }, 'larger than asked')
    assert.deepEqual(await asked(), { status: 'found', value: formatNarInfo(info) }, 'not asked')
    assert.deepEqual(source.asked.slice(1).map(a => a.narUpTo), [1233, undefined], 'the store is asked for no NAR that is not wanted')
  })

  it('sends no NAR larger than 64 KiB, however much is asked, and answers without one the store cannot give whole', async () => {
    const big = { ...infoFor('big'), narSize: 64 * 1024 + 1 }
    source.found.set(hashPartOf('big'), big)
    source.nars.set(hashPartOf('big'), new Uint8Array(big.narSize))
    assert.deepEqual(await client.services.narinfo.query(server.peerId, hashPartOf('big'), { maxNarBytes: 1 << 30 }), { status: 'found', value: formatNarInfo(big) })
    assert.equal(source.asked.at(-1)?.narUpTo, 64 * 1024)
    // infoFor says NarSize 1234; the store's NAR is shorter.
    source.found.set(hashPartOf('short'), infoFor('short'))
    source.nars.set(hashPartOf('short'), new Uint8Array(1000))
    assert.deepEqual(await client.services.narinfo.query(server.peerId, hashPartOf('short'), { maxNarBytes: 2000 }), { status: 'found', value: formatNarInfo(infoFor('short')) })
  })

  it('answers ABSENT for a path the store does not have', async () => {
    const answer = await client.services.narinfo.query(server.peerId, hashPartOf('not-here'))
    assert.deepEqual(answer, { status: 'absent' })
  })

  it('answers REFUSED with the serving policy\'s reason', async () => {
    source.refused.set(hashPartOf('secret'), 'built here and not signed by a trusted key')
    const answer = await client.services.narinfo.query(server.peerId, hashPartOf('secret'))
    assert.deepEqual(answer, { status: 'refused', reason: 'built here and not signed by a trusted key' })
  })

  it('answers ERROR without the store\'s internal message when the store fails', async () => {
    source.failing.add(hashPartOf('broken'))
    const answer = await client.services.narinfo.query(server.peerId, hashPartOf('broken'))
    assert.equal(answer.status, 'error')
    assert.match((answer as { message: string }).message, /ERROR: the store could not answer/)
    assert.doesNotMatch((answer as { message: string }).message, /secret/)
  })

  it('warns once, not per request, while the store fails every request the same way', async () => {
    // A store whose database moved away fails each of a peer's requests: 4,874 warnings in 4 s.
    const lines = new LogLines()
    const failing = new FixtureSource()
    const logged = await started({ source: failing, log: lines.logger })
    await client.dial(logged.getMultiaddrs()[0])
    const labels = Array.from({ length: 20 }, (_, i) => `gone-${i}`)
    for (const label of labels) failing.failing.add(hashPartOf(label))
    for (const label of labels) assert.equal((await client.services.narinfo.query(logged.peerId, hashPartOf(label))).status, 'error')
    assert.equal(lines.matching(/warn narinfo: cannot answer/).length, 1, lines.lines.map(l => l.line).join('\n'))
    assert.equal(lines.matching(/debug narinfo: cannot answer/).length, labels.length - 1)
  })

  it('does not send a request for a hash part that is not one', async () => {
    const answer = await client.services.narinfo.query(server.peerId, '../../etc/passwd')
    assert.equal(answer.status, 'error')
    assert.match((answer as { message: string }).message, /invalid store path hash/)
    assert.equal(source.asked.length, 0)
  })

  it('answers many concurrent queries on one connection, each with its own path', async () => {
    const labels = Array.from({ length: 200 }, (_, i) => `path-${i}`)
    for (const label of labels.filter((_, i) => i % 2 === 0)) source.found.set(hashPartOf(label), infoFor(label))
    // a burst on a connection the server has not finished setting up trips yamux's limit of
    // 10 "early" streams (a libp2p matter, not this protocol's): let one query go first
    assert.equal((await client.services.narinfo.query(server.peerId, hashPartOf('warm-up'))).status, 'absent')
    const answers = await Promise.all(labels.map(async (label) => await client.services.narinfo.query(server.peerId, hashPartOf(label))))
    answers.forEach((answer, i) => {
      if (i % 2 === 0) assert.deepEqual(answer, { status: 'found', value: formatNarInfo(infoFor(labels[i])) })
      else assert.deepEqual(answer, { status: 'absent' })
    })
  })

  it('closes its idle streams before its node closes the connection, so that stopping warns of no listener leak', async () => {
    // libp2p closes a connection with one signal handed to every stream's close; after a
    // burst of queries the pooled streams each waited on it, and 11 made Node warn of a leak.
    const warnings: string[] = []
    const onWarning = (warning: Error): void => { warnings.push(`${warning.name}: ${warning.message}`) }
    process.on('warning', onWarning)
    try {
      assert.equal((await client.services.narinfo.query(server.peerId, hashPartOf('warm-up'))).status, 'absent')
      await Promise.all(Array.from({ length: 100 }, async (_, i) => await client.services.narinfo.query(server.peerId, hashPartOf(`burst-${i}`))))
      await Promise.all([client.stop(), server.stop()])
      await sleep(50) // Node emits a warning on the next tick
      assert.deepEqual(warnings, [])
    } finally {
      process.off('warning', onWarning)
    }
  })

  describe('a requester that misbehaves', () => {
    it('gets ERROR and a reset for a garbage request frame, and the server keeps serving', async () => {
      const stream = await rawStream(client, server)
      const reader = new StreamReader(stream)
      stream.send(Uint8Array.from([5, 0xff, 0xff, 0xff, 0xff, 0xff]))
      const response = NarinfoResponse.decode(await reader.readFrame(64 * 1024))
      assert.equal(response.status, NarinfoResponse.Status.ERROR)
      assert.match(response.message, /^malformed request: /)
      assert.equal(await ending(stream, 2_000), 'reset')
      reader.dispose()

      source.found.set(hashPartOf('after'), infoFor('after'))
      assert.equal((await client.services.narinfo.query(server.peerId, hashPartOf('after'))).status, 'found')
    })

    it('gets ERROR naming the hash for a well-formed request with an invalid hash part', async () => {
      const stream = await rawStream(client, server)
      const reader = new StreamReader(stream)
      stream.send(encodeFrame(Uint8Array.from([10, 4, ...Buffer.from('e/..')])))
      const response = NarinfoResponse.decode(await reader.readFrame(64 * 1024))
      assert.equal(response.status, NarinfoResponse.Status.ERROR)
      assert.match(response.message, /invalid store path hash "e\/\.\."/)
      assert.equal(await ending(stream, 2_000), 'reset')
      reader.dispose()
      assert.equal(source.asked.length, 0)
    })

    it('gets ERROR for a frame announcing 4 GiB, without the server waiting for (or allocating) it', async () => {
      const stream = await rawStream(client, server)
      const reader = new StreamReader(stream)
      stream.send(Uint8Array.from([0xff, 0xff, 0xff, 0xff, 0x0f]))
      const response = NarinfoResponse.decode(await reader.readFrame(64 * 1024))
      assert.equal(response.status, NarinfoResponse.Status.ERROR)
      assert.match(response.message, /more than the limit of 256 bytes/)
      assert.equal(await ending(stream, 2_000), 'reset')
      reader.dispose()
      assert.equal((await client.services.narinfo.query(server.peerId, hashPartOf('x'))).status, 'absent')
    })

    it('cannot make the server hold much of what it pipelines while its request is being answered', async () => {
      source.hanging.add(hashPartOf('slow'))
      const stream = await rawStream(client, server)
      const request = encodeFrame(Uint8Array.from([10, 32, ...Buffer.from(hashPartOf('slow'))]))
      stream.send(request)
      // More of the same, as fast as the stream takes it, while the server waits for its store.
      const burst = Buffer.concat(Array.from({ length: 1024 }, () => request))
      let sent = 0
      let taken = 0
      for (let idle = 0; idle < 5 && sent < 8 * 1024 * 1024;) {
        if (stream.send(burst)) { sent += burst.length; continue }
        sent += burst.length
        await Promise.race([stream.onDrain(), new Promise(resolve => setTimeout(resolve, 200))])
        const nowTaken = sent - stream.writeBufferLength
        idle = nowTaken === taken ? idle + 1 : 0
        taken = nowTaken
      }
      // What left this side sits in the server's buffers (its reader's, libp2p's, yamux's window).
      assert.ok(taken < 512 * 1024, `the server took ${taken} bytes of pipelined requests it did not read`)
      stream.abort(new Error('done'))
    })

    it('is cut off when it opens a stream and never sends a request', async () => {
      const impatient = await started({ source, requestTimeout: 300 })
      const stream = await rawStream(client, impatient)
      const start = Date.now()
      assert.equal(await ending(stream, 3_000), 'reset')
      const waited = Date.now() - start
      assert.ok(waited >= 250 && waited < 2_000, `reset after ${waited} ms, request timeout 300 ms`)
      assert.equal(source.asked.length, 0)
    })
  })

  describe('a responder that misbehaves', () => {
    it('gives an error within the requester\'s timeout when the server never answers', async () => {
      source.hanging.add(hashPartOf('slow'))
      const quick = await started({ timeout: 300 })
      await quick.dial(server.getMultiaddrs()[0])
      const start = Date.now()
      const answer = await quick.services.narinfo.query(server.peerId, hashPartOf('slow'))
      const waited = Date.now() - start
      assert.deepEqual(answer, { status: 'error', message: 'no answer within 300 ms' })
      assert.ok(waited < 2_000, `answered after ${waited} ms`)
    })

    it('gives an error as soon as the caller\'s signal aborts', async () => {
      source.hanging.add(hashPartOf('slow'))
      const start = Date.now()
      const answer = await client.services.narinfo.query(server.peerId, hashPartOf('slow'), { signal: AbortSignal.timeout(200) })
      assert.deepEqual(answer, { status: 'error', message: 'cancelled by the caller' })
      assert.ok(Date.now() - start < 1_500)
    })

    it('gives an error for a garbage answer, an oversized one, and one without a status', async () => {
      const liar = await loopbackNode()
      nodes.push(liar as Node)
      await client.dial(liar.getMultiaddrs()[0])
      const replies = [
        Uint8Array.from([3, 0xff, 0xff, 0xff]),
        Uint8Array.from([0xff, 0xff, 0xff, 0xff, 0x0f]),
        encodeFrame(new Uint8Array(0)),
        encodeFrame(NarinfoResponse.encode({ status: NarinfoResponse.Status.FOUND, narinfo: formatNarInfo(infoFor('x')), nar: new Uint8Array(10) }))
      ]
      await liar.handle(NARINFO_PROTOCOL, async (stream) => {
        stream.send(replies.shift() as Uint8Array)
        await stream.close()
      })
      const messages: string[] = []
      for (let i = 0; i < 4; i++) {
        const answer = await client.services.narinfo.query(liar.peerId, hashPartOf('x'), { signal: AbortSignal.timeout(2_000) })
        assert.equal(answer.status, 'error')
        messages.push((answer as { message: string }).message)
      }
      assert.match(messages[1], /limit of \d+ bytes/)
      assert.equal(messages[2], 'malformed response: no status')
      assert.equal(messages[3], 'malformed response: a NAR of 10 bytes, not asked for')
    })
  })
})
