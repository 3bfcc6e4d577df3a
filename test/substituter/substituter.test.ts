/**
 * The substituter against in-test peers: which narinfo wins a lookup, how fast "nobody has it"
 * is known, and NAR downloads that survive failing peers but never pass on wrong bytes.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { Substituter, type PeerIndexView } from '../../src/substituter/substituter.js'
import { NarDownloadError } from '../../src/substituter/nar-download.js'
import { SLOW_PEER_QUIET_MS } from '../../src/substituter/narinfo-race.js'
import { NAR_STALL_MEMORY_MS, PeerMemory, SLOW_PEER_MEMORY_MS } from '../../src/substituter/peer-memory.js'
import { formatNarInfo, parseNarInfo, type NarInfo } from '../../src/nix/narinfo.js'
import { signNarInfo } from '../../src/nix/narinfo-signing.js'
import { hashNar } from '../../src/nix/nar-hash.js'
import { TrustedKeys, formatPublicKey, generateSecretKey, publicKeyOf } from '../../src/nix/signing.js'
import { formatNarUrl } from '../../src/store/nar-url.js'
import type { NarInfoAnswer } from '../../src/p2p/peer-client.js'
import { Slots } from '../../src/p2p/wire/slots.js'
import { FixturePeerClient, answerAfter, narServer, never, type FixturePeer } from './fixture-peers.js'

const trustedKey = generateSecretKey('trusted-1')
const strangerKey = generateSecretKey('stranger-1')
const trusted = TrustedKeys.parse(formatPublicKey(publicKeyOf(trustedKey)))

const HASH = 'p4pclmv1gyja5kzc26npqpia1qqxrf0l'
const OTHER_HASH = 'q5qclmv1gyja5kzc26npqpia1qqxrf0l'

interface Path { info: NarInfo, nar: Uint8Array }

async function makePath (hashPart = HASH, size = 10_000): Promise<Path> {
  const nar = Uint8Array.from(randomBytes(size))
  const { narHash, narSize } = await hashNar((async function * () { yield nar })())
  const info: NarInfo = {
    storePath: `/nix/store/${hashPart}-hello-2.12`,
    url: 'nar/whatever.nar.xz',
    compression: 'xz',
    fileHash: narHash,
    fileSize: 1234,
    narHash,
    narSize,
    references: [`${hashPart}-hello-2.12`],
    sigs: []
  }
  return { info, nar }
}

const signedBy = (info: NarInfo, key = trustedKey): string => formatNarInfo(signNarInfo(info, key))
const found = (value: string) => ({ status: 'found' as const, value })

function substituter (peers: Record<string, FixturePeer>, opts: { timeoutMs?: number, stallMs?: number, narInfoCacheMs?: number, narPeerGraceMs?: number, patienceMs?: number, index?: PeerIndexView } = {}): { sub: Substituter, client: FixturePeerClient, log: string[] } {
  const client = new FixturePeerClient(new Map(Object.entries(peers)))
  const log: string[] = []
  // No prefetching: these tests count what each NAR request asks of the peers (nar-prefetch.test.ts has it).
  const sub = new Substituter({ client, trusted, timeoutMs: opts.timeoutMs ?? 2000, patienceMs: opts.patienceMs, index: opts.index, stallMs: opts.stallMs ?? 2000, narInfoCacheMs: opts.narInfoCacheMs, narPeerGraceMs: opts.narPeerGraceMs, prefetch: false, log: line => log.push(line) })
  return { sub, client, log }
}

async function collect (stream: AsyncIterable<Uint8Array>): Promise<Uint8Array> {
  const chunks: Uint8Array[] = []
  for await (const chunk of stream) chunks.push(chunk)
  return Uint8Array.from(Buffer.concat(chunks))
}

/** Consumes a stream expected to throw; returns the error and how many bytes came first. */
async function collectFailure (stream: AsyncIterable<Uint8Array>): Promise<{ err: Error, bytes: number }> {
  let bytes = 0
  try {
    for await (const chunk of stream) bytes += chunk.length
  } catch (err) {
    return { err: err as Error, bytes }
  }
  assert.fail(`the stream ended cleanly after ${bytes} bytes`)
}

