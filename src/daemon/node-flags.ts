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
