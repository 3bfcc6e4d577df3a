/**
 * Two real daemons on loopback (no namespaces needed): A serves a sample closure signed by
 * its key, B trusts that key and has A as a static peer (`--no-mdns --peer`), and the real Nix
 * client has already fetched the closure through B. What the introspection tests look at.
 */
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { NixEnv, sampleClosureExpr } from './nix.js'
import { startDaemon, type DaemonProcess } from './daemon.js'

export interface FetchedPair {
  nix: NixEnv
  /** Serves the closure. */
  a: DaemonProcess
  /** Fetched the closure from A for Nix. */
  b: DaemonProcess
  /** A's p2p multiaddr (loopback). */
  aAddr: string
  top: string
  closure: string[]
  /** A's signing key name. */
  keyName: string
  /** Stops both daemons and removes every file; safe to call twice. */
  cleanup: () => Promise<void>
}

export async function startFetchedPair (tag: string): Promise<FetchedPair> {
  const nix = await NixEnv.create(`peerix-${tag}-`)
  const daemons: DaemonProcess[] = []
  const cleanup = async (): Promise<void> => {
    await Promise.all(daemons.splice(0).map(async d => await d.stop()))
    await nix.cleanup()
  }
  try {
    const rootA = nix.storeRoot('hostA')
    const [top] = await nix.build(rootA, sampleClosureExpr(tag))
    const closure = await nix.closure(rootA, top)
    const { name: keyName, secretFile: skA, publicKey: pkA } = await nix.generateKey(`${tag}-a-1`)

    const common = async (name: string): Promise<string[]> => {
      const state = join(nix.dir, `state-${name}`)
      await mkdir(state, { recursive: true })
      return ['--state-dir', state, '--listen', '127.0.0.1:0', '--p2p-listen', '/ip4/127.0.0.1/tcp/0', '--no-mdns', '--timeout', '3000']
    }
    const a = await startDaemon([...await common('a'), '--store-root', rootA, '--signing-key-file', skA, '--serve', 'all'], { env: nix.env })
    daemons.push(a)
    const p2p = await a.waitFor(/p2p on /)
    const aAddr = /p2p on (\S+)/.exec(p2p)?.[1] ?? ''
    const b = await startDaemon([...await common('b'), '--store-root', await nix.initStore('hostB'), '--trusted-public-keys', pkA, '--peer', aAddr], { env: nix.env })
    daemons.push(b)
    await b.waitFor(/peer found/, 30_000)
    await a.waitFor(/peer found/, 30_000)
    await nix.run('nix', ['copy', '--from', b.url, '--to', nix.storeRoot('client'), top, '--option', 'trusted-public-keys', pkA])
    return { nix, a, b, aAddr, top, closure, keyName, cleanup }
  } catch (err) {
    await cleanup()
    throw err
  }
}
