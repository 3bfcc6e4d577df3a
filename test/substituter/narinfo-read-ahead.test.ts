/**
 * References' narinfos looked up before Nix asks (src/substituter/narinfo-read-ahead.ts): the
 * read-ahead's order and limits with a read function of the test's own, then the substituter
 * between real libp2p nodes, where a closure's narinfos are answered after the peer is gone.
 */
import '../../src/polyfill.js'
import assert from 'node:assert/strict'
import { signNarInfo } from '../../src/nix/narinfo-signing.js'
import type { NarInfo } from '../../src/nix/narinfo.js'
import { generateSecretKey, publicKeyOf, TrustedKeys } from '../../src/nix/signing.js'
import { Libp2pPeerClient } from '../../src/p2p/libp2p-peer-client.js'
import { NarInfoReadAhead } from '../../src/substituter/narinfo-read-ahead.js'
import { Substituter } from '../../src/substituter/substituter.js'
import { MemorySource, Nodes, eventually } from '../p2p/node-helpers.js'

/** A 32-character hash part made of one repeated character. */
const hp = (c: string): string => c.repeat(32)

/** A narinfo of `self` referring to itself and to `refs` (by hash part), as Nix lists them. */
function infoOf (self: string, refs: string[]): NarInfo {
  return { storePath: `/nix/store/${self}-p`, url: '', compression: 'none', narHash: 'sha256:1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s', narSize: 8, references: [self, ...refs].map(r => `${r}-p`), sigs: [] }
}

/** A read the test answers by hand, remembering what was asked. */
class ManualRead {
  readonly asked: Array<{ hashPart: string, resolve: (info: NarInfo | undefined) => void, reject: (err: Error) => void }> = []
  readonly read = async (hashPart: string): Promise<NarInfo | undefined> => {
    return await new Promise((resolve, reject) => { this.asked.push({ hashPart, resolve, reject }) })
  }

  names (): string[] {
    return this.asked.map(a => a.hashPart[0])
  }
}

const tick = async (): Promise<void> => { await new Promise(resolve => setImmediate(resolve)) }

describe('NarInfoReadAhead', () => {
  it('reads references in order, a few at a time, skipping what is not wanted, and follows what it reads', async () => {
    const manual = new ManualRead()
    const wanted = new Set(['a', 'b', 'c', 'd', 'x'].map(hp))
    const readAhead = new NarInfoReadAhead(manual.read, h => wanted.has(h), { concurrency: 2 })
    readAhead.follow(infoOf(hp('t'), ['a', 'b', 'l', 'c', 'd'].map(hp))) // t itself and l: not wanted
    assert.deepEqual(manual.names(), ['a', 'b'])
    manual.asked[0].resolve(infoOf(hp('a'), [hp('x')]))
    await tick()
    assert.deepEqual(manual.names(), ['a', 'b', 'c'], 'one finished, the next starts')
    manual.asked[1].resolve(undefined) // no peer had b
    manual.asked[2].reject(new Error('the peer left'))
    await tick()
    assert.deepEqual(manual.names(), ['a', 'b', 'c', 'd', 'x'], 'x, a reference of what was read, comes after those queued before it')
    manual.asked[3].resolve(infoOf(hp('d'), []))
    manual.asked[4].resolve(infoOf(hp('x'), [hp('a')])) // a: already read
    await tick()
    assert.equal(manual.asked.length, 5)
    assert.equal(readAhead.ahead, 3, 'a, d and x wait for Nix; b and c were not found')
    assert.equal(readAhead.asked(hp('a')), true)
    assert.equal(readAhead.asked(hp('a')), false, 'counted once')
    assert.equal(readAhead.asked(hp('b')), false)
    assert.equal(readAhead.asked(hp('c')), false)
    assert.equal(readAhead.ahead, 2)
  })

  it('leaves to Nix a path it asks for before its turn came', async () => {
    const manual = new ManualRead()
    const readAhead = new NarInfoReadAhead(manual.read, h => h !== hp('t'), { concurrency: 1 })
    readAhead.follow(infoOf(hp('t'), [hp('a'), hp('b'), hp('c')]))
    assert.equal(readAhead.asked(hp('b')), false, 'queued, not read yet')
    manual.asked[0].resolve(infoOf(hp('a'), []))
    await tick()
    assert.deepEqual(manual.names(), ['a', 'c'], 'b is not read: Nix asked for it itself')
  })

  it('pauses once it is far enough ahead of Nix, and goes on as Nix asks or as answers go stale', async () => {
    const manual = new ManualRead()
    const readAhead = new NarInfoReadAhead(manual.read, h => h !== hp('t') && h !== hp('e'), { concurrency: 4, maxAhead: 2, ttlMs: 50 })
    readAhead.follow(infoOf(hp('t'), ['a', 'b', 'c', 'd'].map(hp)))
    assert.deepEqual(manual.names(), ['a', 'b'])
    manual.asked[0].resolve(infoOf(hp('a'), []))
    manual.asked[1].resolve(infoOf(hp('b'), []))
    await tick()
    assert.equal(manual.asked.length, 2, 'two answers wait for Nix')
    readAhead.asked(hp('a'))
    assert.deepEqual(manual.names(), ['a', 'b', 'c'])
    manual.asked[2].resolve(infoOf(hp('c'), []))
    await new Promise(resolve => setTimeout(resolve, 80)) // b and c went stale in the cache
    readAhead.follow(infoOf(hp('e'), []))
    assert.deepEqual(manual.names(), ['a', 'b', 'c', 'd'])
    assert.equal(readAhead.ahead, 1)
  })

  it('drops the rest of a closure when Nix asks nothing for a while (killed, or its copy failed)', async () => {
    const manual = new ManualRead()
    const readAhead = new NarInfoReadAhead(manual.read, h => h !== hp('t'), { concurrency: 1, idleMs: 50 })
    readAhead.asked(hp('t'))
    readAhead.follow(infoOf(hp('t'), ['a', 'b', 'c'].map(hp)))
    assert.deepEqual(manual.names(), ['a'])
    await new Promise(resolve => setTimeout(resolve, 80)) // Nix asked nothing since t
    manual.asked[0].resolve(infoOf(hp('a'), [hp('x')]))
    await tick()
    assert.deepEqual(manual.names(), ['a'], 'b, c and x are not read for nobody')
    readAhead.asked(hp('y')) // Nix is back with another walk: the old one does not resume
    await tick()
    assert.deepEqual(manual.names(), ['a'])
  })

  it('bounds its queue, and reads nothing once stopped', async () => {
    const manual = new ManualRead()
    const readAhead = new NarInfoReadAhead(manual.read, h => h !== hp('t'), { concurrency: 1, maxQueued: 2 })
    readAhead.follow(infoOf(hp('t'), ['a', 'b', 'c', 'd'].map(hp)))
    manual.asked[0].resolve(infoOf(hp('a'), []))
    await tick()
    assert.deepEqual(manual.names(), ['a'], 'the queue held t and a; b, c and d did not fit')
    readAhead.follow(infoOf(hp('a'), [hp('x')]))
    assert.deepEqual(manual.names(), ['a', 'x'])
    readAhead.stop()
    manual.asked[1].resolve(infoOf(hp('x'), [hp('z')]))
    await tick()
    readAhead.follow(infoOf(hp('y'), [hp('z')]))
    assert.equal(readAhead.ahead, 0)
    assert.deepEqual(manual.names(), ['a', 'x'], 'neither z nor y\'s reference read after stop()')
  })
})

