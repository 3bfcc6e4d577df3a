/**
 * `peerix status`, `peerix peers` and `peerix which` as an operator runs them (the built CLI),
 * against two real daemons after a real fetch, and against a URL where no daemon listens.
 */
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { createServer } from 'node:net'
import { CLI } from '../helpers/daemon.js'
import { startFetchedPair, type FetchedPair } from '../helpers/daemon-pair.js'
import { AGENT_VERSION } from '../../src/p2p/constants.js'
import type { StatusReport } from '../../src/daemon/status.js'

interface Run { code: number, stdout: string, stderr: string }

async function peerix (args: string[]): Promise<Run> {
  return await new Promise(resolve => {
    execFile(process.execPath, [CLI, ...args], { timeout: 60_000 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : -1
      resolve({ code, stdout, stderr })
    })
  })
}

/** A loopback port nothing listens on (bound, then released). */
async function freePort (): Promise<number> {
  const server = createServer()
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  await new Promise(resolve => server.close(resolve))
  return port
}

describe('peerix status / peers / which', function () {
  this.timeout(180_000)

  describe('with no daemon running', () => {
    for (const args of [['status'], ['peers'], ['peers', '--json'], ['which', '0'.repeat(32)]]) {
      it(`peerix ${args.join(' ')} says so and exits 1`, async () => {
        const url = `http://127.0.0.1:${await freePort()}`
        const run = await peerix([...args, '--url', url])
        assert.equal(run.code, 1)
        assert.equal(run.stdout, '')
        assert.equal(run.stderr, `peerix: no daemon running at ${url} (connection refused): start one with \`peerix daemon\`, or point --url at it\n`)
      })
    }

    it('refuses a --url that is not an http URL, and a path that is no store path', async () => {
      const bad = await peerix(['status', '--url', 'localhost:12304'])
      assert.equal(bad.code, 1)
      assert.match(bad.stderr, /--url "localhost:12304": expected an http:\/\/ URL/)
      const path = await peerix(['which', '/nix/store/short-name'])
      assert.equal(path.code, 1)
      assert.match(path.stderr, /"\/nix\/store\/short-name" is neither a store path nor a store hash/)
    })
  })

  describe('against two daemons after a real fetch', () => {
    let pair: FetchedPair

    before(async () => { pair = await startFetchedPair('cli') })
    after(async () => { await pair?.cleanup() })

    it('status: who this node is and what it fetched', async () => {
      const run = await peerix(['status', '--url', pair.b.url])
      assert.equal(run.code, 0, run.stderr)
      const field = (name: string): string => {
        const line = run.stdout.split('\n').find(l => l.startsWith(`${name} `))
        assert.ok(line !== undefined, `no "${name}" line in:\n${run.stdout}`)
        return line.slice(name.length).trim()
      }
      assert.equal(field('peer id'), pair.b.peerId)
      assert.equal(field('agent'), AGENT_VERSION)
      assert.equal(field('substituter'), pair.b.url)
      assert.equal(field('peers'), '1 connected (1 peerix)')
      // B was given A's key; its public caches are the default, cache.nixos.org's
      assert.equal(field('trusts'), 'cli-a-1; public caches: cache.nixos.org-1')
      assert.match(field('narinfo'), /^\d+ hits, 0 misses \(100 % hit rate\); 0 verification failures$/)
      assert.match(field('fetched'), new RegExp(`^${pair.closure.length} NARs( \\(\\d+ with their narinfo\\))?, [\\d.]+ (B|KiB) from peers$`))
      assert.equal(field('transfers'), 'none')

      const json = JSON.parse((await peerix(['status', '--json', '--url', pair.b.url])).stdout) as StatusReport
      assert.equal(json.peerId, pair.b.peerId)
      assert.equal(json.counters.narCompleted + json.counters.narsInline, pair.closure.length)
    })

    it('peers: a table row for the peer with its agent, address and what came from it', async () => {
      const run = await peerix(['peers', '--url', pair.b.url])
      assert.equal(run.code, 0, run.stderr)
      const [header, ...rows] = run.stdout.trimEnd().split('\n')
      assert.match(header, /^PEER\s+AGENT\s+ADDRESS\s+PING\s+CONNECTED\s+INDEX\s+NARINFOS IN\/OUT\s+BYTES IN\/OUT$/)
      assert.equal(rows.length, 1, run.stdout)
      const cells = rows[0].split(/\s{2,}/)
      assert.equal(cells[0], pair.a.peerId)
      assert.equal(cells[1], AGENT_VERSION)
      assert.ok(pair.aAddr.startsWith(cells[2]), `${cells[2]} vs ${pair.aAddr}`)
      assert.match(cells[3], /^\d+ ms$/)
      assert.match(cells[5], /^(\d+ paths|-)$/)
      assert.match(cells[6], /^(\d+)\/0$/)
      assert.ok(Number(cells[6].split('/')[0]) >= pair.closure.length)
      assert.match(cells[7], /^[\d.]+ (B|KiB)\/0 B$/)

      const fromA = await peerix(['peers', '--json', '--url', pair.a.url])
      const peers = JSON.parse(fromA.stdout) as StatusReport['peers']
      assert.deepEqual(peers.map(p => p.id), [pair.b.peerId])
      assert.ok(peers[0].served.narBytes > 0)
    })

    it('which: the peer that has a path, the key that verified it; exit 1 when no peer has it', async () => {
      const run = await peerix(['which', pair.top, '--url', pair.b.url])
      assert.equal(run.code, 0, run.stderr)
      const lines = run.stdout.trimEnd().split('\n')
      assert.equal(lines[0], `${pair.top}: 1 of 1 peers have it signed by a trusted key`)
      assert.match(lines[1], /^PEER\s+STATUS\s+DETAILS$/)
      assert.equal(lines[2].split(/\s{2,}/).join('|'), `${pair.a.peerId}|verified|verified by ${pair.keyName}; signed by ${pair.keyName}`)

      const byHash = await peerix(['which', pair.top.slice('/nix/store/'.length, '/nix/store/'.length + 32), '--json', '--url', pair.b.url])
      assert.equal(byHash.code, 0)
      assert.equal((JSON.parse(byHash.stdout) as Array<{ status: string }>)[0].status, 'verified')

      const absent = await peerix(['which', '1'.repeat(32), '--url', pair.b.url])
      assert.equal(absent.code, 1)
      assert.match(absent.stdout, /0 of 1 peers have it/)
      assert.match(absent.stdout, /absent\s+does not have it/)
    })
  })
})