describe('substituter narinfo lookup', () => {
  it('takes the first verified answer even when untrusted, wrong-path and malformed ones come first', async () => {
    const path = await makePath()
    const other = await makePath(OTHER_HASH)
    const { sub, log } = substituter({
      untrusted: { narInfo: answerAfter(0, found(signedBy(path.info, strangerKey))) },
      unsigned: { narInfo: answerAfter(0, found(formatNarInfo(path.info))) },
      wrongPath: { narInfo: answerAfter(0, found(signedBy(other.info))) },
      malformed: { narInfo: answerAfter(0, found('StorePath: /nix/store/garbage\n')) },
      tampered: { narInfo: answerAfter(0, found(signedBy(path.info).replace(/NarSize: \d+/, 'NarSize: 99'))) },
      good: { narInfo: answerAfter(50, found(signedBy(path.info))) }
    }, { narInfoCacheMs: 0 })
    const info = await sub.narInfo(HASH)
    assert.ok(info !== undefined)
    assert.equal(info.storePath, path.info.storePath)
    assert.equal(info.narSize, path.info.narSize)
    assert.equal(sub.counters.verificationFailures, 5)
    assert.equal(sub.counters.narInfoHits, 1)
    for (const peer of ['untrusted', 'unsigned', 'wrongPath', 'malformed', 'tampered']) {
      assert.equal(log.filter(l => l.includes(`peer ${peer} answer dropped`)).length, 1, `one log line for ${peer}: ${log.join('\n')}`)
      assert.equal(sub.counters.peer(peer).narInfosRejected, 1)
    }
    // Asked again, the same bad answers are counted again but not logged again.
    await sub.narInfo(HASH)
    assert.equal(sub.counters.verificationFailures, 10)
    assert.equal(log.filter(l => l.includes('peer untrusted answer dropped')).length, 1)
  })

  it('rewrites URL and compression to the stable uncompressed NAR URL, keeping signatures', async () => {
    const path = await makePath()
    const text = signedBy(path.info)
    const { sub } = substituter({ good: { narInfo: answerAfter(0, found(text)) } })
    const info = await sub.narInfo(HASH)
    assert.ok(info !== undefined)
    assert.equal(info.url, formatNarUrl(HASH, path.info.narHash))
    assert.equal(info.compression, 'none')
    assert.equal(info.fileHash, undefined)
    assert.equal(info.fileSize, undefined)
    assert.deepEqual(info.sigs, parseNarInfo(text).sigs)
    assert.deepEqual(info.references, path.info.references)
  })

  it('answers undefined as soon as every peer said absent, refused or error', async () => {
    const { sub, client } = substituter({
      a: { narInfo: answerAfter(10, { status: 'absent' }) },
      b: { narInfo: answerAfter(20, { status: 'refused', reason: 'not public' }) },
      c: { narInfo: answerAfter(30, { status: 'error', message: 'stream reset' }) },
      d: { narInfo: answerAfter(0, found('junk')) }
    }, { timeoutMs: 5000 })
    const started = performance.now()
    assert.equal(await sub.narInfo(HASH), undefined)
    const elapsed = performance.now() - started
    assert.ok(elapsed < 1000, `took ${elapsed} ms, the wait budget is 5000 ms`)
    assert.equal(client.narInfoCalls.length, 4)
    assert.equal(sub.counters.narInfoMisses, 1)
    assert.equal(sub.counters.refusals, 1)
    assert.equal(sub.counters.peerErrors, 1)
  })

  it('answers undefined at once when there are no peers', async () => {
    const { sub } = substituter({}, { timeoutMs: 5000 })
    const started = performance.now()
    assert.equal(await sub.narInfo(HASH), undefined)
    const elapsed = performance.now() - started
    assert.ok(elapsed < 1000, `took ${elapsed} ms, the wait budget is 5000 ms`)
  })

  it('just after start, waits for a first peer instead of answering absent, and no longer than the grace', async () => {
    const info = signedBy((await makePath()).info)
    const client = new FixturePeerClient(new Map())
    const sub = new Substituter({ client, trusted, timeoutMs: 2000, startupGraceMs: 3000 })
    setTimeout(() => { client.fixtures.set('late', { narInfo: answerAfter(0, found(info)) }) }, 300)
    assert.notEqual(await sub.narInfo(HASH), undefined, 'the peer that connected 300 ms after the start was not asked')
    const alone = new Substituter({ client: new FixturePeerClient(new Map()), trusted, timeoutMs: 2000, startupGraceMs: 400 })
    const started = performance.now()
    assert.equal(await alone.narInfo(HASH), undefined)
    const waited = performance.now() - started
    assert.ok(waited >= 300 && waited < 1500, `waited ${waited} ms for a grace of 400 ms`)
  })

  it('just after start, asks every peer that connects with the first, not only the first', async () => {
    const info = signedBy((await makePath()).info)
    const client = new FixturePeerClient(new Map())
    const sub = new Substituter({ client, trusted, timeoutMs: 2000, startupGraceMs: 5000, peerSettleMs: 400 })
    setTimeout(() => { client.fixtures.set('first', { narInfo: answerAfter(0, { status: 'absent' }) }) }, 100)
    setTimeout(() => { client.fixtures.set('second', { narInfo: answerAfter(0, found(info)) }) }, 250)
    const started = performance.now()
    assert.notEqual(await sub.narInfo(HASH), undefined, 'the peer that connected 150 ms after the first was not asked')
    const waited = performance.now() - started
    assert.ok(waited >= 550 && waited < 2500, `waited ${waited} ms: the peers settled 400 ms after the second connected at 250 ms`)
    sub.stop()
  })

  it('once the peers have settled, answers without waiting, even within the grace', async () => {
    const client = new FixturePeerClient(new Map([['only', { narInfo: answerAfter(0, { status: 'absent' }) }]]))
    const sub = new Substituter({ client, trusted, timeoutMs: 2000, startupGraceMs: 5000, peerSettleMs: 200 })
    await new Promise(resolve => setTimeout(resolve, 400))
    const started = performance.now()
    assert.equal(await sub.narInfo(HASH), undefined)
    const waited = performance.now() - started
    assert.ok(waited < 1000, `waited ${waited} ms after the peers had settled (the grace is 5000 ms)`)
    sub.stop()
  })

  it('gives up on a peer that never answers within the wait budget, and stops asking it', async () => {
    const { sub, client } = substituter({
      frozen: { narInfo: never() },
      absent: { narInfo: answerAfter(0, { status: 'absent' }) }
    }, { timeoutMs: 300 })
    const started = performance.now()
    assert.equal(await sub.narInfo(HASH), undefined)
    const elapsed = performance.now() - started
    // below the stall limit (2000 ms): it was the wait budget that ended it
    assert.ok(elapsed >= 290 && elapsed < 1500, `took ${elapsed} ms with a 300 ms budget`)
    assert.ok(client.narInfoCalls.find(c => c.peer === 'frozen')?.signal.aborted, 'the ask to the frozen peer was aborted')
  })

  it('returns the verified answer without waiting for a frozen peer', async () => {
    const path = await makePath()
    const { sub } = substituter({
      frozen: { narInfo: never() },
      good: { narInfo: answerAfter(10, found(signedBy(path.info))) }
    }, { timeoutMs: 5000 })
    const started = performance.now()
    assert.equal((await sub.narInfo(HASH))?.storePath, path.info.storePath)
    assert.ok(performance.now() - started < 1000)
  })

  describe('a peer that may have the path and answers late', () => {
    /** Every peer's summary may hold every path: each is asked, and may be waited for. */
    const index: PeerIndexView = { holders: () => () => true }
    const chatty = (): number => Date.now()

    it('is waited for past the budget while its bytes keep coming (slow, not gone), and counted', async () => {
      const path = await makePath()
      const { sub } = substituter({ slow: { narInfo: answerAfter(700, found(signedBy(path.info))), lastHeard: chatty } }, { timeoutMs: 300, index })
      assert.equal((await sub.narInfo(HASH))?.storePath, path.info.storePath)
      assert.equal(sub.counters.narInfoSlowPeerWaits, 1)
    })

    it('is probed halfway through a quiet round, and waited for when it answers the probe', async () => {
      const path = await makePath()
      let heard: number | undefined
      const { sub, client } = substituter({
        slow: { narInfo: answerAfter(700, found(signedBy(path.info))), lastHeard: () => heard, probe: () => { heard = Date.now() } }
      }, { timeoutMs: 300, index })
      assert.equal((await sub.narInfo(HASH))?.storePath, path.info.storePath)
      assert.ok(client.probes.length >= 1 && client.probes.every(p => p === 'slow'), `probes: ${client.probes.join(', ')}`)
    })

    it('is given up on at the budget when nothing comes from it, probe or not (frozen, cut off)', async () => {
      const { sub, client } = substituter({ frozen: { narInfo: never(), probe: () => {} } }, { timeoutMs: 300, index })
      const started = performance.now()
      assert.equal(await sub.narInfo(HASH), undefined)
      const elapsed = performance.now() - started
      assert.ok(elapsed >= 290 && elapsed < 600, `took ${elapsed} ms with a 300 ms budget`)
      assert.deepEqual(client.probes, ['frozen'])
      assert.equal(sub.counters.narInfoSlowPeerWaits, 0)
    })

    it('is given up on once it has sent nothing for SLOW_PEER_QUIET_MS, past the budget (it froze while asked)', async () => {
      let heard: number | undefined
      const { sub } = substituter({ slow: { narInfo: never(), lastHeard: () => heard } }, { timeoutMs: 300, index })
      const started = performance.now()
      setTimeout(() => { heard = Date.now() }, 100)
      assert.equal(await sub.narInfo(HASH), undefined)
      const elapsed = performance.now() - started
      assert.ok(elapsed >= 100 + SLOW_PEER_QUIET_MS && elapsed < 100 + SLOW_PEER_QUIET_MS + 700, `took ${elapsed} ms`)
    })

    it('is waited for no longer than the patience', async () => {
      const { sub } = substituter({ slow: { narInfo: never(), lastHeard: chatty } }, { timeoutMs: 300, patienceMs: 900, index })
      const started = performance.now()
      assert.equal(await sub.narInfo(HASH), undefined)
      const elapsed = performance.now() - started
      assert.ok(elapsed >= 890 && elapsed < 1300, `took ${elapsed} ms with a 300 ms budget and 900 ms patience`)
    })

    it('once it used up the patience without answering, is held to the budget for a while (a peer that chatters but never answers)', async () => {
      const { sub } = substituter({ chatter: { narInfo: never(), lastHeard: chatty } }, { timeoutMs: 300, patienceMs: 900, index })
      let started = performance.now()
      assert.equal(await sub.narInfo(HASH), undefined)
      assert.ok(performance.now() - started >= 890, 'it was not waited for to the end of the patience')
      started = performance.now()
      assert.equal(await sub.narInfo(OTHER_HASH), undefined)
      const elapsed = performance.now() - started
      assert.ok(elapsed < 600, `the next lookup took ${elapsed} ms with a 300 ms budget`)
    })

    it('is held to the budget for SLOW_PEER_MEMORY_MS after that, that peer only', () => {
      const memory = new PeerMemory()
      memory.outwaited('chatter', 1000)
      assert.equal(memory.patientWith('chatter', 1000 + SLOW_PEER_MEMORY_MS - 1), false)
      assert.equal(memory.patientWith('other', 1000), true)
      assert.equal(memory.patientWith('chatter', 1000 + SLOW_PEER_MEMORY_MS), true)
    })

    it('is not waited for past the budget without peer summaries (every peer is asked for every path)', async () => {
      const { sub } = substituter({ slow: { narInfo: never(), lastHeard: chatty } }, { timeoutMs: 300 })
      const started = performance.now()
      assert.equal(await sub.narInfo(HASH), undefined)
      assert.ok(performance.now() - started < 600)
    })

    it('does not hold up the answer of another peer, nor is waited for after it', async () => {
      const path = await makePath()
      const { sub, client } = substituter({
        slow: { narInfo: never(), lastHeard: chatty },
        good: { narInfo: answerAfter(10, found(signedBy(path.info))) }
      }, { timeoutMs: 300, index })
      const started = performance.now()
      assert.equal((await sub.narInfo(HASH))?.storePath, path.info.storePath)
      assert.ok(performance.now() - started < 200)
      await new Promise(resolve => setTimeout(resolve, 400))
      assert.ok(client.narInfoCalls.find(c => c.peer === 'slow')?.signal.aborted, 'the slow peer was still asked after the budget')
    })
  })

  it('answers repeated requests from one verified lookup, and concurrent ones share it', async () => {
    const path = await makePath()
    const { sub, client } = substituter({ good: { narInfo: answerAfter(50, found(signedBy(path.info))) } })
    const together = await Promise.all([sub.narInfo(HASH), sub.narInfo(HASH), sub.narInfo(HASH)])
    assert.deepEqual(together.map(i => i?.storePath), [path.info.storePath, path.info.storePath, path.info.storePath])
    assert.equal((await sub.narInfo(HASH))?.storePath, path.info.storePath)
    assert.equal(client.narInfoCalls.length, 1, 'one ask of the peer for four requests')
    assert.equal(sub.counters.narInfoHits, 4)
  })

  it('keeps a shared lookup going while one of its callers is still waiting', async () => {
    const path = await makePath()
    const { sub, client } = substituter({ good: { narInfo: answerAfter(100, found(signedBy(path.info))) } })
    const leaving = new AbortController()
    const first = sub.narInfo(HASH, leaving.signal)
    const second = sub.narInfo(HASH)
    setTimeout(() => { leaving.abort() }, 20)
    assert.equal(await first, undefined)
    assert.equal((await second)?.storePath, path.info.storePath)
    assert.equal(client.narInfoCalls[0].signal.aborted, false)
  })

  it('stops when the caller aborts', async () => {
    const { sub, client } = substituter({ frozen: { narInfo: never() } }, { timeoutMs: 5000 })
    const caller = new AbortController()
    setTimeout(() => { caller.abort() }, 50)
    const started = performance.now()
    assert.equal(await sub.narInfo(HASH, caller.signal), undefined)
    assert.ok(performance.now() - started < 1000)
    assert.ok(client.narInfoCalls[0].signal.aborted)
  })

  it('does not count a lookup Nix left as a miss: no peer said it lacks the path', async () => {
    const { sub } = substituter({ frozen: { narInfo: never() } }, { timeoutMs: 5000 })
    const caller = new AbortController()
    setTimeout(() => { caller.abort() }, 50)
    assert.equal(await sub.narInfo(HASH, caller.signal), undefined)
    assert.equal(sub.counters.narInfoRequests, 1)
    assert.equal(sub.counters.narInfoMisses, 0)
    assert.equal(sub.counters.narInfoHits, 0)
  })

  it('keeps the answer a peer gave when that peer, still connected, does not answer again in time or its ask fails; believes it when it says absent', async () => {
    const path = await makePath()
    const answers: Record<string, NonNullable<FixturePeer['narInfo']>> = {
      found: answerAfter(0, found(signedBy(path.info))),
      // a lossy link: the answer comes after the wait budget
      late: answerAfter(1000, found(signedBy(path.info))),
      // its connection was cut
      failed: answerAfter(0, { status: 'error', message: 'The stream has been reset' }),
      absent: answerAfter(0, { status: 'absent' })
    }
    let answer = answers.found
    const { sub, log } = substituter({ a: { narInfo: async (...args) => await answer(...args) } }, { timeoutMs: 200, narInfoCacheMs: 20 })
    assert.equal((await sub.narInfo(HASH))?.storePath, path.info.storePath)
    for (const way of ['late', 'failed']) {
      answer = answers[way]
      await new Promise(resolve => setTimeout(resolve, 40)) // past the cache's time
      const started = performance.now()
      assert.equal((await sub.narInfo(HASH))?.storePath, path.info.storePath, `a peer whose answer was ${way}`)
      assert.ok(performance.now() - started < 900, 'no longer than the wait budget')
    }
    assert.equal(sub.counters.narInfoKeptUnanswered, 2)
    assert.ok(log.some(l => /did not answer; its earlier answer stands/.test(l)), log.join('\n'))
    answer = answers.absent
    await new Promise(resolve => setTimeout(resolve, 40))
    assert.equal(await sub.narInfo(HASH), undefined, 'the peer said it no longer has it')
    answer = answers.late
    await new Promise(resolve => setTimeout(resolve, 40))
    assert.equal(await sub.narInfo(HASH), undefined, 'nothing is kept after an "absent"')
  })

  it('falls back on a slow peer\'s earlier answer at the budget, rather than waiting for its new one', async () => {
    const path = await makePath()
    let answer = answerAfter(0, found(signedBy(path.info)))
    const { sub } = substituter({ a: { narInfo: async (...args) => await answer(...args), lastHeard: () => Date.now() } }, { timeoutMs: 200, narInfoCacheMs: 20, index: { holders: () => () => true } })
    assert.equal((await sub.narInfo(HASH))?.storePath, path.info.storePath)
    answer = answerAfter(1000, found(signedBy(path.info)))
    await new Promise(resolve => setTimeout(resolve, 40)) // past the cache's time
    const started = performance.now()
    assert.equal((await sub.narInfo(HASH))?.storePath, path.info.storePath)
    const elapsed = performance.now() - started
    assert.ok(elapsed < 600, `took ${elapsed} ms with a 200 ms budget`)
    assert.equal(sub.counters.narInfoKeptUnanswered, 1)
    assert.equal(sub.counters.narInfoSlowPeerWaits, 0)
  })

  it('refuses a hash part that is not one', async () => {
    const { sub } = substituter({})
    await assert.rejects(sub.narInfo('../../etc/passwd'), /invalid store path hash/)
  })
})