describe('substituter reading narinfos ahead between peerix nodes', () => {
  const nodes = new Nodes()
  afterEach(async () => { await nodes.stopAll() })

  it('has the narinfos of a closure cached when Nix asks for them; paths in the local store are not read', async () => {
    const key = generateSecretKey('read-ahead-test-1')
    const source = new MemorySource()
    const leaf = source.add('leaf', Uint8Array.of(1))
    const local = source.add('local', Uint8Array.of(2))
    const mid = source.add('mid', Uint8Array.of(3))
    const top = source.add('top', Uint8Array.of(4))
    const refs = new Map([[mid.hashPart, [leaf, local]], [top.hashPart, [mid]]])
    for (const [hashPart, info] of source.infos) {
      const references = [info, ...(refs.get(hashPart) ?? []).map(r => source.infos.get(r.hashPart) as NarInfo)].map(i => i.storePath.slice('/nix/store/'.length)).sort()
      source.infos.set(hashPart, signNarInfo({ ...info, references, url: `nar/${hashPart}.nar` }, key))
    }
    const asked: string[] = []
    const narInfo = source.narInfo.bind(source)
    source.narInfo = async (hashPart) => { asked.push(hashPart); return await narInfo(hashPart) }
    const a = await nodes.peerix({ source })
    const b = await nodes.peerix()
    await b.dial(a.getMultiaddrs()[0])
    await eventually('A known to speak peerix', () => b.services.peerixPeers.list().length === 1)
    const sub = new Substituter({ client: new Libp2pPeerClient(b), trusted: new TrustedKeys([publicKeyOf(key)]), timeoutMs: 5000, prefetch: false, isLocal: h => h === local.hashPart })
    try {
      assert.ok(await sub.narInfo(top.hashPart) !== undefined)
      await eventually('mid and leaf read ahead', () => sub.counters.narInfoReadAheads === 2 && asked.length === 3)
      assert.deepEqual(asked, [top.hashPart, mid.hashPart, leaf.hashPart])
      for (const path of [mid, leaf]) assert.equal((await sub.narInfo(path.hashPart))?.narHash, path.narHash)
      assert.equal(asked.length, 3, 'Nix\'s requests were answered without asking A again')
      assert.equal(sub.counters.narInfoReadAheadHits, 2)
      assert.equal(sub.counters.narInfoHits, 3)
    } finally {
      sub.stop()
    }
  })
})
