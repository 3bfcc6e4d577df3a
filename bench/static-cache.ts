/**
 * The baseline binary cache: a `file://` cache directory (written by `nix copy`, no
 * compression) served by `python3 -m http.server`, the simplest HTTP cache there is.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import type { NixEnv } from '../test/helpers/nix.js'

export class StaticCache {
  private constructor (readonly url: string, private readonly child: ChildProcess) {}

  /** The server's process, for its CPU time. */
  get pid (): number {
    return this.child.pid ?? -1
  }

  /** Copies `paths` (and their closures) from `storeRoot` into `dir` as a file:// cache. */
  static async fill (nix: NixEnv, storeRoot: string, dir: string, paths: string[]): Promise<void> {
    await nix.run('nix', ['copy', '--from', storeRoot, '--to', `file://${dir}?compression=none`, ...paths])
  }

  static async serve (dir: string): Promise<StaticCache> {
    const child = spawn('python3', ['-u', '-m', 'http.server', '0', '--bind', '127.0.0.1', '--directory', dir], { stdio: ['ignore', 'pipe', 'ignore'] })
    const port = await new Promise<string>((resolve, reject) => {
      let out = ''
      child.stdout?.on('data', (data: Buffer) => {
        out += data.toString()
        const m = /port (\d+)/.exec(out)
        if (m != null) resolve(m[1])
      })
      child.once('exit', (code) => { reject(new Error(`python3 -m http.server exited (${code}): ${out}`)) })
    })
    child.stdout?.resume()
    return new StaticCache(`http://127.0.0.1:${port}`, child)
  }

  async stop (): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return
    const exited = new Promise<void>((resolve) => this.child.once('exit', () => { resolve() }))
    this.child.kill('SIGTERM')
    await exited
  }
}