describe('substituter NAR download', () => {
  /** Peers that all serve `path`'s narinfo, each with its own NAR behaviour. */
  function serving (path: Path, nars: Record<string, FixturePeer['nar']>, narInfoDelays: Record<string, number> = {}): Record<string, FixturePeer> {
    return Object.fromEntries(Object.entries(nars).map(([peer, nar]) =>
      [peer, { narInfo: answerAfter(narInfoDelays[peer] ?? 0, found(signedBy(path.info))), nar }]))
  }

  it('streams the NAR from a peer the narinfo lookup found', async () => {
    const path = await makePath()
    const { sub, client } = substituter(serving(path, { a: narServer(path.nar) }))
    assert.ok(await sub.narInfo(HASH))
    const download = await sub.nar(HASH, path.info.narHash)
    assert.ok(download !== undefined)
    assert.equal(download.narSize, path.nar.length)
    assert.equal(client.narCalls.length, 0, 'nothing is fetched before the stream is read')
    assert.deepEqual(await collect(download.stream), path.nar)
    assert.equal(sub.counters.narCompleted, 1)
    assert.equal(sub.counters.narBytesIn, path.nar.length)
    assert.deepEqual(sub.transfers(), [])
  })

  it('continues from the same offset on another peer when the first dies mid-stream', async () => {
    const path = await makePath(HASH, 50_000)
    const { sub, client } = substituter(serving(path, {
      first: narServer(path.nar, { cutAt: 17_000 }),
      second: narServer(path.nar, { chunkSize: 3000 })
    }, { second: 20 }))
    assert.ok(await sub.narInfo(HASH))
    await new Promise(resolve => setTimeout(resolve, 50)) // the slower peer's answer is remembered too
    const download = await sub.nar(HASH, path.info.narHash)
    assert.ok(download !== undefined)
    assert.deepEqual(await collect(download.stream), path.nar)
    assert.deepEqual(client.narCalls.map(c => [c.peer, c.offset]), [['first', 0], ['second', 17_000]])
    assert.equal(sub.counters.narFailovers, 1)
    assert.equal(sub.counters.narCompleted, 1)
  })

  it('counts neither chunks that keep coming slowly nor the time the consumer takes as a stall', async () => {
    // The stall limit's one timer fires during these waits and must re-arm for the wait in
    // progress, not fail it; while the consumer holds a chunk, no wait is in progress.
    const path = await makePath(HASH, 5000)
    const slow: FixturePeer['nar'] = async (_hashPart, _narHash, offset) => ({
      status: 'found',
      value: (async function * () {
        for (let pos = offset; pos < path.nar.length; pos += 1000) {
          await new Promise(resolve => setTimeout(resolve, 120))
          yield path.nar.slice(pos, Math.min(pos + 1000, path.nar.length))
        }
      })()
    })
    const { sub, client } = substituter(serving(path, { slow }), { stallMs: 200 })
    await sub.narInfo(HASH)
    const download = await sub.nar(HASH, path.info.narHash)
    assert.ok(download !== undefined)
    const got: Uint8Array[] = []
    for await (const chunk of download.stream) {
      got.push(chunk)
      await new Promise(resolve => setTimeout(resolve, 300))
    }
    assert.deepEqual(Uint8Array.from(Buffer.concat(got)), path.nar)
    assert.deepEqual(client.narCalls.map(c => c.peer), ['slow'])
    assert.equal(sub.counters.narFailovers, 0)
  })

  it('does not count the wait behind the peer\'s other NARs (its stream limit) as a stall, and an aborted download leaves the queue', async () => {
    // The peer takes one NAR at a time (the real limiter, as the nar service uses it); each
    // takes 400 ms, sending every 100 ms: the third waits 800 ms, four times the stall limit.
    const hashes = [HASH, OTHER_HASH, 'r6rclmv1gyja5kzc26npqpia1qqxrf0l', 's7sclmv1gyja5kzc26npqpia1qqxrf0l']
    const paths = await Promise.all(hashes.map(async h => await makePath(h, 4000)))
    const pathOf = (hashPart: string): Path => paths.find(p => p.info.storePath.includes(hashPart)) ?? paths[0]
    const slots = new Slots(1)
    const oneAtATime: FixturePeer['nar'] = async (hashPart, _narHash, offset, signal, options) => {
      const slot = await slots.take('peer', { signal, onQueued: options?.onQueued }).catch(() => undefined)
      if (slot === undefined) return { status: 'error', message: 'cancelled while queued' }
      const nar = pathOf(hashPart).nar
      return {
        status: 'found',
        value: (async function * () {
          try {
            for (let pos = offset; pos < nar.length; pos += 1000) {
              await new Promise(resolve => setTimeout(resolve, 100))
              yield nar.slice(pos, pos + 1000)
            }
          } finally {
            slot.release()
          }
        })()
      }
    }
    const narInfo: FixturePeer['narInfo'] = async (hashPart, signal) => await answerAfter(0, found(signedBy(pathOf(hashPart).info)))(signal)
    const { sub, client, log } = substituter({ peer: { narInfo, nar: oneAtATime } }, { stallMs: 200 })
    for (const h of hashes) assert.ok(await sub.narInfo(h))
    const gone = new AbortController()
    const downloads = await Promise.all(paths.map(async (p, i) => await sub.nar(hashes[i], p.info.narHash, i === 3 ? gone.signal : undefined)))
    const results = downloads.slice(0, 3).map(async d => await collect((d as NonNullable<typeof d>).stream))
    const abandoned = collect((downloads[3] as NonNullable<(typeof downloads)[3]>).stream).catch((err: Error) => err)
    await new Promise(resolve => setTimeout(resolve, 50))
    assert.equal(slots.waiting('peer'), 3, 'three wait behind the first')
    gone.abort(new Error('Nix hung up'))
    await new Promise(resolve => setImmediate(resolve))
    assert.equal(slots.waiting('peer'), 2, 'the aborted download left the queue at once')
    assert.deepEqual(await Promise.all(results), paths.slice(0, 3).map(p => p.nar))
    assert.ok(await abandoned instanceof Error)
    assert.deepEqual(client.narCalls.map(c => c.hashPart), hashes, 'each asked once: no failover, no retry')
    assert.equal(sub.counters.narFailovers, 0)
    assert.deepEqual(log.filter(line => /stall|failed/.test(line)), [])
    assert.equal(slots.taken('peer'), 0)
  })

  it('moves on from a peer that stalls', async () => {
    const path = await makePath(HASH, 20_000)
    const { sub, client } = substituter(serving(path, {
      stalled: narServer(path.nar, { stallAt: 5000 }),
      good: narServer(path.nar)
    }), { stallMs: 200 })
    await sub.narInfo(HASH)
    await new Promise(resolve => setTimeout(resolve, 20))
    const download = await sub.nar(HASH, path.info.narHash)
    assert.ok(download !== undefined)
    const started = performance.now()
    assert.deepEqual(await collect(download.stream), path.nar)
    assert.ok(performance.now() - started < 2000)
    assert.deepEqual(client.narCalls.map(c => [c.peer, c.offset]), [['stalled', 0], ['good', 5000]])
    assert.ok(client.narCalls[0].signal.aborted, 'the stalled stream was aborted')
  })

  it('asks a peer that stalled a NAR after the others for a while, so that it does not cost every NAR its stall limit', async () => {
    const paths = [await makePath(HASH), await makePath(OTHER_HASH)]
    const stallerNar: FixturePeer['nar'] = async (hashPart, narHash, offset, signal) => await narServer(paths.find(p => p.info.storePath.includes(hashPart))?.nar ?? new Uint8Array(0), { stallAt: 0 })(hashPart, narHash, offset, signal)
    const goodNar: FixturePeer['nar'] = async (hashPart, narHash, offset, signal) => await narServer(paths.find(p => p.info.storePath.includes(hashPart))?.nar ?? new Uint8Array(0))(hashPart, narHash, offset, signal)
    const narInfo = (delay: number): FixturePeer['narInfo'] => async (hashPart, signal) => await answerAfter(delay, found(signedBy((paths.find(p => p.info.storePath.includes(hashPart)) ?? paths[0]).info)))(signal)
    const { sub, client } = substituter({ staller: { narInfo: narInfo(0), nar: stallerNar }, good: { narInfo: narInfo(20), nar: goodNar } }, { stallMs: 300 })
    for (const path of paths) {
      await sub.narInfo(path.info.storePath.slice(11, 43))
      await new Promise(resolve => setTimeout(resolve, 40)) // both offered it, the staller first
    }
    const fetch = async (path: Path): Promise<number> => {
      const started = performance.now()
      const download = await sub.nar(path.info.storePath.slice(11, 43), path.info.narHash)
      assert.ok(download !== undefined)
      assert.deepEqual(await collect(download.stream), path.nar)
      return performance.now() - started
    }
    assert.ok(await fetch(paths[0]) >= 300, 'the first NAR waited for the stall')
    await fetch(paths[1])
    assert.deepEqual(client.narCalls.map(c => c.peer), ['staller', 'good', 'good'], 'the second went to the good peer first')
  })

  it('asks the only peer that stalled once more when its connection is alive (its request lost to a link that was down), not when nothing came from it', async () => {
    const path = await makePath(HASH, 20_000)
    /** Stalls its first NAR stream at byte 5000, serves the next. */
    const stallsOnce = (): FixturePeer['nar'] => {
      let calls = 0
      return async (hashPart, narHash, offset, signal) => await narServer(path.nar, calls++ === 0 ? { stallAt: 5000 } : {})(hashPart, narHash, offset, signal)
    }
    const alive = substituter({ only: { narInfo: answerAfter(0, found(signedBy(path.info))), nar: stallsOnce(), lastHeard: () => Date.now() } }, { stallMs: 200 })
    assert.ok(await alive.sub.narInfo(HASH))
    const download = await alive.sub.nar(HASH, path.info.narHash)
    assert.ok(download !== undefined)
    assert.deepEqual(await collect(download.stream), path.nar)
    assert.deepEqual(alive.client.narCalls.map(c => [c.peer, c.offset]), [['only', 0], ['only', 5000]])

    const frozen = substituter({ only: { narInfo: answerAfter(0, found(signedBy(path.info))), nar: stallsOnce() } }, { stallMs: 200 })
    assert.ok(await frozen.sub.narInfo(HASH))
    const failing = await frozen.sub.nar(HASH, path.info.narHash)
    assert.ok(failing !== undefined)
    assert.match((await collectFailure(failing.stream)).err.message, /no peer could deliver/)
    assert.deepEqual(frozen.client.narCalls.map(c => [c.peer, c.offset]), [['only', 0]])
  })

  it('does not ask a peer for a NAR it stalled lately, even when it offers it anew; a peer that has it still is asked', async () => {
    const path = await makePath()
    const { sub, client } = substituter(serving(path, { staller: narServer(path.nar, { stallAt: 0 }) }), { stallMs: 200 })
    assert.ok(await sub.narInfo(HASH))
    const fails = async (): Promise<number> => {
      const started = performance.now()
      const download = await sub.nar(HASH, path.info.narHash)
      assert.ok(download !== undefined)
      assert.match((await collectFailure(download.stream)).err.message, /no peer could deliver/)
      return performance.now() - started
    }
    assert.ok(await fails() >= 200, 'the first download waited for the stall')
    const narInfoCalls = client.narInfoCalls.length
    assert.ok(await fails() < 150, 'the second did not')
    assert.deepEqual(client.narCalls.map(c => c.peer), ['staller'])
    assert.equal(client.narInfoCalls.length, narInfoCalls, 'nor asked the staller for the narinfo again')
    client.fixtures.set('good', { narInfo: answerAfter(0, found(signedBy(path.info))), nar: narServer(path.nar) })
    const download = await sub.nar(HASH, path.info.narHash)
    assert.ok(download !== undefined)
    assert.deepEqual(await collect(download.stream), path.nar)
    assert.deepEqual(client.narCalls.map(c => c.peer), ['staller', 'good'])
  })

  it('remembers a stall for that NAR only, for NAR_STALL_MEMORY_MS', () => {
    const memory = new PeerMemory()
    const stalled = 'sha256:1111111111111111111111111111111111111111111111111111'
    const other = 'sha256:0000000000000000000000000000000000000000000000000000'
    memory.offered(HASH, stalled, 10, 'p')
    memory.offered(HASH, other, 10, 'p')
    memory.narStalled(HASH, stalled, 'p', 1000)
    assert.equal(memory.stalledNar(HASH, stalled, 'p', 1000 + NAR_STALL_MEMORY_MS - 1), true)
    assert.equal(memory.stalledNar(HASH, stalled, 'p', 1000 + NAR_STALL_MEMORY_MS), false)
    assert.equal(memory.stalledNar(HASH, other, 'p', 1000), false)
    assert.equal(memory.stalledNar(HASH, stalled, 'q', 1000), false)
  })

  it('treats a peer sending only empty chunks as stalled', async () => {
    const path = await makePath()
    const empty: FixturePeer['nar'] = async () => ({
      status: 'found',
      value: (async function * () { for (;;) { yield new Uint8Array(0); await new Promise(resolve => setTimeout(resolve, 5)) } })()
    })
    const { sub } = substituter(serving(path, { empty }), { stallMs: 200 })
    const download = await sub.nar(HASH, path.info.narHash)
    assert.ok(download !== undefined)
    const { err } = await collectFailure(download.stream)
    assert.match(err.message, /no peer could deliver .* stopped at byte 0 of/)
  })

  it('asks peers for the narinfo first when it remembers none (Nix cached the narinfo)', async () => {
    const path = await makePath()
    const { sub, client } = substituter(serving(path, { a: narServer(path.nar) }))
    const download = await sub.nar(HASH, path.info.narHash)
    assert.ok(download !== undefined)
    assert.equal(client.narInfoCalls.length, 1)
    assert.deepEqual(await collect(download.stream), path.nar)
  })

  it('asks again when every peer that offered the NAR has left', async () => {
    const path = await makePath()
    const { sub, client } = substituter(serving(path, { gone: narServer(path.nar) }))
    await sub.narInfo(HASH)
    client.fixtures.delete('gone')
    client.fixtures.set('newcomer', serving(path, { newcomer: narServer(path.nar) }).newcomer)
    const download = await sub.nar(HASH, path.info.narHash)
    assert.ok(download !== undefined)
    assert.deepEqual(await collect(download.stream), path.nar)
    assert.deepEqual(client.narCalls.map(c => c.peer), ['newcomer'])
  })

  it('forgets a peer that says it no longer has the NAR, and asks for its narinfo again', async () => {
    const path = await makePath()
    const peers = serving(path, { collected: async () => ({ status: 'absent' }) })
    const { sub, client } = substituter(peers)
    await sub.narInfo(HASH)
    const download = await sub.nar(HASH, path.info.narHash)
    assert.ok(download !== undefined)
    assert.match((await collectFailure(download.stream)).err.message, /no peer could deliver/)
    peers.collected.narInfo = answerAfter(0, { status: 'absent' })
    assert.equal(await sub.nar(HASH, path.info.narHash), undefined)
    assert.equal(client.narCalls.length, 1, 'the NAR was not asked of it again')
    assert.equal(client.narInfoCalls.length, 2, 'its narinfo was')
  })

  it('counts a peer refusing a NAR whose narinfo it gave as a refusal, and finishes from another', async () => {
    const path = await makePath()
    const peers = serving(path, { strict: async () => ({ status: 'refused', reason: 'for trusted peers only' }), open: narServer(path.nar) }, { open: 20 })
    const { sub, client } = substituter(peers)
    await sub.narInfo(HASH)
    await new Promise(resolve => setTimeout(resolve, 50))
    const download = await sub.nar(HASH, path.info.narHash)
    assert.ok(download !== undefined)
    assert.deepEqual(await collect(download.stream), path.nar)
    assert.deepEqual(client.narCalls.map(c => c.peer), ['strict', 'open'])
    assert.equal(sub.counters.refusals, 1)
  })

  it('waits for the peer that offered the NAR to come back (a restart mid-transfer), no longer than the grace', async () => {
    const path = await makePath()
    const peers = serving(path, { restarting: narServer(path.nar) })
    const { sub, client } = substituter(peers, { narPeerGraceMs: 3000 })
    await sub.narInfo(HASH)
    client.fixtures.delete('restarting')
    setTimeout(() => { client.fixtures.set('restarting', peers.restarting) }, 300)
    let started = performance.now()
    const download = await sub.nar(HASH, path.info.narHash)
    assert.ok(download !== undefined)
    assert.ok(performance.now() - started >= 250, 'it waited')
    assert.deepEqual(await collect(download.stream), path.nar)

    const gone = substituter(serving(path, { gone: narServer(path.nar) }), { narPeerGraceMs: 300 })
    await gone.sub.narInfo(HASH)
    gone.client.fixtures.delete('gone')
    started = performance.now()
    assert.equal(await gone.sub.nar(HASH, path.info.narHash), undefined)
    const waited = performance.now() - started
    assert.ok(waited >= 250 && waited < 2000, `gave up after ${waited.toFixed(0)} ms`)
  })

  it('waits for a peer that offered the NAR once, not on every request, when it stays away; again once it came back and left', async () => {
    const path = await makePath()
    const peers = serving(path, { gone: narServer(path.nar) })
    const { sub, client } = substituter(peers, { narPeerGraceMs: 400 })
    await sub.narInfo(HASH)
    client.fixtures.delete('gone')
    const timed = async (): Promise<number> => {
      const started = performance.now()
      assert.equal(await sub.nar(HASH, path.info.narHash), undefined)
      return performance.now() - started
    }
    const first = await timed()
    assert.ok(first >= 350, `the first request waited ${first.toFixed(0)} ms for a grace of 400 ms`)
    // The laptop that had it went home: Nix, which keeps narinfos for a month, asks for NAR after NAR.
    for (let i = 0; i < 3; i++) {
      const again = await timed()
      assert.ok(again < 200, `request ${i + 2} waited ${again.toFixed(0)} ms for a peer already waited for in vain`)
    }
    client.fixtures.set('gone', peers.gone)
    assert.ok(await sub.nar(HASH, path.info.narHash) !== undefined, 'the peer is back')
    client.fixtures.delete('gone')
    const afterReturn = await timed()
    assert.ok(afterReturn >= 350, `after the peer came back and left, the request waited ${afterReturn.toFixed(0)} ms`)
  })

  it('asks the connected peers again, once, when every peer remembered as offering the NAR fails', async () => {
    const path = await makePath()
    const peers = serving(path, { collected: narServer(path.nar) })
    const { sub, client } = substituter(peers)
    await sub.narInfo(HASH)
    // Days later (Nix keeps narinfos): the peer it came from collected it, another has it.
    peers.collected.nar = async () => ({ status: 'absent' })
    client.fixtures.set('holder', serving(path, { holder: narServer(path.nar) }).holder)
    const download = await sub.nar(HASH, path.info.narHash)
    assert.ok(download !== undefined)
    assert.deepEqual(await collect(download.stream), path.nar)
    assert.deepEqual(client.narCalls.map(c => c.peer), ['collected', 'holder'])
    assert.deepEqual(client.narInfoCalls.slice(1).map(c => c.peer), ['holder'], 'the peer that failed is not asked again')
  })

  it('has no NAR for a NarHash no verified narinfo offers', async () => {
    const path = await makePath()
    const other = await makePath()
    const { sub } = substituter({
      a: { narInfo: answerAfter(0, found(signedBy(path.info))), nar: narServer(path.nar) },
      // An untrusted peer offering other bytes for the same path is never asked for them.
      b: { narInfo: answerAfter(0, found(signedBy(other.info, strangerKey))), nar: narServer(other.nar) }
    })
    assert.equal(await sub.nar(HASH, other.info.narHash), undefined)
  })

  it('throws on wrong bytes and does not use that peer for the path again', async () => {
    const path = await makePath()
    const { sub, client } = substituter(serving(path, { liar: narServer(path.nar, { corruptAt: 4321 }) }))
    const download = await sub.nar(HASH, path.info.narHash)
    assert.ok(download !== undefined)
    const { err, bytes } = await collectFailure(download.stream)
    assert.ok(err instanceof NarDownloadError, String(err))
    assert.match(err.message, /hashed to sha256:\w+, expected/)
    assert.ok(bytes < path.nar.length, 'the last chunk is held back until the hash is checked')
    assert.equal(sub.counters.narFailed, 1)
    assert.equal(await sub.nar(HASH, path.info.narHash), undefined)
    assert.equal(client.narCalls.length, 1)
  })

  it('starts over on another peer when wrong bytes came whole, before any of them was passed on', async () => {
    // A small NAR (or a zstd block of up to 256 KiB) comes as one chunk: nothing has gone to
    // Nix when its hash turns out wrong, and a throw here was a 404 though a peer had the bytes.
    const path = await makePath()
    const { sub, client } = substituter(serving(path, {
      liar: narServer(path.nar, { corruptAt: 4321, chunkSize: path.nar.length }),
      honest: narServer(path.nar)
    }, { honest: 10 }))
    await sub.narInfo(HASH)
    await new Promise(resolve => setTimeout(resolve, 30))
    const download = await sub.nar(HASH, path.info.narHash)
    assert.ok(download !== undefined)
    assert.deepEqual(await collect(download.stream), path.nar)
    assert.deepEqual(client.narCalls.map(c => [c.peer, c.offset]), [['liar', 0], ['honest', 0]])
    assert.equal(sub.counters.narCompleted, 1)
    assert.equal(sub.counters.narFailed, 0)
    assert.equal(sub.counters.narFailovers, 0, 'it started over, it did not continue mid-NAR')
    assert.equal(sub.counters.narBytesIn, path.nar.length, 'the wrong copy was not passed on')
    assert.equal(sub.counters.peer('liar').narBytes, 0)
    const again = await sub.nar(HASH, path.info.narHash)
    assert.ok(again !== undefined)
    assert.deepEqual(await collect(again.stream), path.nar)
    assert.deepEqual(client.narCalls.map(c => c.peer).slice(2), ['honest'], 'the liar is not asked again')
  })

  it('throws at NarSize + 1 bytes from an endless peer', async () => {
    const path = await makePath()
    const { sub } = substituter(serving(path, { endless: narServer(path.nar, { endless: true, chunkSize: 999 }) }))
    const download = await sub.nar(HASH, path.info.narHash)
    assert.ok(download !== undefined)
    const { err, bytes } = await collectFailure(download.stream)
    assert.match(err.message, /no peer could deliver/)
    assert.ok(bytes <= path.nar.length)
  })

  it('finishes from another peer when one sends more than NarSize', async () => {
    const path = await makePath()
    const { sub } = substituter(serving(path, {
      endless: narServer(path.nar, { endless: true, chunkSize: 999 }),
      good: narServer(path.nar)
    }, { good: 10 }))
    await sub.narInfo(HASH)
    await new Promise(resolve => setTimeout(resolve, 30))
    const download = await sub.nar(HASH, path.info.narHash)
    assert.ok(download !== undefined)
    assert.deepEqual(await collect(download.stream), path.nar)
  })

  it('starts once more when the only peer\'s stream broke before the first byte and the peer is still connected', async () => {
    const path = await makePath()
    const peers = serving(path, { a: narServer(path.nar, { cutAt: 0 }) })
    const { sub, client, log } = substituter(peers)
    await sub.narInfo(HASH)
    // a NAR stream reset under the peer's feet (a request that came too late after a link outage)
    const whole = narServer(path.nar)
    peers.a.nar = async (...args) => { peers.a.nar = whole; return await narServer(path.nar, { cutAt: 0 })(...args) }
    const download = await sub.nar(HASH, path.info.narHash)
    assert.ok(download !== undefined)
    assert.deepEqual(await collect(download.stream), path.nar)
    assert.equal(client.narCalls.length, 2)
    assert.ok(log.some(l => /is connected: starting again/.test(l)), log.join('\n'))

    // one more time only: a peer that keeps failing gets the NAR a 404
    peers.a.nar = narServer(path.nar, { cutAt: 0 })
    const again = await sub.nar(HASH, path.info.narHash)
    assert.ok(again !== undefined)
    const { err, bytes } = await collectFailure(again.stream)
    assert.ok(err instanceof NarDownloadError)
    assert.equal(bytes, 0)
    assert.equal(client.narCalls.length, 4)
  })

  it('throws when every peer ends short', async () => {
    const path = await makePath()
    const { sub, client } = substituter(serving(path, {
      a: narServer(path.nar, { endAt: 3000 }),
      b: narServer(path.nar, { endAt: 6000 })
    }))
    await sub.narInfo(HASH)
    await new Promise(resolve => setTimeout(resolve, 20))
    const download = await sub.nar(HASH, path.info.narHash)
    assert.ok(download !== undefined)
    const { err, bytes } = await collectFailure(download.stream)
    assert.match(err.message, /stopped at byte 6000 of 10000/)
    assert.equal(bytes, 6000)
    assert.equal(client.narCalls.length, 2)
  })

  it('gives the peer\'s body back when the caller aborts just as the peer answers', async () => {
    const path = await makePath()
    const caller = new AbortController()
    let returned = false
    const body: AsyncIterable<Uint8Array> = {
      [Symbol.asyncIterator]: () => ({
        next: async () => ({ done: true, value: undefined }),
        return: async () => { returned = true; return { done: true, value: undefined } }
      })
    }
    const { sub } = substituter(serving(path, { racing: async () => { caller.abort(new Error('client gone')); return { status: 'found', value: body } } }))
    await sub.narInfo(HASH)
    const download = await sub.nar(HASH, path.info.narHash, caller.signal)
    assert.ok(download !== undefined)
    assert.match((await collectFailure(download.stream)).err.message, /client gone/)
    assert.ok(returned, 'the body was returned, so its stream goes back to the pool or is reset')
  })

  it('stops the peer stream when the caller aborts', async () => {
    const path = await makePath()
    const { sub, client } = substituter(serving(path, { stalled: narServer(path.nar, { stallAt: 2000 }) }), { stallMs: 10_000 })
    const caller = new AbortController()
    const download = await sub.nar(HASH, path.info.narHash, caller.signal)
    assert.ok(download !== undefined)
    setTimeout(() => { caller.abort(new Error('client gone')) }, 50)
    const started = performance.now()
    const { err } = await collectFailure(download.stream)
    assert.match(err.message, /client gone/)
    assert.ok(performance.now() - started < 1000)
    assert.ok(client.narCalls[0].signal.aborted)
    assert.equal(sub.counters.narFailed, 0, 'Nix leaving is not a failed download')
  })
})

