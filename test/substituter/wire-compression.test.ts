/**
 * When the substituter asks a peer for zstd (src/substituter/wire-compression.ts): the policy
 * on its own, and over real peerix nodes, where `auto` fetches the first NAR from a peer as it
 * is, measures it, and asks for zstd next time only when that peer's link was slow.
 */
import '../../src/polyfill.js'
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import { formatSha256Nix32 } from '../../src/nix/hash.js'
import { narStream } from '../../src/nix/nar.js'
import { signNarInfo } from '../../src/nix/narinfo-signing.js'
import { toNix32 } from '../../src/nix/nix32.js'
import { generateSecretKey, publicKeyOf, TrustedKeys } from '../../src/nix/signing.js'
import { Libp2pPeerClient } from '../../src/p2p/libp2p-peer-client.js'
import { Substituter } from '../../src/substituter/substituter.js'
import { AUTO_TRY_ZSTD_BELOW_BYTES_PER_SECOND, AUTO_ZSTD_BELOW_BYTES_PER_SECOND, MAX_REMEMBERED_PEERS, MIN_SAMPLE_BYTES, PROBE_EVERY, WireCompressionPolicy } from '../../src/substituter/wire-compression.js'
import { LogLines, MemorySource, Nodes, eventually } from '../p2p/node-helpers.js'
import type { WireCompression } from '../../src/substituter/wire-compression.js'

const MiB = 1024 * 1024

describe('wire compression policy', () => {
  it('asks every peer with zstd, none with off, whatever was measured', () => {
    const zstd = new WireCompressionPolicy('zstd')
    const off = new WireCompressionPolicy('off')
    for (const policy of [zstd, off]) policy.observed('slow', 10 * MiB, 10_000)
    assert.deepEqual([zstd.wants('slow', MiB), zstd.wants('new', MiB)], [true, true])
    assert.deepEqual([off.wants('slow', MiB), off.wants('new', MiB)], [false, false])
  })

  it('auto: asks a peer only once it measured its link below the threshold', () => {
    const policy = new WireCompressionPolicy('auto')
    assert.equal(policy.wants('p', 10 * MiB), false, 'nothing measured yet: the first NAR goes as it is')
    // 5 MiB/s, a 40 Mbit/s link
    policy.observed('p', 10 * MiB, 2000)
    assert.equal(policy.rate('p'), 5 * MiB)
    assert.equal(policy.wants('p', 10 * MiB), true)
    // 200 MiB/s, faster than zstd goes: never tried
    policy.observed('q', 200 * MiB, 1000)
    for (let i = 0; i < 2 * PROBE_EVERY; i++) assert.equal(policy.wants('q', 10 * MiB), false)
    assert.ok(AUTO_ZSTD_BELOW_BYTES_PER_SECOND > 5 * MiB && AUTO_ZSTD_BELOW_BYTES_PER_SECOND < 100 * MiB)
    assert.ok(AUTO_TRY_ZSTD_BELOW_BYTES_PER_SECOND > 118 * MiB && AUTO_TRY_ZSTD_BELOW_BYTES_PER_SECOND < 200 * MiB)
  })

  it('auto: on a link of about gigabit speed, tries zstd and keeps it only while it comes faster', () => {
    const policy = new WireCompressionPolicy('auto')
    // 110 MiB/s uncompressed: worth a try
    policy.observed('p', 110 * MiB, 1000)
    assert.equal(policy.wants('p', 10 * MiB), true, 'tried')
    // zstd came at 150 MiB/s of NAR: kept, with one large NAR in PROBE_EVERY uncompressed
    policy.observed('p', 150 * MiB, 1000, true)
    assert.equal(policy.zstdRate('p'), 150 * MiB)
    assert.equal(policy.rate('p'), 110 * MiB, 'a compressed body does not measure the link')
    const large = Array.from({ length: PROBE_EVERY }, () => policy.wants('p', 10 * MiB))
    assert.equal(large.filter(asked => !asked).length, 1)
    // zstd slowed down to 50 MiB/s (estimate 100): dropped, tried again in one large NAR of PROBE_EVERY
    policy.observed('p', 50 * MiB, 1000, true)
    assert.equal(policy.zstdRate('p'), 100 * MiB)
    const after = Array.from({ length: PROBE_EVERY }, () => policy.wants('p', 10 * MiB))
    assert.equal(after.filter(asked => asked).length, 1)
    assert.equal(policy.wants('p', MIN_SAMPLE_BYTES - 1), false, 'small NARs go the preferred way')
  })

  it('auto: ignores short bodies and moves halfway to each new measurement', () => {
    const policy = new WireCompressionPolicy('auto', 20 * MiB, 20 * MiB)
    policy.observed('p', MIN_SAMPLE_BYTES - 1, 1000)
    assert.equal(policy.rate('p'), undefined)
    policy.observed('p', 10 * MiB, 1000)
    policy.observed('p', 40 * MiB, 1000)
    assert.equal(policy.rate('p'), 25 * MiB)
    assert.equal(policy.wants('p', 10 * MiB), false)
    policy.observed('p', 10 * MiB, 2000)
    assert.equal(policy.rate('p'), 15 * MiB)
    assert.equal(policy.wants('p', 10 * MiB), true)
  })

  it('auto: has a compressing peer send one large NAR in PROBE_EVERY uncompressed, to measure its link again', () => {
    const policy = new WireCompressionPolicy('auto')
    policy.observed('p', 10 * MiB, 2000)
    const large = Array.from({ length: 2 * PROBE_EVERY }, () => policy.wants('p', MIN_SAMPLE_BYTES))
    assert.deepEqual(large.map((asked, i) => asked ? '' : i), [...large.keys()].map(i => (i + 1) % PROBE_EVERY === 0 ? i : ''))
    // small NARs neither measure anything nor count towards the next probe
    for (let i = 0; i < 3 * PROBE_EVERY; i++) assert.equal(policy.wants('p', MIN_SAMPLE_BYTES - 1), true)
    assert.equal(policy.wants('p', MIN_SAMPLE_BYTES), true)
  })

  it('remembers a bounded number of peers, forgetting the least recently measured', () => {
    const policy = new WireCompressionPolicy('auto')
    for (let i = 0; i <= MAX_REMEMBERED_PEERS; i++) policy.observed(`p${i}`, 10 * MiB, 5000)
    assert.equal(policy.rate('p0'), undefined)
    assert.equal(policy.rate('p1'), 2 * MiB)
    assert.equal(policy.rate(`p${MAX_REMEMBERED_PEERS}`), 2 * MiB)
  })
})

