import '../../src/polyfill.js'
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { formatSha256Nix32 } from '../../src/nix/hash.js'
import { parseNarInfo } from '../../src/nix/narinfo.js'
import { toNix32 } from '../../src/nix/nix32.js'
import { Libp2pPeerClient } from '../../src/p2p/libp2p-peer-client.js'
import { MemorySource, Nodes, eventually } from './node-helpers.js'
import type { NarInfo } from '../../src/nix/narinfo.js'
import type { Answer } from '../../src/p2p/peer-client.js'

/** A path in a memory store: its narinfo and NAR bytes. */
function addPath (source: MemorySource, name: string, nar: Uint8Array): NarInfo {
  const hashPart = toNix32(createHash('sha256').update(name).digest().subarray(0, 20))
  const info: NarInfo = {
    storePath: `/nix/store/${hashPart}-${name}`,
    url: `nar/${hashPart}.nar`,
    compression: 'none',
    narHash: formatSha256Nix32(createHash('sha256').update(nar).digest()),
    narSize: nar.length,
    references: [],
    sigs: []
  }
  source.infos.set(hashPart, info)
  source.nars.set(hashPart, nar)
  return info
}

/** The bytes of a found NAR answer. */
async function body (answer: Answer<AsyncIterable<Uint8Array>>): Promise<Buffer> {
  if (answer.status !== 'found') assert.fail(`expected found, got ${JSON.stringify(answer)}`)
  const chunks: Uint8Array[] = []
  for await (const chunk of answer.value) chunks.push(chunk)
  return Buffer.concat(chunks)
}

describe('Libp2pPeerClient', () => {
  const nodes = new Nodes()
  afterEach(async () => { await nodes.stopAll() })

  it('asks a peer by its PeerId string for narinfos and NARs', async () => {
    const source = new MemorySource()
    const nar = new Uint8Array(randomBytes(300_000))
    const info = addPath(source, 'hello-2.12', nar)
    const hashPart = info.storePath.slice('/nix/store/'.length, '/nix/store/'.length + 32)
    const a = await nodes.peerix({ source })
    const b = await nodes.peerix()
    const client = new Libp2pPeerClient(b)
    await b.dial(a.getMultiaddrs()[0])
    await eventually('B to list A', () => client.peers().length === 1)
    const [peer] = client.peers()
    assert.equal(peer, a.peerId.toString())

    const found = await client.narInfo(peer, hashPart, AbortSignal.timeout(5000))
    assert.equal(found.status, 'found')
    assert.deepEqual(parseNarInfo(found.status === 'found' ? found.value : ''), info)

    const absent = await client.narInfo(peer, hashPart.replace(/^./, c => c === '0' ? '1' : '0'), AbortSignal.timeout(5000))
    assert.equal(absent.status, 'absent')

    const whole = await body(await client.nar(peer, hashPart, info.narHash, 0, AbortSignal.timeout(5000)))
    assert.ok(Buffer.from(nar).equals(whole))
    const rest = await body(await client.nar(peer, hashPart, info.narHash, 123_456, AbortSignal.timeout(5000)))
    assert.ok(Buffer.from(nar.subarray(123_456)).equals(rest))
  })

  it('asks a peer by a PeerId string it never listed, and again by the same string', async () => {
    const source = new MemorySource()
    const info = addPath(source, 'unlisted', new Uint8Array(randomBytes(1000)))
    const hashPart = info.storePath.slice('/nix/store/'.length, '/nix/store/'.length + 32)
    const a = await nodes.peerix({ source })
    const b = await nodes.peerix()
    await b.dial(a.getMultiaddrs()[0])
    const client = new Libp2pPeerClient(b)
    for (let i = 0; i < 2; i++) {
      const found = await client.narInfo(a.peerId.toString(), hashPart, AbortSignal.timeout(5000))
      assert.equal(found.status, 'found', `ask #${i + 1}`)
    }
  })

  it('answers an error, not a throw, for a peer string that is not a PeerId', async () => {
    const client = new Libp2pPeerClient(await nodes.peerix())
    for (const answer of [
      await client.narInfo('not-a-peer', '0'.repeat(32), AbortSignal.timeout(1000)),
      await client.nar('not-a-peer', '0'.repeat(32), 'sha256:x', 0, AbortSignal.timeout(1000))
    ]) {
      assert.equal(answer.status, 'error')
      assert.match(answer.status === 'error' ? answer.message : '', /"not-a-peer" is not a libp2p peer ID/)
    }
  })

  /** Peer A, and B's client once it lists A. */
  async function connected (): Promise<{ a: Awaited<ReturnType<typeof nodes.peerix>>, client: Libp2pPeerClient, peer: string }> {
    const a = await nodes.peerix()
    const b = await nodes.peerix()
    const client = new Libp2pPeerClient(b)
    await b.dial(a.getMultiaddrs()[0])
    await eventually('B to list A', () => client.peers().length === 1)
    return { a, client, peer: client.peers()[0] }
  }

  it('answers an error for a peer that is gone', async () => {
    const { a, client, peer } = await connected()
    await a.stop()
    await eventually('B to drop A', () => client.peers().length === 0)
    const answer = await client.narInfo(peer, '0'.repeat(32), AbortSignal.timeout(5000))
    assert.equal(answer.status, 'error')
  })

  it('knows when a peer last sent bytes; a probe gets a live peer to send some; a peer that left is forgotten', async () => {
    const { a, client, peer } = await connected()
    await eventually('B to hear from A (identify)', () => client.lastHeard(peer) !== undefined)
    const before = client.lastHeard(peer) ?? 0
    await new Promise(resolve => setTimeout(resolve, 20))
    client.probe(peer)
    await eventually('A to answer the probe', () => (client.lastHeard(peer) ?? 0) > before)
    await a.stop()
    await eventually('B to forget A', () => client.lastHeard(peer) === undefined)
  })
})