describe('substituter small NARs sent with their narinfo', () => {
  /** Prefetching on (the daemon's default); `answers` says what each peer sends for a request. */
  function inlineSubstituter (answers: Record<string, (maxNarBytes: number | undefined) => ReturnType<NonNullable<FixturePeer['narInfo']>>>, nars: Record<string, FixturePeer['nar']> = {}, narInfoCacheMs?: number): { sub: Substituter, client: FixturePeerClient } {
    const peers = Object.fromEntries(Object.entries(answers).map(([peer, answer]) =>
      [peer, { narInfo: async (_hashPart: string, _signal: AbortSignal, options?: { maxNarBytes?: number }) => await answer(options?.maxNarBytes), nar: nars[peer] }]))
    const client = new FixturePeerClient(new Map(Object.entries(peers)))
    return { sub: new Substituter({ client, trusted, timeoutMs: 2000, stallMs: 2000, narInfoCacheMs }), client }
  }

  it('hands Nix the NAR that came with the narinfo, asking no peer for it', async () => {
    const path = await makePath()
    const { sub, client } = inlineSubstituter({
      a: async (max) => ({ ...found(signedBy(path.info)), nar: max !== undefined && max >= path.nar.length ? path.nar : undefined })
    })
    assert.ok(await sub.narInfo(HASH))
    assert.equal(client.narInfoCalls[0].maxNarBytes, 64 * 1024)
    assert.equal(sub.counters.narsInline, 1)
    const download = await sub.nar(HASH, path.info.narHash)
    assert.ok(download !== undefined)
    assert.deepEqual(await collect(download.stream), path.nar)
    assert.equal(client.narCalls.length, 0)
    assert.equal(sub.counters.narPrefetchHits, 1)
  })

  it('takes the NAR from the answer when Nix asks for a NAR whose narinfo it has not looked up (Nix cached it)', async () => {
    const path = await makePath()
    const { sub, client } = inlineSubstituter({
      a: async (max) => ({ ...found(signedBy(path.info)), nar: max !== undefined && max >= path.nar.length ? path.nar : undefined })
    }, { a: narServer(path.nar) })
    const download = await sub.nar(HASH, path.info.narHash)
    assert.ok(download !== undefined)
    assert.deepEqual(await collect(download.stream), path.nar)
    assert.equal(client.narInfoCalls.length, 1)
    assert.equal(client.narCalls.length, 0)
    assert.equal(sub.counters.narsInline, 1)
  })

  it('asks only the first two peers for the NAR', async () => {
    const path = await makePath()
    const answer = async (): Promise<ReturnType<typeof found>> => found(signedBy(path.info))
    const { sub, client } = inlineSubstituter({ a: answer, b: answer, c: answer, d: answer })
    assert.ok(await sub.narInfo(HASH))
    assert.deepEqual(client.narInfoCalls.map(c => [c.peer, c.maxNarBytes]), [['a', 65536], ['b', 65536], ['c', undefined], ['d', undefined]])
  })

  it('counts a NAR both peers asked sent once: the copy it already holds is not fetched again', async () => {
    const path = await makePath()
    const answer = async (max: number | undefined): Promise<NarInfoAnswer> => ({ ...found(signedBy(path.info)), nar: max !== undefined && max >= path.nar.length ? path.nar : undefined })
    const { sub, client } = inlineSubstituter({ a: answer, b: answer })
    assert.ok(await sub.narInfo(HASH))
    // the second peer's answer is checked after the first one won
    await new Promise(resolve => setTimeout(resolve, 50))
    assert.deepEqual(client.narInfoCalls.map(c => c.maxNarBytes), [65536, 65536], 'both were asked for the NAR')
    assert.equal(sub.counters.narsInline, 1)
    assert.equal(sub.counters.narBytesIn, path.nar.length)
    assert.equal(sub.counters.peer('a').narBytes + sub.counters.peer('b').narBytes, path.nar.length)
  })

  it('drops a NAR that does not match the signed narinfo, fetches it from another peer, and asks that peer for no NAR of the path again', async () => {
    const path = await makePath()
    const wrong = Uint8Array.from(path.nar)
    wrong[77] ^= 1
    const { sub, client } = inlineSubstituter({
      liar: async () => ({ ...found(signedBy(path.info)), nar: wrong }),
      honest: async () => { await new Promise(resolve => setTimeout(resolve, 30)); return found(signedBy(path.info)) }
    }, { liar: narServer(wrong), honest: narServer(path.nar) }, 0)
    assert.ok(await sub.narInfo(HASH))
    assert.equal(sub.counters.narsInline, 0)
    assert.equal(sub.counters.verificationFailures, 1)
    await new Promise(resolve => setTimeout(resolve, 60))
    const download = await sub.nar(HASH, path.info.narHash)
    assert.ok(download !== undefined)
    assert.deepEqual(await collect(download.stream), path.nar)
    assert.deepEqual(client.narCalls.map(c => c.peer), ['honest'], 'the liar is not asked for the NAR')
    // the narinfo is looked up again (no cache): the liar is asked for the narinfo only
    const before = client.narInfoCalls.length
    assert.ok(await sub.narInfo(HASH))
    const later = client.narInfoCalls.slice(before)
    assert.ok(later.some(c => c.peer === 'liar'), 'the liar is still asked for narinfos')
    assert.deepEqual(later.filter(c => c.peer === 'liar').map(c => c.maxNarBytes), later.filter(c => c.peer === 'liar').map(() => undefined))
    assert.ok(later.filter(c => c.peer === 'honest').every(c => c.maxNarBytes === 65536))
  })

  it('asks for no NAR when prefetching has no room, or when told not to', async () => {
    const path = await makePath()
    const client = new FixturePeerClient(new Map([['a', { narInfo: async () => found(signedBy(path.info)) }]]))
    const full = new Substituter({ client, trusted, timeoutMs: 2000, prefetch: { budgetBytes: 0 } })
    const off = new Substituter({ client, trusted, timeoutMs: 2000, inlineNars: false })
    try {
      assert.ok(await full.narInfo(HASH))
      assert.ok(await off.narInfo(HASH))
      assert.deepEqual(client.narInfoCalls.map(c => c.maxNarBytes), [undefined, undefined])
    } finally {
      full.stop()
      off.stop()
    }
  })
})
