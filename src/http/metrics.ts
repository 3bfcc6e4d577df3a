/**
 * GET /metrics: Prometheus text from one prom-client Registry per daemon (libp2p's own
 * metrics land in the same registry), so several daemons in one process never share a series.
 * Request counts and narinfo latency are observed here, by the shim; the totals the daemon
 * keeps (bytes, peers, verification failures) are read from a snapshot at scrape time.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { Counter, Gauge, Histogram, type Registry } from 'prom-client'
import { sendText } from './respond.js'

/** Totals kept elsewhere, read at each scrape. */
export interface MetricsSnapshot {
  narBytesIn: number
  narBytesOut: number
  peersConnected: number
  verificationFailures: number
  narInfoHits: number
  narInfoMisses: number
  narInfoRefusals: number
  refusalsReceived: number
  refusalsGiven: number
}

/** From a cache hit on the LAN (a few ms) to the wait budget running out (a second or more). */
const NARINFO_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5]

export class ShimMetrics {
  private readonly requests: Counter<'route' | 'status'>
  private readonly narInfoSeconds: Histogram<'status'>

  constructor (readonly registry: Registry, snapshot: () => MetricsSnapshot) {
    const registers = [registry]
    this.requests = new Counter({ name: 'peerix_http_requests_total', help: 'HTTP requests to the substituter by route and status code', labelNames: ['route', 'status'], registers })
    this.narInfoSeconds = new Histogram({ name: 'peerix_narinfo_duration_seconds', help: 'Time to answer a narinfo request (asking peers included)', labelNames: ['status'], buckets: NARINFO_BUCKETS, registers })
    const counted = countersFromSnapshot(registers)
    counted('peerix_nar_bytes_total', 'NAR bytes by direction: in = fetched from peers, out = served to peers', 'direction',
      () => { const c = snapshot(); return { in: c.narBytesIn, out: c.narBytesOut } })
    counted('peerix_narinfo_lookups_total', 'narinfo lookups by result: hit = a peer had it (verified), miss = none had it, refused = a peer had it but no public cache signed it, and another host asked', 'result',
      () => { const c = snapshot(); return { hit: c.narInfoHits, miss: c.narInfoMisses, refused: c.narInfoRefusals } })
    // Counts what SubstituterCounters.verificationFailures counts: a wrong inline NAR too.
    counted('peerix_verification_failures_total', 'Peer answers dropped: a narinfo malformed, for another path or not signed by a trusted key, or a NAR sent with its narinfo that does not match it', undefined,
      () => ({ '': snapshot().verificationFailures }))
    counted('peerix_refusals_total', 'Refusals by direction: received = a peer would not give us a path, given = we would not give a peer one (serving policy)', 'direction',
      () => { const c = snapshot(); return { received: c.refusalsReceived, given: c.refusalsGiven } })
    new Gauge({
      name: 'peerix_peers_connected',
      help: 'Connected peers that speak peerix',
      registers,
      collect () { this.set(snapshot().peersConnected) }
    })
  }

  /** Counts one request by route and status: a status code, or `cut` when it did not finish. */
  request (route: string, status: string): void {
    this.requests.inc({ route, status })
  }

  /** Starts timing a narinfo request; call the result with its status when answered. */
  narInfoTimer (): (status: string) => void {
    const end = this.narInfoSeconds.startTimer()
    return (status) => { end({ status }) }
  }
}

/**
 * Defines counters whose values are read from the daemon's own counters at scrape time: one
 * series per key of what `read` returns, under `label` (no label: the key '').
 */
function countersFromSnapshot (registers: Registry[]): (name: string, help: string, label: string | undefined, read: () => Record<string, number>) => void {
  return (name, help, label, read) => {
    new Counter({
      name,
      help,
      labelNames: label === undefined ? [] : [label],
      registers,
      collect () {
        this.reset()
        for (const [value, n] of Object.entries(read())) {
          if (label === undefined) this.inc(n)
          else this.inc({ [label]: value }, n)
        }
      }
    })
  }
}

export async function serveMetrics (req: IncomingMessage, res: ServerResponse, metrics: ShimMetrics): Promise<void> {
  const text = await metrics.registry.metrics()
  sendText(req, res, 200, text, {}, metrics.registry.contentType)
}
