/**
 * The substituter with the peer index over real peerix nodes: a hit is asked only of the
 * peers whose summary may hold it, a miss is answered without asking anyone, and a peer that
 * sends no summary is still asked.
 */
import '../../src/polyfill.js'
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { formatSha256Nix32 } from '../../src/nix/hash.js'
import { toNix32 } from '../../src/nix/nix32.js'
import { signNarInfo } from '../../src/nix/narinfo-signing.js'
import { generateSecretKey, publicKeyOf, TrustedKeys } from '../../src/nix/signing.js'
import { Libp2pPeerClient } from '../../src/p2p/libp2p-peer-client.js'
import { StoreSummary } from '../../src/store/summary.js'
import { Substituter } from '../../src/substituter/substituter.js'
import { MemorySource, Nodes, eventually } from './node-helpers.js'
import type { NarInfo } from '../../src/nix/narinfo.js'
import type { PathRow } from '../../src/store/db.js'
import type { PeerixNode } from '../../src/p2p/node.js'

const key = generateSecretKey('test-1')

/** A MemorySource that counts the narinfo questions it gets, with a summary of what it holds. */
class CountingSource extends MemorySource {
  asked = 0
  override async narInfo (hashPart: string): ReturnType<MemorySource['narInfo']> {
    this.asked++
    return await super.narInfo(hashPart)
  }

  addPath (name: string): string {
    const hashPart = toNix32(randomBytes(20))
    const info: NarInfo = {
      storePath: `/nix/store/${hashPart}-${name}`,
      url: `nar/${hashPart}.nar`,
      compression: 'none',
      narHash: formatSha256Nix32(createHash('sha256').update(name).digest()),
      narSize: 100,
      references: [],
      sigs: []
    }
    this.infos.set(hashPart, signNarInfo(info, key))
    return hashPart
  }

  async summary (): Promise<StoreSummary> {
    const rows = (): PathRow[] => [...this.infos.values()].map((info, i) => ({ id: i + 1, path: info.storePath, sigs: '' }))
    const summary = new StoreSummary({ db: { rowsAfter: (after, limit) => rows().filter(r => r.id > after).slice(0, limit), byHashPart: () => undefined } })
    await summary.poll()
    return summary
  }
}

describe('substituter with the peer index', function () {
  this.timeout(60_000)
  const nodes = new Nodes()
  afterEach(async () => { await nodes.stopAll() })

  it('asks only the peers whose summary may hold the path, and no peer for a miss; a peer without a summary is still asked', async () => {
    const withPath = new CountingSource()
    const hit = withPath.addPath('hit')
    const without = new CountingSource()
    without.addPath('other')
    const older = new CountingSource()

    const a = await nodes.peerix({ source: withPath, summary: await withPath.summary() })
    const c = await nodes.peerix({ source: without, summary: await without.summary() })
    const b = await nodes.peerix()
    await b.dial(a.getMultiaddrs()[0])
    await b.dial(c.getMultiaddrs()[0])
    const substituter = new Substituter({ client: new Libp2pPeerClient(b), index: b.services.index, trusted: new TrustedKeys([publicKeyOf(key)]), timeoutMs: 5000 })
    const summarised = (n: PeerixNode): boolean => b.services.index.summaryOf(n.peerId.toString()) !== undefined
    await eventually('both summaries', () => summarised(a) && summarised(c) && b.services.peerixPeers.list().length === 2)

    assert.equal((await substituter.narInfo(hit))?.storePath, withPath.infos.get(hit)?.storePath)
    assert.deepEqual([withPath.asked, without.asked], [1, 0], 'only A was asked')

    const started = performance.now()
    assert.equal(await substituter.narInfo(toNix32(randomBytes(20))), undefined)
    const missMs = performance.now() - started
    assert.deepEqual([withPath.asked, without.asked], [1, 0], 'nobody was asked for a miss')
    assert.ok(missMs < 1000, `a miss took ${missMs.toFixed(2)} ms, the wait budget is 5000 ms`)

    // a third peer that sends no summary (an older peerix, or --no-index) is asked for everything
    const d = await nodes.peerix({ source: older })
    await b.dial(d.getMultiaddrs()[0])
    await eventually('D is a peer', () => b.services.peerixPeers.list().length === 3)
    assert.equal(await substituter.narInfo(toNix32(randomBytes(20))), undefined)
    assert.deepEqual([withPath.asked, without.asked, older.asked], [1, 0, 1])
  })
})
