/**
 * The V8 flags the daemon runs with: a young generation (semi-space) of 1 MiB instead of
 * V8's default 16 MiB. While a NAR streams, every piece is a short-lived Buffer whose memory
 * is only returned when a scavenge finds it dead; with the default young generation they pile
 * up between scavenges. Measured with `.tmp`-free `npx tsx bench/profile-nar.ts`-style runs of
 * the NAR benchmark (README "Benchmarks"): peak RSS of the shim's daemon 139–159 MB by
 * default, 102–105 MB with this flag, at the same throughput.
 *
 * V8 reads the flag only when the process starts, so it is given on the command line in
 * every place that starts a daemon: the `peerix` shebang (src/cli.ts), the NixOS unit's
 * NODE_OPTIONS (nixos/module.nix), the benchmarks' and the tests' daemons. A test keeps them
 * equal.
 */
export const DAEMON_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=1']
