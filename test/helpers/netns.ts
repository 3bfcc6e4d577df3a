/**
 * A small lab of hosts in network namespaces, joined by a bridge in a namespace of its own, so
 * multi-host tests use real links (and mDNS multicast) without touching the machine's network.
 * Every namespace is named after this process; `cleanup()` deletes them and kills what runs in
 * them, and stale labs of dead test processes are removed on the next `create`.
 */
import { execFile, spawn, type ChildProcess, type SpawnOptions } from 'node:child_process'
import { promisify } from 'node:util'

const run = promisify(execFile)
const PREFIX = 'pxt'
let labCounter = 0

async function ip (...args: string[]): Promise<string> {
  const { stdout } = await run('ip', args)
  return stdout
}

function alive (pid: number): boolean {
  try { process.kill(pid, 0); return true } catch { return false }
}

/** Removes namespaces left by test processes that no longer exist. */
async function removeStaleLabs (): Promise<void> {
  const names = (await ip('netns', 'list')).split('\n').map(l => l.split(' ')[0]).filter(n => n.startsWith(PREFIX))
  for (const name of names) {
    const pid = Number(/^pxt(\d+)-/.exec(name)?.[1])
    if (Number.isFinite(pid) && !alive(pid)) await ip('netns', 'del', name).catch(() => {})
  }
}

export interface LabHost { ns: string, ip: string, dev: string }

export interface LabOptions {
  /**
   * Runs for each host (its namespace, its number from 1) before its link to the lab is added:
   * interfaces made there come before `eth0` in the host's interface order, and so in the
   * addresses a daemon listening on every address announces.
   */
  beforeLink?: (ns: string, index: number) => Promise<void>
}

export class Lab {
  readonly hosts: LabHost[] = []
  private readonly namespaces: string[] = []
  private readonly children = new Set<ChildProcess>()

  private constructor (private readonly id: string) {}

  /** `count` hosts 10.77.0.1, .2, … on one bridged segment, each with loopback and a multicast route. */
  static async create (count: number, opts: LabOptions = {}): Promise<Lab> {
    await removeStaleLabs()
    const lab = new Lab(`${PREFIX}${process.pid}-${labCounter++}`)
    try {
      const sw = `${lab.id}sw`
      await lab.addNamespace(sw)
      await ip('-n', sw, 'link', 'add', 'br0', 'type', 'bridge', 'mcast_snooping', '0')
      await ip('-n', sw, 'link', 'set', 'br0', 'up')
      for (let i = 1; i <= count; i++) {
        const ns = `${lab.id}h${i}`
        await lab.addNamespace(ns)
        await opts.beforeLink?.(ns, i)
        const outer = `pv${process.pid % 100000}x${labCounter}x${i}`.slice(0, 15)
        await ip('link', 'add', outer, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns)
        await ip('link', 'set', outer, 'netns', sw)
        await ip('-n', sw, 'link', 'set', outer, 'master', 'br0')
        await ip('-n', sw, 'link', 'set', outer, 'up')
        const addr = `10.77.0.${i}`
        await ip('-n', ns, 'addr', 'add', `${addr}/24`, 'dev', 'eth0')
        await ip('-n', ns, 'link', 'set', 'lo', 'up')
        await ip('-n', ns, 'link', 'set', 'eth0', 'up')
        await ip('-n', ns, 'route', 'add', '224.0.0.0/4', 'dev', 'eth0')
        lab.hosts.push({ ns, ip: addr, dev: 'eth0' })
      }
    } catch (err) {
      await lab.cleanup()
      throw err
    }
    return lab
  }

  private async addNamespace (name: string): Promise<void> {
    await ip('netns', 'add', name)
    this.namespaces.push(name)
  }

  /** Starts a process inside a host's namespace; it is killed by cleanup(). */
  spawn (host: LabHost, cmd: string, args: string[], opts: SpawnOptions = {}): ChildProcess {
    const child = spawn('ip', ['netns', 'exec', host.ns, cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'], ...opts })
    this.children.add(child)
    child.once('exit', () => { this.children.delete(child) })
    return child
  }

  /** Runs a command inside a host's namespace to completion. */
  async exec (host: LabHost, cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv, timeout?: number } = {}): Promise<{ stdout: string, stderr: string }> {
    const { stdout, stderr } = await run('ip', ['netns', 'exec', host.ns, cmd, ...args], { env: opts.env, timeout: opts.timeout ?? 300_000, maxBuffer: 64 * 1024 * 1024 })
    return { stdout: String(stdout), stderr: String(stderr) }
  }

  async cleanup (): Promise<void> {
    for (const child of this.children) {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGCONT')
        child.kill('SIGKILL')
      }
    }
    // Anything else still running in a namespace (a daemon a test started by hand) goes too.
    for (const ns of this.namespaces) {
      const pids = (await ip('netns', 'pids', ns).catch(() => '')).split('\n').filter(p => p !== '')
      for (const pid of pids) { try { process.kill(Number(pid), 'SIGKILL') } catch {} }
    }
    for (const ns of this.namespaces.reverse()) await ip('netns', 'del', ns).catch(() => {})
    this.namespaces.length = 0
  }
}
