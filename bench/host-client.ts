/**
 * The benchmark's side of a host process (bench/host.ts): spawns it, starts daemons in it,
 * asks it for transfers, reads its memory figures from /proc, and kills it on stop.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { readFile, writeFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { DAEMON_NODE_FLAGS } from '../src/daemon/node-flags.js'
import { processCpuSeconds } from './cpu.js'
import type { HostReply, HostRequest, StartedDaemon, Transfer } from './host-protocol.js'
import type { Latencies } from './narinfo-requests.js'

const HOST = fileURLToPath(new URL('./host.ts', import.meta.url))
const LOG_TAIL = 40

type Request = HostRequest extends infer R ? R extends HostRequest ? Omit<R, 'id'> : never : never

export class BenchHost {
  private nextId = 1
  private readonly pending = new Map<number, { resolve: (v: unknown) => void, reject: (e: Error) => void }>()
  /** The last lines the daemons logged, for error messages. */
  readonly log: string[] = []

  private constructor (readonly name: string, private readonly child: ChildProcess) {
    child.on('message', (r: HostReply) => {
      const p = this.pending.get(r.id)
      if (p === undefined) return
      this.pending.delete(r.id)
      if (r.ok) p.resolve(r.value)
      else p.reject(new Error(`host ${name}: ${r.error}\n${this.log.join('\n')}`))
    })
    const keep = (data: Buffer): void => {
      this.log.push(...data.toString().split('\n').filter(l => l !== ''))
      this.log.splice(0, Math.max(0, this.log.length - LOG_TAIL))
      if (process.env.PEERIX_BENCH_LOG != null) process.stderr.write(data.toString().replace(/^(?=.)/gm, `[${name}] `))
    }
    child.stdout?.on('data', keep)
    child.stderr?.on('data', keep)
    child.once('exit', (code, signal) => {
      for (const p of this.pending.values()) p.reject(new Error(`host ${name} exited (${code ?? signal}):\n${this.log.join('\n')}`))
      this.pending.clear()
    })
  }

  get pid (): number { return this.child.pid ?? -1 }

  /**
   * A new host process: the compiled host named by $PEERIX_BENCH_HOST_JS (bench/run.ts sets
   * it, see compile-host.ts), else bench/host.ts under tsx. Node runs it with the daemon's own
   * V8 flags and then `nodeArgs`, by default $PEERIX_BENCH_NODE_ARGS (e.g. `--cpu-prof
   * --cpu-prof-dir=/tmp/prof` profiles every daemon).
   */
  static async spawn (name: string, env: NodeJS.ProcessEnv = process.env, nodeArgs = (process.env.PEERIX_BENCH_NODE_ARGS ?? '').split(' ').filter(a => a !== '')): Promise<BenchHost> {
    const compiled = process.env.PEERIX_BENCH_HOST_JS
    const entry = compiled !== undefined && compiled !== '' ? [compiled] : ['--import', 'tsx', HOST]
    const child = spawn(process.execPath, [...DAEMON_NODE_FLAGS, ...nodeArgs, ...entry], { env, stdio: ['ignore', 'pipe', 'pipe', 'ipc'] })
    const host = new BenchHost(name, child)
    // the host says it is ready with reply id 0
    await new Promise<void>((resolve, reject) => { host.pending.set(0, { resolve: () => { resolve() }, reject }) })
    return host
  }

  private async call<T> (req: Request): Promise<T> {
    const id = this.nextId++
    return await new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject })
      this.child.send({ ...req, id })
    })
  }

  async startDaemon (args: string[]): Promise<StartedDaemon> { return await this.call({ op: 'start', args }) }
  async peerCount (daemon: number): Promise<number> { return await this.call({ op: 'peers', daemon }) }
  async stopDaemon (daemon: number): Promise<void> { await this.call({ op: 'stop-daemon', daemon }) }
  async pullBytes (daemon: number, peer: string, bytes: number, sendChunk: number): Promise<Transfer> { return await this.call({ op: 'pull-bytes', daemon, peer, bytes, sendChunk }) }
  async pullNarChunks (daemon: number, peer: string, file: string, writerChunk: number, sendChunk: number): Promise<Transfer> { return await this.call({ op: 'pull-nar-chunks', daemon, peer, file, writerChunk, sendChunk }) }
  async pullNar (daemon: number, peer: string, hashPart: string, narHash: string): Promise<Transfer> { return await this.call({ op: 'pull-nar', daemon, peer, hashPart, narHash }) }
  async tcpListen (): Promise<number> { return await this.call({ op: 'tcp-listen' }) }
  async pullTcp (port: number, bytes: number): Promise<Transfer> { return await this.call({ op: 'pull-tcp', port, bytes }) }
  async narinfoLatencies (baseUrl: string, hashes: string[], rounds = 1, missesOnly = false, missUrl?: string): Promise<Latencies> { return await this.call({ op: 'narinfo-latencies', baseUrl, hashes, rounds, missesOnly, missUrl }) }
  async bareRelay (daemon: number, peer: string): Promise<string> { return await this.call({ op: 'bare-relay', daemon, peer }) }
  async fileRelay (daemon: number, peer: string, dir: string, pullAll = false): Promise<string> { return await this.call({ op: 'file-relay', daemon, peer, dir, pullAll }) }
  async absentHttp (): Promise<string> { return await this.call({ op: 'absent-http' }) }

  /** Waits until daemon #daemon is connected to at least `count` peers. */
  async waitForPeers (daemon: number, count: number, timeoutMs = 60_000): Promise<void> {
    const until = Date.now() + timeoutMs
    while (await this.peerCount(daemon) < count) {
      if (Date.now() > until) throw new Error(`host ${this.name}: daemon #${daemon} has ${await this.peerCount(daemon)} of ${count} peers after ${timeoutMs} ms\n${this.log.join('\n')}`)
      await new Promise(resolve => setTimeout(resolve, 100))
    }
  }

  /** Resident and peak resident memory in MB (VmRSS, VmHWM). */
  async memory (): Promise<{ rssMB: number, peakMB: number }> {
    const status = await readFile(`/proc/${this.pid}/status`, 'utf8')
    const kB = (field: string): number => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN)
    return { rssMB: kB('VmRSS') / 1024, peakMB: kB('VmHWM') / 1024 }
  }

  /** CPU time the host process has used so far (user + system), in seconds. */
  async cpuSeconds (): Promise<number> {
    return await processCpuSeconds(this.pid)
  }

  /** Resets VmHWM to the current RSS (Linux: `5` into clear_refs), so a peak covers one phase. */
  async resetPeak (): Promise<void> {
    await writeFile(`/proc/${this.pid}/clear_refs`, '5')
  }

  /** Disconnecting makes the host stop its daemons and exit; SIGKILL if it lingers. */
  async stop (graceMs = 10_000): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return
    const exited = new Promise<void>((resolve) => this.child.once('exit', () => { resolve() }))
    if (this.child.connected) this.child.disconnect()
    else this.child.kill('SIGTERM')
    const timer = setTimeout(() => { this.child.kill('SIGKILL') }, graceMs)
    await exited
    clearTimeout(timer)
  }
}
