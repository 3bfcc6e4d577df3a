/** The messages between the benchmark and its host processes (bench/host.ts). */

export type HostRequest = { id: number } & (
  /** Starts a daemon with these `peerix daemon` flags. */
  | { op: 'start', args: string[] }
  /** How many peers daemon #daemon is connected to. */
  | { op: 'peers', daemon: number }
  | { op: 'stop-daemon', daemon: number }
  /** `bytes` from memory over a bench protocol stream, written `sendChunk` at a time. */
  | { op: 'pull-bytes', daemon: number, peer: string, bytes: number, sendChunk: number }
  /** The NAR of `file` (a path on the peer's machine) with these chunk sizes. */
  | { op: 'pull-nar-chunks', daemon: number, peer: string, file: string, writerChunk: number, sendChunk: number }
  /** A NAR over /peerix/nar/1 itself, unverified. */
  | { op: 'pull-nar', daemon: number, peer: string, hashPart: string, narHash: string }
  /** Listens on loopback TCP for `pull-tcp`; the value is the port. */
  | { op: 'tcp-listen' }
  | { op: 'pull-tcp', port: number, bytes: number }
  /** Times a narinfo hit (each of `hashes`) and a miss in turn, `rounds` times over, at `baseUrl`. */
  | { op: 'narinfo-latencies', baseUrl: string, hashes: string[], rounds: number, missesOnly: boolean, missUrl?: string }
  /** Listens on loopback HTTP, relaying the bare stream from `peer` (bench/bare-relay.ts); the value is the base URL. */
  | { op: 'bare-relay', daemon: number, peer: string }
  /** Listens on loopback HTTP over the cache directory `dir`, NARs (with `pullAll` every file) pulled from `peer` (bench/file-relay.ts); the value is the base URL. */
  | { op: 'file-relay', daemon: number, peer: string, dir: string, pullAll: boolean }
  /** Listens on loopback HTTP, answering 404 to everything; the value is the base URL. */
  | { op: 'absent-http' }
)

export type HostReply = { id: number } & ({ ok: true, value: unknown } | { ok: false, error: string })

export interface StartedDaemon {
  index: number
  peerId: string
  url: string
  addrs: string[]
}

export interface Transfer {
  bytes: number
  seconds: number
}
