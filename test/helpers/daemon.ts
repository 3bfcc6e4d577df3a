/**
 * Runs the real `peerix daemon` (the built dist/cli.js) as a child process, in a lab host's
 * namespace or on this host, and reads what it logs: its peer ID and substituter URL.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { DAEMON_NODE_FLAGS } from '../../src/daemon/node-flags.js'
import type { Lab, LabHost } from './netns.js'

export const CLI = fileURLToPath(new URL('../../dist/cli.js', import.meta.url))

export class DaemonProcess {
  readonly lines: string[] = []
  peerId = ''
  url = ''
  private readonly waiters = new Set<() => void>()

  constructor (readonly child: ChildProcess) {
    let buf = ''
    const onData = (data: Buffer): void => {
      buf += data.toString()
      let nl: number
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl)
        buf = buf.slice(nl + 1)
        this.lines.push(line)
        if (process.env.PEERIX_TEST_LOG != null) process.stderr.write(`[daemon ${child.pid}] ${line}\n`)
        const id = /peer id (\S+?);/.exec(line)
        if (id != null) this.peerId = id[1]
        const url = /substituter on (http:\/\/\S+)/.exec(line)
        if (url != null) this.url = url[1]
        for (const w of this.waiters) w()
      }
    }
    child.stdout?.on('data', onData)
    child.stderr?.on('data', onData)
    child.once('exit', () => { for (const w of this.waiters) w() })
  }

  get exited (): boolean { return this.child.exitCode !== null || this.child.signalCode !== null }

  /**
   * Resolves with the `count`th log line matching `re` (old or new); rejects on exit or
   * timeout.
   */
  async waitFor (re: RegExp, timeoutMs = 20_000, count = 1): Promise<string> {
    return await new Promise((resolve, reject) => {
      const check = (): void => {
        const hits = this.lines.filter(l => re.test(l))
        if (hits.length >= count) { done(); resolve(hits[count - 1]); return }
        if (this.exited) { done(); reject(new Error(`daemon exited (${this.child.exitCode ?? this.child.signalCode}) before logging ${re}:\n${this.lines.join('\n')}`)) }
      }
      const timer = setTimeout(() => { done(); reject(new Error(`daemon did not log ${re} within ${timeoutMs} ms:\n${this.lines.join('\n')}`)) }, timeoutMs)
      const done = (): void => { clearTimeout(timer); this.waiters.delete(check) }
      this.waiters.add(check)
      check()
    })
  }

  /** SIGTERM, then SIGKILL if it has not exited within `graceMs`. */
  async stop (graceMs = 5000): Promise<number | null> {
    if (this.exited) return this.child.exitCode
    const exited = new Promise<void>((resolve) => this.child.once('exit', () => { resolve() }))
    this.child.kill('SIGCONT')
    this.child.kill('SIGTERM')
    const timer = setTimeout(() => { this.child.kill('SIGKILL') }, graceMs)
    await exited
    clearTimeout(timer)
    return this.child.exitCode
  }
}

/**
 * Starts `peerix daemon ARGS` (in `host`'s namespace when given) and waits until its
 * substituter listens.
 */
export async function startDaemon (args: string[], opts: { lab?: Lab, host?: LabHost, env?: NodeJS.ProcessEnv } = {}): Promise<DaemonProcess> {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build\` first (scripts/test.sh does)`)
  const argv = [...DAEMON_NODE_FLAGS, CLI, 'daemon', ...args]
  const env = { ...process.env, ...opts.env }
  const child = opts.lab != null && opts.host != null
    ? opts.lab.spawn(opts.host, process.execPath, argv, { env })
    : spawn(process.execPath, argv, { env, stdio: ['ignore', 'pipe', 'pipe'] })
  const daemon = new DaemonProcess(child)
  try {
    await daemon.waitFor(/substituter on http/)
  } catch (err) {
    await daemon.stop()
    throw err
  }
  return daemon
}

/**
 * Daemons started on lab hosts, each with a state directory under the test's NixEnv (a fresh
 * one, or a named one that keeps its identity across restarts); `stopAll()` (in afterEach or
 * after) stops every one still running, frozen ones too.
 */
export class LabDaemons {
  readonly running: DaemonProcess[] = []
  private started = 0

  /**
   * `peerix daemon --state-dir <dir> ARGS` in `host`'s namespace, with the NixEnv's config. The
   * dir is fresh, or named by `name`: the same name gives the same peer ID and signing key.
   */
  async start (lab: Lab, host: LabHost, nix: { dir: string, env: NodeJS.ProcessEnv }, args: string[], name?: string): Promise<DaemonProcess> {
    const state = join(nix.dir, name === undefined ? `state-${host.ns}-${this.started++}` : `state-${name}`)
    await mkdir(state, { recursive: true })
    const daemon = await startDaemon(['--state-dir', state, ...args], { lab, host, env: nix.env })
    this.running.push(daemon)
    return daemon
  }

  async stopAll (): Promise<void> {
    await Promise.all(this.running.splice(0).map(async d => await d.stop()))
  }
}
