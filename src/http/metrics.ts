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
    new Counter({
      name: 'peerix_nar_bytes_total',
      help: 'NAR bytes by direction: in = fetched from peers, out = served to peers',
      labelNames: ['direction'],
      registers,
      collect () {
        const { narBytesIn, narBytesOut } = snapshot()
        this.reset()
        this.inc({ direction: 'in' }, narBytesIn)
        this.inc({ direction: 'out' }, narBytesOut)
      }
    })
    new Counter({
      name: 'peerix_narinfo_lookups_total',
      help: 'narinfo lookups by result: hit = a peer had it (verified), miss = none had it',
      labelNames: ['result'],
      registers,
      collect () {
        const { narInfoHits, narInfoMisses } = snapshot()
        this.reset()
        this.inc({ result: 'hit' }, narInfoHits)
        this.inc({ result: 'miss' }, narInfoMisses)
      }
    })
    new Counter({
      name: 'peerix_verification_failures_total',
      help: 'Peer narinfos dropped: malformed, for another path, or not signed by a trusted key',
      registers,
      collect () {
        this.reset()
        this.inc(snapshot().verificationFailures)
      }
    })
    new Counter({
      name: 'peerix_refusals_total',
      help: 'Refusals by direction: received = a peer would not give us a path, given = we would not give a peer one (serving policy)',
      labelNames: ['direction'],
      registers,
      collect () {
        const { refusalsReceived, refusalsGiven } = snapshot()
        this.reset()
        this.inc({ direction: 'received' }, refusalsReceived)
        this.inc({ direction: 'given' }, refusalsGiven)
      }
    })
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

export async function serveMetrics (req: IncomingMessage, res: ServerResponse, metrics: ShimMetrics): Promise<void> {
  const text = await metrics.registry.metrics()
  sendText(req, res, 200, text, {}, metrics.registry.contentType)
}
