/**
 * The operator's endpoints on the shim: the dashboard (GET /), GET /status (the daemon's
 * state as JSON), GET /which/<hash> (every peer's answer for one path) and GET /metrics. The
 * shim only maps them to the daemon's functions; what goes into them is the daemon's business.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { serveDashboard } from './dashboard.js'
import { serveMetrics, type ShimMetrics } from './metrics.js'
import { sendText } from './respond.js'

/** What the daemon gives the shim for /status, /which and /metrics. */
export interface Introspection {
  status: () => Promise<unknown>
  which: (hashPart: string, signal: AbortSignal) => Promise<unknown>
  metrics: ShimMetrics
}

export type IntrospectionRoute =
  | { endpoint: 'dashboard' }
  | { endpoint: 'status' }
  | { endpoint: 'metrics' }
  | { endpoint: 'which', hashPart: string }

export async function serveIntrospection (req: IncomingMessage, res: ServerResponse, introspection: Introspection, target: IntrospectionRoute, signal: AbortSignal): Promise<void> {
  switch (target.endpoint) {
    case 'dashboard':
      serveDashboard(req, res)
      return
    case 'status':
      sendJson(req, res, await introspection.status())
      return
    case 'metrics':
      await serveMetrics(req, res, introspection.metrics)
      return
    case 'which': {
      const answers = await introspection.which(target.hashPart, signal)
      if (!signal.aborted) sendJson(req, res, answers)
    }
  }
}

function sendJson (req: IncomingMessage, res: ServerResponse, value: unknown): void {
  // Never cached: it is a snapshot of counters that change every second.
  sendText(req, res, 200, JSON.stringify(value, null, 2) + '\n', { 'Cache-Control': 'no-store' }, 'application/json')
}
