/**
 * The peerix unit's systemd sandbox, rebuilt without systemd (no systemd as PID 1 here): a
 * private mount and UTS namespace set up by root the way systemd would for the unit's
 * directives, then the command runs as an unlisted UID with no capabilities, no new
 * privileges, umask 077, a systemd-like environment and the unit's seccomp filter.
 *
 * Every directive the module sets must be listed here, as reproduced (with the value the
 * emulation implements), as not reproducible (with why), or as plumbing that does not confine
 * the daemon: a directive added to the module fails the test until someone says which it is.
 */
import type { ServiceConfig } from './evaluate-module.js'

export const CREDENTIALS_DIRECTORY = '/run/credentials/peerix.service'
/** StateDirectory=peerix with DynamicUser: systemd points STATE_DIRECTORY here. */
export const STATE_DIRECTORY = '/var/lib/peerix'

/** Directive → the value this emulation implements. */
export const REPRODUCED: Record<string, unknown> = {
  DynamicUser: true, // an unlisted UID and GID (systemd's 61184–65519 range), no supplementary groups
  StateDirectory: 'peerix', // STATE_DIRECTORY=/var/lib/peerix; /var/lib is a private directory owned by that UID
  StateDirectoryMode: '0700', // checked on the directory the daemon creates
  UMask: '0077',
  ProtectSystem: 'strict', // every mount read-only except /dev, /proc, the private /tmp and /var/tmp, and the state directory
  ReadOnlyPaths: ['/nix/store', '/nix/var/nix/db'], // /nix (a chroot store's) bound read-only
  ProtectHome: true, // /home and /root empty and inaccessible
  PrivateTmp: true, // fresh tmpfs on /tmp and /var/tmp
  PrivateDevices: true, // a tmpfs /dev with null, zero, full, random, urandom, tty, shm, pts
  ProtectKernelTunables: true, // /proc/sys and /sys read-only
  ProtectControlGroups: true, // /sys/fs/cgroup read-only
  ProtectProc: 'invisible', // a new /proc mounted hidepid=invisible
  ProtectHostname: true, // own UTS namespace; sethostname is outside the syscall filter
  NoNewPrivileges: true,
  CapabilityBoundingSet: '', // bounding and inheritable sets emptied
  RestrictNamespaces: true, // seccomp: unshare/setns EPERM, clone with CLONE_NEW* EPERM, clone3 ENOSYS
  RestrictAddressFamilies: ['AF_INET', 'AF_INET6', 'AF_UNIX', 'AF_NETLINK'], // seccomp on socket()
  SystemCallArchitectures: 'native', // seccomp: other ABIs killed
  SystemCallFilter: ['@system-service', '~@privileged'], // seccomp allow list from this machine's systemd-analyze
  SystemCallErrorNumber: 'EPERM',
  LoadCredential: undefined // any value: each file copied into a 0500 directory as 0400 files owned by the UID
}

/** Directive → why it is not reproduced here. */
export const NOT_REPRODUCED: Record<string, string> = {
  ProtectClock: 'clock-setting calls are @clock, inside ~@privileged, so the filter already denies them; the device part (/dev/rtc) is gone with PrivateDevices',
  ProtectKernelModules: 'module calls are @module, inside ~@privileged; /usr/lib/modules stays visible (read-only)',
  ProtectKernelLogs: 'syslog() is outside @system-service and /dev/kmsg is gone with PrivateDevices; /proc/kmsg stays (root-only 0400)',
  RestrictSUIDSGID: 'needs seccomp argument filters on chmod/fchmodat mode bits; the daemon never creates set-id files, and NoNewPrivileges makes them inert',
  RestrictRealtime: 'needs seccomp argument filters on sched_setscheduler; not a confinement the daemon can trip over',
  LockPersonality: 'needs a seccomp argument filter on personality(); idem'
}

/** Directives that configure the unit but do not confine what the daemon may do. */
export const PLUMBING = new Set(['ExecStart', 'ExecStartPre', 'Environment', 'Restart', 'RestartSec', 'User', 'Group', 'MemoryDenyWriteExecute'])

/** Directives of the unit this file does not know, and ones whose value differs from the emulated one. */
export function unaccounted (serviceConfig: ServiceConfig): string[] {
  const problems: string[] = []
  for (const [key, value] of Object.entries(serviceConfig)) {
    if (PLUMBING.has(key) || key in NOT_REPRODUCED) continue
    if (!(key in REPRODUCED)) problems.push(`${key}=${JSON.stringify(value)} is not known to the emulation`)
    else if (REPRODUCED[key] !== undefined && JSON.stringify(REPRODUCED[key]) !== JSON.stringify(value)) {
      problems.push(`${key}=${JSON.stringify(value)} but the emulation implements ${JSON.stringify(REPRODUCED[key])}`)
    }
  }
  for (const key of Object.keys(REPRODUCED)) {
    if (!(key in serviceConfig) && key !== 'LoadCredential') problems.push(`${key} is emulated but the unit does not set it`)
  }
  return problems
}

export interface Sandbox {
  /** The host directory seen as /nix (a chroot store root's `nix`). */
  nixDir: string
  /** The host directory seen as /var/lib: owned by `uid`, empty, so the daemon creates the state directory. */
  varLib: string
  /** LoadCredential= as name → host file (read by root, as systemd does). */
  credentials: Record<string, string>
  uid: number
  /** test/nixos/seccomp-exec built for the unit's filter. */
  seccompExec: string
  /** The checkout (dist/, node_modules/): seen read-only at REPO_IN_SANDBOX, wherever it is on the host. */
  repo: string
}

