/**
 * What the operator's figures say of the shim serving other hosts (`--listen` on the LAN): a
 * narinfo refused to a LAN client (no public cache signed it) is a refusal in /status and
 * /metrics, not a hit, and the check before a LAN client's NAR is no narinfo lookup at all.
 * Real parts: two peerix nodes on loopback, B's substituter, shim and introspection as the
 * daemon wires them. A machine on the LAN is stood in for by connections from 127.0.0.2, which
 * the shim is made to see as coming from 192.0.2.10 (TEST-NET-1, no address of this host's).
 */
import '../../src/polyfill.js'
import assert from 'node:assert/strict'
import { request, type Server } from 'node:http'
import type { Socket } from 'node:net'
import { Registry } from 'prom-client'
import { createShim, listenShim } from '../../src/http/server.js'
import { daemonIntrospection } from '../../src/daemon/introspection.js'
import { ServedLog } from '../../src/daemon/served.js'
import { PeerTraffic } from '../../src/daemon/peer-traffic.js'
import { Libp2pPeerClient } from '../../src/p2p/libp2p-peer-client.js'
import { Substituter } from '../../src/substituter/substituter.js'
import { signNarInfo } from '../../src/nix/narinfo-signing.js'
import { TrustedKeys, formatPublicKey, generateSecretKey, publicKeyOf } from '../../src/nix/signing.js'
import { formatNarUrl } from '../../src/store/nar-url.js'
import { silentLogger } from '../../src/log.js'
import { eventually, hashPartOf, MemorySource, Nodes } from '../p2p/node-helpers.js'
import type { StatusReport } from '../../src/daemon/status.js'

const LAN_CLIENT = '127.0.0.2'
const LAN_ADDRESS = '192.0.2.10'

interface Reply { status: number, body: string }

async function get (port: number, path: string, from?: string): Promise<Reply> {
  return await new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, localAddress: from }, res => {
      let body = ''
      res.on('data', (c: Buffer) => { body += c.toString() })
      res.on('end', () => { resolve({ status: res.statusCode ?? 0, body }) })
    })
    req.on('error', reject)
    req.end()
  })
}

/** The value of one sample line of Prometheus text, e.g. `name{label="x"}`; 0 when absent. */
function sample (text: string, series: string): number {
  const line = text.split('\n').find(l => l.startsWith(`${series} `))
  return line === undefined ? 0 : Number(line.slice(series.length + 1))
}

describe('the shim\'s figures for a LAN client', function () {
  this.timeout(30_000)
  const nodes = new Nodes()
  let server: Server | undefined
  let substituter: Substituter | undefined

  after(async () => {
    substituter?.stop()
    if (server !== undefined) {
      server.closeAllConnections()
      await new Promise(resolve => server?.close(resolve))
    }
    await nodes.stopAll()
  })

  it('counts a narinfo refused to it as a refusal, not a hit, and its NAR check as no lookup', async () => {
    const hostKey = generateSecretKey('host-a-1')
    const cacheKey = generateSecretKey('cache.example.org-1')
    // A serves two paths its host key signed; one of them a public cache signed too.
    const store = new MemorySource()
    const mine = store.add('built-here', Uint8Array.from([1, 2, 3]))
    const everyones = store.add('from-the-cache', Uint8Array.from([4, 5, 6]))
    const sign = (hashPart: string, ...keys: Array<typeof hostKey>): void => {
      let info = store.infos.get(hashPart)
      assert.ok(info !== undefined)
      for (const key of keys) info = signNarInfo(info, key)
      store.infos.set(hashPart, info)
    }
    sign(mine.hashPart, hostKey)
    sign(everyones.hashPart, hostKey, cacheKey)
    const absent = hashPartOf('nowhere')

    const a = await nodes.peerix({ source: store })
    const traffic = new PeerTraffic(new MemorySource())
    const served = new ServedLog(traffic, silentLogger)
    const b = await nodes.peerix({ source: served })
    await b.dial(a.getMultiaddrs()[0])
    const client = new Libp2pPeerClient(b)
    await eventually('B to see A speak peerix', () => client.peers().length === 1)

    const trusted = TrustedKeys.parse(`${formatPublicKey(publicKeyOf(hostKey))} ${formatPublicKey(publicKeyOf(cacheKey))}`)
    const publicKeys = TrustedKeys.parse(formatPublicKey(publicKeyOf(cacheKey)))
    substituter = new Substituter({ client, trusted, timeoutMs: 2000 })
    const introspection = daemonIntrospection({
      node: b,
      substituter,
      served: served.counters,
      traffic,
      trusted,
      registry: new Registry(),
      publicKey: formatPublicKey(publicKeyOf(generateSecretKey('host-b-1'))),
      policy: { mode: 'trusted', deny: [], trustedPeers: 0, peersOnly: false },
      keys: { trusted: ['host-a-1', 'cache.example.org-1'], publicCaches: ['cache.example.org-1'] },
      timeoutMs: 2000,
      startedAt: Date.now(),
      httpUrl: () => ''
    })
    server = createShim({ substituter, priority: 20, remote: { publicKeys, hostNames: [] }, introspection })
    server.prependListener('connection', (socket: Socket) => {
      if (socket.remoteAddress?.endsWith(LAN_CLIENT) === true) Object.defineProperty(socket, 'remoteAddress', { value: LAN_ADDRESS })
    })
    const port = (await listenShim(server, '127.0.0.1', 0)).port

    // The LAN client: refused what only A's host key signed, given what the cache signed.
    const refused = await get(port, `/${mine.hashPart}.narinfo`, LAN_CLIENT)
    assert.equal(refused.status, 404)
    assert.match(refused.body, /is for this host only: no public cache signed it/)
    assert.equal((await get(port, `/${everyones.hashPart}.narinfo`, LAN_CLIENT)).status, 200)
    assert.equal((await get(port, `/${absent}.narinfo`, LAN_CLIENT)).status, 404)
    // and its NAR requests are checked against the same rule, without counting as lookups
    assert.equal((await get(port, `/${formatNarUrl(mine.hashPart, mine.narHash)}`, LAN_CLIENT)).status, 404)
    assert.equal((await get(port, `/${formatNarUrl(everyones.hashPart, everyones.narHash)}`, LAN_CLIENT)).status, 200)
    // This host's own Nix gets what A's host key signed.
    assert.equal((await get(port, `/${mine.hashPart}.narinfo`)).status, 200)
    assert.equal((await get(port, '/status', LAN_CLIENT)).status, 403, 'the LAN client is another host to the shim')

    const status = JSON.parse((await get(port, '/status')).body) as StatusReport
    assert.deepEqual(
      { requests: status.counters.narInfoRequests, hits: status.counters.narInfoHits, misses: status.counters.narInfoMisses, refusals: status.counters.narInfoRefusals },
      { requests: 4, hits: 2, misses: 1, refusals: 1 })
    const metrics = (await get(port, '/metrics')).body
    assert.deepEqual(
      ['hit', 'miss', 'refused'].map(result => sample(metrics, `peerix_narinfo_lookups_total{result="${result}"}`)),
      [2, 1, 1], metrics)
  })
})
