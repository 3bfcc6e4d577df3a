/**
 * The shim against the real Nix client: `nix copy --from http://…` and `nix-store --realise`
 * with the shim as substituter bring a closure (references, symlinks, executables) from
 * in-test peers serving what a real store holds, signed by a Nix-generated key. A NAR cut
 * midway with no other peer must make Nix fail and import nothing.
 */
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import type { Server } from 'node:http'
import { join } from 'node:path'
import { createShim, listenShim } from '../../src/http/server.js'
import { Substituter } from '../../src/substituter/substituter.js'
import { TrustedKeys } from '../../src/nix/signing.js'
import { toNarHash } from '../../src/nix/hash.js'
import { NixEnv, sampleClosureExpr } from '../helpers/nix.js'
import { FixturePeerClient, narServer, sleep, type FixturePeer, type NarFault } from '../substituter/fixture-peers.js'

interface PathInfoJson { path: string, narHash: string, narSize: number, references: string[], deriver?: string, signatures?: string[] }

const baseName = (path: string): string => path.slice('/nix/store/'.length)
const hashPartOf = (path: string): string => baseName(path).slice(0, 32)

/** The narinfo a peer would send for a path, written here by hand from `nix path-info --json`. */
function narInfoText (p: PathInfoJson): string {
  return [
    `StorePath: ${p.path}`,
    `URL: nar/${hashPartOf(p.path)}.nar`,
    'Compression: none',
    `NarHash: ${toNarHash(p.narHash)}`,
    `NarSize: ${p.narSize}`,
    `References: ${p.references.map(baseName).join(' ')}`,
    ...(p.deriver !== undefined ? [`Deriver: ${baseName(p.deriver)}`] : []),
    ...(p.signatures ?? []).map(s => `Sig: ${s}`),
    ''
  ].join('\n')
}

async function dumpNar (env: NixEnv, storeRoot: string, path: string): Promise<Uint8Array> {
  return await new Promise((resolve, reject) => {
    execFile('nix', ['store', 'dump-path', '--store', storeRoot, path], { env: env.env, encoding: 'buffer', maxBuffer: 256 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err != null) reject(new Error(`nix store dump-path ${path}: ${stderr.toString()}`))
      else resolve(Uint8Array.from(stdout))
    })
  })
}

