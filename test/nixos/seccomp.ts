/**
 * The unit's seccomp settings (SystemCallFilter=, SystemCallErrorNumber=,
 * RestrictAddressFamilies=) turned into a program that runs a command under them, the way
 * systemd would: syscall groups expanded by this machine's own `systemd-analyze`, compiled
 * into test/nixos/seccomp-exec.c with gcc. Machines without systemd as PID 1 cannot run the
 * unit itself, but they can run the daemon under the same filter.
 */
import { execFile } from 'node:child_process'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'

const run = promisify(execFile)
const SOURCE = fileURLToPath(new URL('./seccomp-exec.c', import.meta.url))

/** Group name → its direct members (calls and nested @groups), from `systemd-analyze syscall-filter`. */
export function parseSyscallGroups (listing: string): Map<string, string[]> {
  const groups = new Map<string, string[]>()
  let current: string[] | undefined
  for (const line of listing.split('\n')) {
    if (/^@\S+$/.test(line)) {
      current = []
      groups.set(line, current)
    } else if (/^\s+[^\s#]/.test(line) && current !== undefined) {
      current.push(line.trim())
    } else if (!/^\s/.test(line)) {
      current = undefined
    }
  }
  return groups
}

function expand (item: string, groups: Map<string, string[]>, seen = new Set<string>()): string[] {
  if (!item.startsWith('@')) return [item]
  const members = groups.get(item)
  if (members === undefined) throw new Error(`SystemCallFilter: systemd knows no syscall group ${item}`)
  if (seen.has(item)) return []
  seen.add(item)
  return members.flatMap(m => expand(m, groups, seen))
}

/**
 * The calls a SystemCallFilter= list allows: its first entry is an allow list and each later
 * `~` entry removes calls from it (a unit that only denies is not what this test needs).
 */
export function allowedSyscalls (filter: string[], groups: Map<string, string[]>): string[] {
  const words = (entry: string): string[] => entry.replace(/^~/, '').split(/\s+/).filter(w => w !== '')
  const [first, ...rest] = filter
  if (first === undefined || first.startsWith('~')) throw new Error(`SystemCallFilter=${filter.join(' ')}: expected an allow list first`)
  const allowed = new Set(words(first).flatMap(w => expand(w, groups)))
  for (const entry of rest) {
    const names = words(entry).flatMap(w => expand(w, groups))
    if (entry.startsWith('~')) for (const n of names) allowed.delete(n)
    else for (const n of names) allowed.add(n)
  }
  return [...allowed].sort()
}

export interface SeccompSettings {
  SystemCallFilter: string[]
  SystemCallErrorNumber: string
  RestrictAddressFamilies: string[]
}

/** Compiles `seccomp-exec` for these settings into `dir`; returns its path and the calls it allows. */
export async function buildSeccompExec (dir: string, settings: SeccompSettings): Promise<{ program: string, allowed: string[] }> {
  const { stdout } = await run('systemd-analyze', ['syscall-filter'], { maxBuffer: 16 * 1024 * 1024 })
  const allowed = allowedSyscalls(settings.SystemCallFilter, parseSyscallGroups(stdout))
  // Names of other architectures (e.g. arm_fadvise64) simply have no __NR_ constant here.
  const header = allowed.map(name => `#ifdef __NR_${name}\n__NR_${name},\n#endif\n`).join('')
  await writeFile(join(dir, 'allowed-syscalls.h'), header)
  for (const family of settings.RestrictAddressFamilies) {
    if (!/^AF_[A-Z0-9]+$/.test(family)) throw new Error(`RestrictAddressFamilies: ${family} is not an AF_* name`)
  }
  if (!/^E[A-Z0-9]+$/.test(settings.SystemCallErrorNumber)) throw new Error(`SystemCallErrorNumber=${settings.SystemCallErrorNumber} is not an errno name`)
  const program = join(dir, 'seccomp-exec')
  await run('gcc', ['-O1', '-Wall', '-Werror', '-I', dir,
    `-DDENY_ERRNO=${settings.SystemCallErrorNumber}`,
    `-DALLOWED_FAMILIES=${settings.RestrictAddressFamilies.join(',')}`,
    '-o', program, SOURCE])
  return { program, allowed }
}