describe('wire compression between peerix nodes', function () {
  this.timeout(60_000)
  const nodes = new Nodes()
  const key = generateSecretKey('test-1')
  let nar: Buffer

  before(async () => {
    const chunks: Uint8Array[] = []
    for await (const chunk of narStream(fileURLToPath(new URL('../../src', import.meta.url)))) chunks.push(chunk)
    // real files, above MIN_SAMPLE_BYTES so that a transfer counts as a measurement
    const one = Buffer.concat(chunks)
    nar = Buffer.concat(Array.from({ length: Math.ceil(2 * MIN_SAMPLE_BYTES / one.byteLength) + 1 }, () => one))
    assert.ok(nar.byteLength > 2 * MIN_SAMPLE_BYTES)
  })

  afterEach(async () => { await nodes.stopAll() })

  /** Peer A serving one compressible path; B's substituter with `policy`; A's log lines. */
  async function pair (policy: WireCompression | WireCompressionPolicy): Promise<{ substituter: Substituter, hashPart: string, peer: string, aLog: LogLines, bLog: string[] }> {
    const source = new MemorySource()
    const hashPart = toNix32(createHash('sha256').update('compressible').digest().subarray(0, 20))
    source.infos.set(hashPart, signNarInfo({
      storePath: `/nix/store/${hashPart}-compressible`,
      url: `nar/${hashPart}.nar`,
      compression: 'none',
      narHash: formatSha256Nix32(createHash('sha256').update(nar).digest()),
      narSize: nar.byteLength,
      references: [],
      sigs: []
    }, key))
    source.nars.set(hashPart, nar)
    const aLog = new LogLines()
    const a = await nodes.peerix({ source, log: aLog.logger })
    const b = await nodes.peerix()
    await b.dial(a.getMultiaddrs()[0])
    await eventually('A known to speak peerix', () => b.services.peerixPeers.list().length === 1)
    const bLog: string[] = []
    const substituter = new Substituter({ client: new Libp2pPeerClient(b), trusted: new TrustedKeys([publicKeyOf(key)]), timeoutMs: 5000, wireCompression: policy, log: (line) => { bLog.push(line) } })
    return { substituter, hashPart, peer: a.peerId.toString(), aLog, bLog }
  }

  /** The NAR as Nix would read it, taking `readerMs` over each piece. */
  async function download (substituter: Substituter, hashPart: string, readerMs = 0): Promise<Buffer> {
    const info = await substituter.narInfo(hashPart)
    assert.ok(info !== undefined)
    const download = await substituter.nar(hashPart, info.narHash)
    assert.ok(download !== undefined)
    const chunks: Uint8Array[] = []
    for await (const chunk of download.stream) {
      chunks.push(chunk)
      if (readerMs > 0) await new Promise(resolve => setTimeout(resolve, readerMs))
    }
    return Buffer.concat(chunks)
  }

  const servedAs = (aLog: LogLines): string[] => aLog.matching(/nar: served /).map(l => /as zstd blocks/.test(l.line) ? 'zstd' : 'identity')

  it('auto: the first NAR as it is, the next as zstd once the peer measured slow; a compressed NAR measures its own rate, not the link\'s', async () => {
    // every link counts as slow here: loopback is not
    const policy = new WireCompressionPolicy('auto', Infinity)
    const { substituter, hashPart, peer, aLog, bLog } = await pair(policy)
    assert.ok((await download(substituter, hashPart)).equals(nar))
    const measured = policy.rate(peer)
    assert.ok(measured !== undefined && measured > 0)
    assert.equal(policy.zstdRate(peer), undefined)
    assert.ok((await download(substituter, hashPart)).equals(nar))
    assert.deepEqual(servedAs(aLog), ['identity', 'zstd'])
    assert.equal(policy.rate(peer), measured)
    assert.ok((policy.zstdRate(peer) ?? 0) > 0)
    const wire = bLog.map(line => /^nar \w+: (\d+) bytes from peer \S+ took (\d+) on the wire \(asked for zstd, got zstd\)$/.exec(line)).filter(m => m !== null)
    assert.equal(wire.length, 1, bLog.join('\n'))
    assert.equal(Number(wire[0]?.[1]), nar.byteLength)
    assert.ok(Number(wire[0]?.[2]) < nar.byteLength / 2, `${wire[0]?.[2]} wire bytes`)
  })

  it('auto: keeps fetching as it is from a fast peer', async () => {
    const { substituter, hashPart, aLog } = await pair(new WireCompressionPolicy('auto', 1, 1))
    for (let i = 0; i < 3; i++) assert.ok((await download(substituter, hashPart)).equals(nar))
    assert.deepEqual(servedAs(aLog), ['identity', 'identity', 'identity'])
  })

  it('auto: a slow reader does not make a fast link look slow', async () => {
    // 48 MiB/s as in the daemon, without the gigabit zone's trial; the reader takes ~5 ms per
    // piece, far below that rate
    const policy = new WireCompressionPolicy('auto', AUTO_ZSTD_BELOW_BYTES_PER_SECOND, AUTO_ZSTD_BELOW_BYTES_PER_SECOND)
    const { substituter, hashPart, peer, aLog } = await pair(policy)
    const started = performance.now()
    assert.ok((await download(substituter, hashPart, 5)).equals(nar))
    const overall = nar.byteLength / (performance.now() - started) * 1000
    assert.ok(overall < AUTO_ZSTD_BELOW_BYTES_PER_SECOND, `the download went at ${overall} bytes/s: the reader was not slow`)
    const measured = policy.rate(peer)
    assert.ok(measured !== undefined && measured >= AUTO_ZSTD_BELOW_BYTES_PER_SECOND, `link measured at ${measured} bytes/s, the download at ${overall}`)
    assert.ok((await download(substituter, hashPart)).equals(nar))
    assert.deepEqual(servedAs(aLog), ['identity', 'identity'])
  })

  it('auto: tries zstd on a link in the trial zone, then goes the way that measured faster', async () => {
    // every link is in the trial zone here, none counts as slow
    const policy = new WireCompressionPolicy('auto', 1, Infinity)
    const { substituter, hashPart, peer, aLog } = await pair(policy)
    for (let i = 0; i < 3; i++) assert.ok((await download(substituter, hashPart)).equals(nar))
    const [rate, zstdRate] = [policy.rate(peer), policy.zstdRate(peer)]
    assert.ok(rate !== undefined && zstdRate !== undefined)
    assert.deepEqual(servedAs(aLog), ['identity', 'zstd', zstdRate > rate ? 'zstd' : 'identity'], `link ${rate} bytes/s, zstd ${zstdRate}`)
  })

  it('zstd asks from the first NAR on; off never asks', async () => {
    const zstd = await pair('zstd')
    assert.ok((await download(zstd.substituter, zstd.hashPart)).equals(nar))
    assert.deepEqual(servedAs(zstd.aLog), ['zstd'])
    const off = await pair('off')
    for (let i = 0; i < 2; i++) assert.ok((await download(off.substituter, off.hashPart)).equals(nar))
    assert.deepEqual(servedAs(off.aLog), ['identity', 'identity'])
  })
})