describe('HTTP shim with the real Nix client', function () {
  this.timeout(120_000)
  let env: NixEnv
  let source: string
  let top: string
  let closure: PathInfoJson[]
  let publicKey: string
  const nars = new Map<string, Uint8Array>()
  const servers: Server[] = []

  /** A peer serving the source store's paths, with an optional fault on one path's NAR. */
  function peer (faults: Map<string, NarFault> = new Map()): FixturePeer {
    const byHash = new Map(closure.map(p => [hashPartOf(p.path), p]))
    return {
      narInfo: async (hashPart) => {
        const p = byHash.get(hashPart)
        return p === undefined ? { status: 'absent' } : { status: 'found', value: narInfoText(p) }
      },
      nar: async (hashPart, narHash, offset, signal) => {
        const bytes = nars.get(hashPart)
        if (bytes === undefined) return { status: 'absent' }
        return await narServer(bytes, { chunkSize: 256, ...faults.get(hashPart) })(hashPart, narHash, offset, signal)
      }
    }
  }

  async function shim (peers: Record<string, FixturePeer>): Promise<{ url: string, substituter: Substituter }> {
    const substituter = new Substituter({ client: new FixturePeerClient(new Map(Object.entries(peers))), trusted: TrustedKeys.parse(publicKey), timeoutMs: 2000, stallMs: 2000 })
    const server = createShim({ substituter, priority: 20 })
    servers.push(server)
    const { port } = await listenShim(server, '127.0.0.1', 0)
    return { url: `http://127.0.0.1:${port}`, substituter }
  }

  async function pathInfos (store: string, path: string): Promise<PathInfoJson[]> {
    return JSON.parse((await env.run('nix', ['path-info', '--json', '--store', store, '-r', path])).stdout) as PathInfoJson[]
  }

  before(async () => {
    env = await NixEnv.create('peerix-shim-')
    source = env.storeRoot('source')
    ;[top] = await env.build(source, sampleClosureExpr('shim'))
    const key = await env.generateKey('peer-a-1')
    publicKey = key.publicKey
    await env.run('nix', ['store', 'sign', '--store', source, '--key-file', key.secretFile, '-r', top])
    closure = await pathInfos(source, top)
    assert.equal(closure.length, 3)
    for (const p of closure) nars.set(hashPartOf(p.path), await dumpNar(env, source, p.path))
  })

  after(async () => {
    for (const s of servers) {
      s.closeAllConnections()
      await new Promise(resolve => s.close(resolve))
    }
    await env?.cleanup()
  })

  it('nix copy --from the shim brings the whole closure, signatures checked', async () => {
    const { url } = await shim({ a: peer() })
    const dest = env.storeRoot('copy')
    await env.run('nix', ['copy', '--from', url, '--to', dest, top, '--option', 'trusted-public-keys', publicKey])
    const copied = await pathInfos(dest, top)
    assert.deepEqual(copied.map(p => [p.path, p.narHash, p.narSize]).sort(), closure.map(p => [p.path, p.narHash, p.narSize]).sort())
    assert.ok(copied.every(p => p.signatures?.some(s => s.startsWith('peer-a-1:'))), 'the signatures came along')
    await env.run('nix', ['store', 'verify', '--store', dest, '-r', top, '--option', 'trusted-public-keys', publicKey])
  })

  it('nix-store --realise substitutes through the shim', async () => {
    const { url } = await shim({ a: peer() })
    const dest = env.storeRoot('realise')
    await env.run('nix-store', ['--store', dest, '--realise', top, '--option', 'substituters', url, '--option', 'trusted-public-keys', publicKey])
    const refs = await readFile(join(dest, top, 'refs'), 'utf8')
    assert.equal(refs, await readFile(join(source, top, 'refs'), 'utf8'))
  })

  it('finishes a NAR from a second peer when the first cuts it midway', async () => {
    const leaf = closure.find(p => baseName(p.path).includes('-leaf-'))
    assert.ok(leaf)
    const { url, substituter } = await shim({ cutting: peer(new Map([[hashPartOf(leaf.path), { cutAt: Math.floor(leaf.narSize / 2) }]])), b: peer() })
    const dest = env.storeRoot('failover')
    await env.run('nix', ['copy', '--from', url, '--to', dest, top, '--option', 'trusted-public-keys', publicKey])
    assert.equal((await pathInfos(dest, top)).length, 3)
    assert.equal(substituter.counters.narFailovers, 1)
  })

  it('a NAR its only peer no longer has is absent to Nix (404): nix-build builds that path and substitutes the rest', async () => {
    const leaf = closure.find(p => baseName(p.path).includes('-leaf-'))
    assert.ok(leaf)
    const { url, substituter } = await shim({ collected: peer(new Map([[hashPartOf(leaf.path), { absent: true }]])) })
    const dest = env.storeRoot('collected')
    const built = await env.build(dest, sampleClosureExpr('shim'), ['--option', 'substituters', url, '--option', 'trusted-public-keys', publicKey])
    assert.deepEqual(built, [top])
    const leafInfo = (await pathInfos(dest, leaf.path))[0]
    assert.equal(leafInfo.signatures?.length ?? 0, 0, 'the leaf was built here, not substituted')
    assert.ok((await pathInfos(dest, top)).find(p => p.path === top)?.signatures?.some(s => s.startsWith('peer-a-1:')), 'the top came from the peer')
    assert.ok(substituter.counters.narFailed >= 1, 'the leaf\'s NAR was asked of the peer')
  })

  it('a peer that adds a signature Nix cannot check to a genuine narinfo does not spoil the copy', async () => {
    const honest = peer()
    const spoiler: FixturePeer = {
      // Nix throws "signature is not valid" on this under a key name it trusts.
      narInfo: async (hashPart, signal) => {
        const answer = await honest.narInfo?.(hashPart, signal)
        return answer?.status === 'found' ? { status: 'found', value: `${answer.value}Sig: peer-a-1:AAAA\n` } : { status: 'absent' }
      },
      nar: honest.nar
    }
    const slowHonest: FixturePeer = { ...honest, narInfo: async (hashPart, signal) => { await sleep(50, signal); return await (honest.narInfo?.(hashPart, signal) ?? { status: 'absent' }) } }
    const { url } = await shim({ spoiler, honest: slowHonest })
    const dest = env.storeRoot('spoiled')
    await env.run('nix', ['copy', '--from', url, '--to', dest, top, '--option', 'trusted-public-keys', publicKey])
    assert.equal((await pathInfos(dest, top)).length, 3)
  })

  it('Nix refuses what a key it does not trust signed, though the shim trusts it', async () => {
    const { url } = await shim({ a: peer() })
    const dest = env.storeRoot('untrusted')
    const otherKey = 'other-1:' + Buffer.alloc(32, 1).toString('base64')
    await assert.rejects(env.run('nix', ['copy', '--from', url, '--to', dest, top, '--option', 'trusted-public-keys', otherKey]), /lacks a valid signature|not signed/)
  })

  it('a NAR cut midway with no other peer makes Nix fail and import nothing of that path', async () => {
    const leaf = closure.find(p => baseName(p.path).includes('-leaf-'))
    assert.ok(leaf)
    const { url, substituter } = await shim({ cutting: peer(new Map([[hashPartOf(leaf.path), { cutAt: Math.floor(leaf.narSize / 2) }]])) })
    const dest = env.storeRoot('cut')
    await assert.rejects(env.run('nix', ['copy', '--from', url, '--to', dest, top, '--option', 'trusted-public-keys', publicKey, '--option', 'download-attempts', '2']),
      /Transferred a partial file|transfer closed/)
    assert.ok(substituter.counters.narFailed >= 1)
    await assert.rejects(env.run('nix', ['path-info', '--store', dest, leaf.path]), /is not valid/)
    await assert.rejects(env.run('nix', ['path-info', '--store', dest, top]), /is not valid/)
  })
})
