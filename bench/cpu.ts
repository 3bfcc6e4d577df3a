/**
 * CPU time of the processes a benchmark compares: on a 2-core machine the figures follow from
 * it, so the tables show it next to the seconds.
 */
import { readFile } from 'node:fs/promises'

/** Linux's USER_HZ, the unit of utime and stime in /proc/<pid>/stat. */
const CLOCK_TICKS = 100

/** User + system seconds a running process has used so far. */
export async function processCpuSeconds (pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8')
  // fields after the command name (which may hold spaces) start at the 3rd field
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS
}

/**
 * A bash script that runs "$@" and then prints `times`, keeping the command's exit status: the
 * last line of its output is the user and system time of the command (bash's children).
 */
export const TIMED_COMMAND = '"$@"; status=$?; times; exit $status'

/** The children's user + system seconds from the last line `times` printed. */
export function childrenCpuSeconds (stdout: string): number {
  const last = stdout.trim().split('\n').at(-1) ?? ''
  return [...last.matchAll(/(\d+)m([\d.]+)s/g)].reduce((sum, m) => sum + Number(m[1]) * 60 + Number(m[2]), 0)
}
