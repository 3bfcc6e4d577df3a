import { setFlagsFromString } from 'node:v8'

/**
 * The V8 flags the daemon runs with: a young generation (semi-space) of 1 MiB instead of
 * V8's default 16 MiB. While a NAR streams, every piece is a short-lived Buffer whose memory
 * is only returned when a scavenge finds it dead; with the default young generation they pile
 * up between scavenges. `npx tsx bench/nar-memory.ts 512 3` (three 512 MiB NARs through the
 * shim): peak RSS of the two daemons 136–146 MB with V8's default, 108–119 MB with this flag,
 * at the same throughput; idle 97–98 MB and 83 MB.
 *
 * V8 reads the flag only when the process starts, so it is given on the command line in
 * every place that starts a daemon: the `peerix` shebang (src/cli.ts), the NixOS unit's
 * NODE_OPTIONS (nixos/module.nix), the benchmarks' and the tests' daemons. A test keeps them
 * equal.
 */
export const DAEMON_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=1']

/**
 * V8 flags the daemon sets on itself as it starts: NODE_OPTIONS refuses them, and V8 takes
 * them at run time. `--no-concurrent-array-buffer-sweeping`: after every scavenge V8 hands the
 * sweep of dead ArrayBuffers (each Buffer of a NAR's bytes is one) to its helper threads, and
 * with the 1 MiB young generation that is a hand-off every few hundred KiB streamed. On this
 * 2-core machine the hand-offs cost more than the sweeps: in a `nix copy` of 125 paths
 * (275 MiB) through the shim, A's daemon used 3.0–3.9 CPU seconds, a third of them in V8's
 * helper threads, and 2.2–2.4 with this flag; the copy took 5.1–5.7 s and 3.5–4.2 s (two
 * copies each, a temporary switch in the same checkout; `npm run bench -- --only closure`
 * shows the daemons' CPU per copy).
 *
 * `--heap-growing-percent=100`: after a full GC V8 lets the old generation grow to twice what
 * survived before starting the next one; its own choice for this small heap left ~2 MB of room
 * (`--trace-incremental-marking`: 11 MB live, limit 13 MB). A serving daemon promotes some of
 * every NAR it sends, so it ran a full GC every ~10 NARs: in a `nix copy` of the 301-path
 * closure of `npm run bench` through the shim, A's daemon did 19–35 full GCs costing 273–569 ms
 * per copy (nine copies), and 0–3 costing 0–44 ms with this flag (four copies; `--trace-gc`,
 * a temporary switch). Peak RSS while 512 MiB NARs streamed through the shim stayed the same
 * (`npx tsx bench/nar-memory.ts 512 3`, twice each way: A 101–106 against 100–103 MB, B 96–109
 * against 96–103). At 50 the full GCs stayed (20 and 29 in two copies).
 */
export const DAEMON_RUNTIME_V8_FLAGS: readonly string[] = ['--no-concurrent-array-buffer-sweeping', '--heap-growing-percent=100']

/** Sets DAEMON_RUNTIME_V8_FLAGS in this process. */
export function applyRuntimeV8Flags (): void {
  for (const flag of DAEMON_RUNTIME_V8_FLAGS) setFlagsFromString(flag)
}