/**
 * Where the checkout appears inside the sandbox. The package lives in the (read-only) store on
 * NixOS; here the checkout may be anywhere, even under /tmp, which PrivateTmp hides.
 */
export const REPO_IN_SANDBOX = '/run/peerix-src'

/** Where the seccomp program is copied inside the sandbox (the host's /tmp is hidden there). */
const SECCOMP_EXEC = '/run/seccomp-exec'

const shq = (s: string): string => `'${s.replaceAll("'", "'\\''")}'`

/**
 * `unshare` arguments that run `argv` inside the sandbox with `env` (only: like systemd, nothing
 * of the caller's environment leaks in). Run as root, in the host's network namespace.
 */
export function sandboxArgs (sandbox: Sandbox, argv: string[], env: Record<string, string>): string[] {
  const { uid } = sandbox
  const credentials = Object.entries(sandbox.credentials)
  for (const [name] of credentials) if (!/^[A-Za-z0-9_.-]+$/.test(name)) throw new Error(`LoadCredential: bad credential name ${name}`)
  const script = [
    'set -eu',
    // Sources under the host's /tmp are bound first: PrivateTmp hides /tmp afterwards.
    `mount --rbind ${shq(sandbox.nixDir)} /nix`,
    `mount --bind ${shq(sandbox.varLib)} /var/lib`,
    'mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs /run',
    `mkdir -m 0755 /run/credentials && mkdir -m 0500 ${CREDENTIALS_DIRECTORY}`,
    ...credentials.map(([name, file]) => `cp ${shq(file)} ${CREDENTIALS_DIRECTORY}/${name} && chmod 0400 ${CREDENTIALS_DIRECTORY}/${name}`),
    `chown -R ${uid}:${uid} ${CREDENTIALS_DIRECTORY}`,
    // systemd installs the filter itself; here a program does, so it must stay visible.
    `cp ${shq(sandbox.seccompExec)} ${SECCOMP_EXEC}`,
    `mkdir ${REPO_IN_SANDBOX} && mount --bind ${shq(sandbox.repo)} ${REPO_IN_SANDBOX}`,
    'mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /tmp',
    'mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /var/tmp',
    'for d in /home /root; do [ -d "$d" ] && mount -t tmpfs -o ro,mode=000 tmpfs "$d"; done',
    // PrivateDevices: device nodes made afresh, as systemd does.
    'mount -t tmpfs -o mode=0755,nosuid tmpfs /dev',
    'mknod -m 666 /dev/null c 1 3; mknod -m 666 /dev/zero c 1 5; mknod -m 666 /dev/full c 1 7',
    'mknod -m 666 /dev/random c 1 8; mknod -m 666 /dev/urandom c 1 9; mknod -m 666 /dev/tty c 5 0',
    'mkdir -m 1777 /dev/shm && mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /dev/shm',
    'mkdir /dev/pts && mount -t devpts -o newinstance,ptmxmode=0666,mode=620 devpts /dev/pts',
    'ln -s /proc/self/fd /dev/fd; ln -s /proc/self/fd/0 /dev/stdin; ln -s /proc/self/fd/1 /dev/stdout; ln -s /proc/self/fd/2 /dev/stderr',
    'mount -t proc -o hidepid=invisible,nosuid,nodev,noexec proc /proc',
    'mount --bind /proc/sys /proc/sys',
    // ProtectSystem=strict and the Protect* read-only parts: every writable mount but the exceptions.
    'findmnt -rno TARGET,OPTIONS | while read -r target options; do',
    '  case "$target" in /dev|/dev/*|/proc|/tmp|/var/tmp|/var/lib) continue ;; esac',
    '  case "$options" in ro,*) continue ;; esac',
    // Mounts under ones made here (the host's /run/netns under the new /run) are out of sight.
    '  mountpoint -q "$target" || continue',
    '  mount -o remount,bind,ro "$target"',
    'done',
    'cd /',
    'umask 077',
    `exec setpriv --reuid=${uid} --regid=${uid} --clear-groups --no-new-privs --bounding-set=-all --inh-caps=-all -- ` +
      `env -i ${Object.entries(env).map(([k, v]) => shq(`${k}=${v}`)).join(' ')} ${SECCOMP_EXEC} "$@"`
  ].join('\n')
  return ['--mount', '--uts', '--propagation', 'private', '--', 'sh', '-c', script, 'sandbox', ...argv]
}

/** The environment systemd gives the unit's process (ExecStart=), for a DynamicUser named `user`. */
export function unitEnvironment (serviceConfig: ServiceConfig, user: string): Record<string, string> {
  const env: Record<string, string> = {
    PATH: '/usr/local/bin:/usr/bin:/bin',
    LANG: 'C.UTF-8',
    HOME: '/',
    USER: user,
    LOGNAME: user,
    SHELL: '/usr/sbin/nologin',
    STATE_DIRECTORY: STATE_DIRECTORY
  }
  const credentials = serviceConfig.LoadCredential
  if (Array.isArray(credentials) && credentials.length > 0) env.CREDENTIALS_DIRECTORY = CREDENTIALS_DIRECTORY
  const assignments = serviceConfig.Environment
  for (const assignment of Array.isArray(assignments) ? assignments : []) {
    const eq = assignment.indexOf('=')
    env[assignment.slice(0, eq)] = assignment.slice(eq + 1)
  }
  return env
}
