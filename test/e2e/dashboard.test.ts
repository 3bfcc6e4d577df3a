/**
 * The dashboard in a real browser (Debian's chromium, driven by playwright-core): after the
 * real Nix client fetched a closure between two daemons, and while a NAR download is held
 * half-way by a reader that stopped reading, the page shows the peer, the hit rate, the bytes
 * fetched from the LAN and the transfer with its progress bar. It takes a screenshot (set
 * PEERIX_SCREENSHOT_TO=docs/dashboard.png to refresh the README's).
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { copyFile, mkdir, stat, writeFile } from 'node:fs/promises'
import { get as httpGet, type ClientRequest } from 'node:http'
import { join } from 'node:path'
import { chromium, type BrowserContext } from 'playwright-core'
import { startFetchedPair, type FetchedPair } from '../helpers/daemon-pair.js'

const CHROMIUM = '/usr/bin/chromium'
const BIG_NAR_BYTES = 24 * 1024 * 1024

/** Starts downloading `url` and stops reading after `bytes`: the transfer stays in progress. */
async function stallAfter (url: string, bytes: number): Promise<ClientRequest> {
  return await new Promise((resolve, reject) => {
    const req = httpGet(url, res => {
      if (res.statusCode !== 200) { reject(new Error(`${url}: ${res.statusCode}`)); return }
      let got = 0
      res.on('data', (chunk: Buffer) => {
        got += chunk.length
        if (got >= bytes) {
          res.pause()
          resolve(req)
        }
      })
    })
    req.on('error', reject)
  })
}

describe('the dashboard in headless chromium', function () {
  this.timeout(240_000)
  let pair: FetchedPair
  let browser: BrowserContext | undefined
  let stalled: ClientRequest | undefined

  before(async () => { pair = await startFetchedPair('dash') })

  after(async () => {
    stalled?.destroy()
    await browser?.close()
    await pair?.cleanup()
  })

  it('shows the peer, the hit rate, the bytes from the LAN and a transfer in progress', async () => {
    // A path big enough that socket buffers cannot swallow it: the download stays half-way.
    const blob = join(pair.nix.dir, 'big-blob')
    await writeFile(blob, randomBytes(BIG_NAR_BYTES))
    const { stdout } = await pair.nix.run('nix-store', ['--store', pair.nix.storeRoot('hostA'), '--add', blob])
    const big = stdout.trim()
    const hashPart = big.slice('/nix/store/'.length, '/nix/store/'.length + 32)
    // B asks A once A's index summary lists the new path (A polls its store every 2 s).
    let res = await fetch(`${pair.b.url}/${hashPart}.narinfo`)
    for (let i = 0; i < 60 && res.status === 404; i++) {
      await new Promise(resolve => setTimeout(resolve, 500))
      res = await fetch(`${pair.b.url}/${hashPart}.narinfo`)
    }
    const narinfo = await res.text()
    const narUrl = /^URL: (\S+)$/m.exec(narinfo)?.[1]
    assert.ok(narUrl !== undefined, narinfo)
    stalled = await stallAfter(`${pair.b.url}/${narUrl}`, 1024 * 1024)
    const status = await (await fetch(`${pair.b.url}/status`)).json() as { transfers: Array<{ hashPart: string, received: number, narSize: number }> }
    assert.equal(status.transfers.length, 1)
    assert.equal(status.transfers[0].hashPart, hashPart)
    assert.ok(status.transfers[0].received > 0 && status.transfers[0].received < status.transfers[0].narSize)

    const profile = join(pair.nix.dir, 'chromium-profile')
    await mkdir(profile)
    browser = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      viewport: { width: 1100, height: 400 },
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync']
    })
    const page = browser.pages()[0] ?? await browser.newPage()
    const errors: string[] = []
    page.on('pageerror', err => { errors.push(err.message) })
    page.on('console', msg => { if (msg.type() === 'error') errors.push(msg.text()) })
    await page.goto(`${pair.b.url}/`)
    await page.waitForSelector(`#peers tr[data-peer="${pair.a.peerId}"]`, { timeout: 30_000 })

    const row = await page.locator(`#peers tr[data-peer="${pair.a.peerId}"]`).innerText()
    assert.match(row, /peerix\/\d+\.\d+\.\d+/)
    assert.ok(row.includes(pair.a.peerId.slice(-8)), row)
    // Nothing but the page's polling happens now: its counts are the daemon's.
    const { counters } = await (await fetch(`${pair.b.url}/status`)).json() as { counters: { narInfoHits: number, narInfoMisses: number } }
    assert.ok(counters.narInfoHits > pair.closure.length)
    assert.equal(await page.locator('#hits').innerText(), `${counters.narInfoHits} hits, ${counters.narInfoMisses} misses`)
    assert.equal(await page.locator('#hit-rate').innerText(), `${Math.round(100 * counters.narInfoHits / (counters.narInfoHits + counters.narInfoMisses))} %`)
    assert.match(await page.locator('#bytes-in').innerText(), /^[\d.]+ (KiB|MiB)$/)
    assert.match(await page.locator('#nars-in').innerText(), new RegExp(`^${pair.closure.length} NARs fetched$`))
    assert.equal(await page.locator('#peer-count').innerText(), '1')
    const transfer = await page.locator('#transfers tr').innerText()
    assert.ok(transfer.includes(hashPart), transfer)
    assert.match(transfer, /MiB \/ 24\.0 MiB/)
    const style = await page.locator('#transfers .bar div').getAttribute('style') ?? ''
    const width = Number(/width: ([\d.]+)%/.exec(style)?.[1])
    assert.ok(width > 0 && width < 100, `progress bar style ${style}`)
    assert.deepEqual(errors, [])

    const shot = join(pair.nix.dir, 'dashboard.png')
    await page.screenshot({ path: shot, fullPage: true })
    assert.ok((await stat(shot)).size > 10_000)
    const keep = process.env.PEERIX_SCREENSHOT_TO
    if (keep !== undefined && keep !== '') await copyFile(shot, keep)
  })
})
