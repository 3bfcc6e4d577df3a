/**
 * More NARs asked of one peer at once than /peerix/nar/1 allows streams (32 per connection):
 * Nix runs up to `http-connections` downloads at once (25 by default, often 50 or unlimited),
 * and several Nix clients can share a daemon. The peer resets the streams beyond its limit;
 * before, B then answered some of them 404 and Nix built those paths itself (or failed). Now
 * B queues the extra requests until one of its streams to the peer is free.
 */
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { request } from 'node:http'
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { NixEnv } from '../helpers/nix.js'
import { startDaemon, type DaemonProcess } from '../helpers/daemon.js'
import { MAX_STREAMS_PER_PEER } from '../../src/p2p/nar/constants.js'
import { parseNarInfo } from '../../src/nix/narinfo.js'
import { toNarHash } from '../../src/nix/hash.js'

const PATHS = 100
const KiB = 1024

/** 100 paths of 128 KiB to 524 KiB of random bytes each, built offline. */
function blobsExpr (): string {
  return `builtins.genList (i: builtins.derivation {
    name = "blob-\${toString i}";
    builder = "/bin/sh";
    args = [ "-c" "/bin/mkdir $out; /usr/bin/head -c $((${128 * KiB} + \${toString i} * ${4 * KiB})) /dev/urandom > $out/f" ];
    system = builtins.currentSystem;
  }) ${PATHS}`
}

/** A GET through the shim: its status and the sha256 of its body as a NarHash. */
async function get (url: string): Promise<{ status: number, narHash: string, bytes: number }> {
  return await new Promise((resolve, reject) => {
    const req = request(url, { agent: false }, (res) => {
      const hash = createHash('sha256')
      let bytes = 0
      res.on('data', (chunk: Buffer) => { hash.update(chunk); bytes += chunk.length })
      res.on('end', () => { resolve({ status: res.statusCode ?? 0, narHash: toNarHash(`sha256:${hash.digest('hex')}`), bytes }) })
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end()
  })
}

describe('more NARs asked of one peer at once than it allows streams (two real daemons)', function () {
  this.timeout(300_000)
  let nix: NixEnv | undefined
  const daemons: DaemonProcess[] = []
  let b: DaemonProcess
  let paths: string[]

  before(async () => {
    nix = await NixEnv.create('peerix-narcap-')
    const rootA = nix.storeRoot('hostA')
    paths = await nix.build(rootA, blobsExpr())
    const key = await nix.generateKey('narcap-a-1')
    const common = async (name: string): Promise<string[]> => {
      const state = join((nix as NixEnv).dir, `state-${name}`)
      await mkdir(state, { recursive: true })
      return ['--state-dir', state, '--listen', '127.0.0.1:0', '--p2p-listen', '/ip4/127.0.0.1/tcp/0', '--no-mdns', '--timeout', '3000']
    }
    const a = await startDaemon([...await common('a'), '--store-root', rootA, '--signing-key-file', key.secretFile, '--serve', 'all'], { env: nix.env })
    daemons.push(a)
    const aAddr = /p2p on (\S+)/.exec(await a.waitFor(/p2p on /))?.[1] ?? ''
    b = await startDaemon([...await common('b'), '--store-root', await nix.initStore('hostB'), '--trusted-public-keys', key.publicKey, '--peer', aAddr], { env: nix.env })
    daemons.push(b)
    await b.waitFor(/peer found/, 30_000)
  })

  after(async () => {
    await Promise.all(daemons.splice(0).map(async d => await d.stop()))
    await nix?.cleanup()
  })

  it(`answers all ${PATHS} NARs asked at once through the shim with 200 and the right bytes, none 404 (the peer's stream limit is queued for, not exceeded)`, async () => {
    assert.ok(PATHS > MAX_STREAMS_PER_PEER)
    const infos = await Promise.all(paths.map(async (p) => {
      const hashPart = p.slice('/nix/store/'.length, '/nix/store/'.length + 32)
      const res = await fetch(`${b.url}/${hashPart}.narinfo`)
      assert.equal(res.status, 200, `narinfo of ${p}`)
      return parseNarInfo(await res.text())
    }))
    const answers = await Promise.all(infos.map(async info => await get(`${b.url}/${info.url}`)))
    const wrong = answers.map((answer, i) => ({ ...answer, path: paths[i], expected: infos[i].narHash, size: infos[i].narSize }))
      .filter(a => a.status !== 200 || a.narHash !== a.expected || a.bytes !== a.size)
    assert.deepEqual(wrong.map(w => `${w.path}: ${w.status}, ${w.bytes} of ${w.size} bytes`), [],
      `${wrong.filter(w => w.status === 404).length} of ${PATHS} got 404; B said:\n${b.lines.filter(l => /failed|no peer/.test(l)).slice(0, 6).join('\n')}`)
    // Queued, not refused: no request went beyond the limit and failed at its first byte (the
    // peer's reset, or libp2p's own outbound limit), only to be rescued by B's retry.
    assert.deepEqual(b.lines.filter(l => /failed at byte 0/.test(l)).slice(0, 3), [])
  })
})
