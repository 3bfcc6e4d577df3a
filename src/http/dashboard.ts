/**
 * GET /: one self-contained page (no build step, no external assets) that polls /status and
 * shows peers, transfers with progress bars, the hit rate and the bytes fetched from the LAN.
 * Everything a peer sends (agent strings, addresses) is inserted as text, never as HTML.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { sendText } from './respond.js'

/** How often the page asks for /status. */
export const DASHBOARD_POLL_MS = 2000

const HEADERS = {
  'Cache-Control': 'no-store',
  // Inline script and style only; the page talks to this origin and nothing else.
  'Content-Security-Policy': "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
}

export function serveDashboard (req: IncomingMessage, res: ServerResponse): void {
  sendText(req, res, 200, DASHBOARD_HTML, HEADERS, 'text/html; charset=utf-8')
}

export const DASHBOARD_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>peerix</title>
<style>
  :root { --fg: #1d232a; --dim: #65707c; --line: #dde2e7; --accent: #2b6cb0; --bad: #c53030; --bg: #f6f8fa; }
  * { box-sizing: border-box; }
  body { margin: 0; font: 14px/1.4 system-ui, sans-serif; color: var(--fg); background: var(--bg); }
  header { padding: 14px 24px; background: #fff; border-bottom: 1px solid var(--line); display: flex; gap: 18px; align-items: baseline; flex-wrap: wrap; }
  header h1 { margin: 0; font-size: 20px; }
  header span { color: var(--dim); }
  main { padding: 16px 24px; max-width: 1200px; }
  .cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(170px, 1fr)); gap: 12px; margin-bottom: 18px; }
  .card { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: 10px 14px; }
  .card b { display: block; font-size: 22px; font-weight: 600; }
  .card small { color: var(--dim); }
  h2 { font-size: 15px; margin: 18px 0 8px; }
  table { width: 100%; border-collapse: collapse; background: #fff; border: 1px solid var(--line); }
  th, td { text-align: left; padding: 6px 10px; border-bottom: 1px solid var(--line); white-space: nowrap; }
  th { color: var(--dim); font-weight: 500; font-size: 12px; }
  td.addr { white-space: normal; word-break: break-all; }
  td.num { text-align: right; font-variant-numeric: tabular-nums; }
  code { font: 12px ui-monospace, monospace; }
  .bar { width: 220px; height: 10px; background: var(--line); border-radius: 5px; overflow: hidden; }
  .bar div { height: 100%; background: var(--accent); }
  .empty { color: var(--dim); padding: 8px 0; }
  #error { color: var(--bad); }
</style>
</head>
<body>
<header><h1>peerix</h1><span id="node">connecting…</span><span id="uptime"></span><span id="error"></span></header>
<main>
  <div class="cards">
    <div class="card"><small>narinfo hit rate</small><b id="hit-rate">–</b><small id="hits"></small></div>
    <div class="card"><small>fetched from the LAN</small><b id="bytes-in">–</b><small id="nars-in"></small></div>
    <div class="card"><small>served to peers</small><b id="bytes-out">–</b><small id="nars-out"></small></div>
    <div class="card"><small>peers</small><b id="peer-count">–</b><small id="problems"></small></div>
  </div>
  <h2>Transfers in progress</h2>
  <div id="transfers"><div class="empty">none</div></div>
  <h2>Peers</h2>
  <table id="peers">
    <thead><tr><th>peer</th><th>agent</th><th>address</th><th>ping</th><th>connected</th><th>index</th><th>narinfos in / out</th><th>bytes in / out</th></tr></thead>
    <tbody></tbody>
  </table>
</main>
<script>
"use strict";
const POLL_MS = ${DASHBOARD_POLL_MS};
const $ = (id) => document.getElementById(id);
function el (tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined) e.textContent = text;
  if (cls !== undefined) e.className = cls;
  return e;
}
function bytes (n) {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i === 0 ? String(n) : n.toFixed(1)) + ' ' + units[i];
}
function duration (seconds) {
  const d = Math.floor(seconds / 86400), h = Math.floor(seconds / 3600) % 24, m = Math.floor(seconds / 60) % 60, s = seconds % 60;
  return d > 0 ? d + 'd ' + h + 'h' : h > 0 ? h + 'h ' + m + 'm' : m > 0 ? m + 'm ' + s + 's' : s + 's';
}
const short = (id) => id.length > 8 ? '…' + id.slice(-8) : id;

function render (s) {
  const c = s.counters;
  $('node').textContent = s.agent + ' · ' + s.peerId;
  $('uptime').textContent = 'up ' + duration(s.uptimeSeconds);
  const refused = c.narInfoRefusals || 0;
  const asked = c.narInfoHits + c.narInfoMisses + refused;
  $('hit-rate').textContent = asked === 0 ? '–' : Math.round(100 * c.narInfoHits / asked) + ' %';
  $('hits').textContent = c.narInfoHits + ' hits, ' + c.narInfoMisses + ' misses' + (refused > 0 ? ', ' + refused + ' refused to other hosts' : '');
  $('bytes-in').textContent = bytes(c.narBytesIn);
  $('nars-in').textContent = (c.narCompleted + (c.narsInline || 0)) + ' NARs fetched' + (c.narFailed > 0 ? ', ' + c.narFailed + ' failed' : '');
  $('bytes-out').textContent = bytes(c.narBytesOut);
  $('nars-out').textContent = c.narsServed + ' NARs, ' + c.narInfosServed + ' narinfos';
  $('peer-count').textContent = String(s.peers.filter(p => p.peerix).length);
  $('problems').textContent = c.verificationFailures + ' verification failures, ' + c.refusalsReceived + ' refusals';

  const transfers = $('transfers');
  transfers.replaceChildren();
  if (s.transfers.length === 0) transfers.append(el('div', 'none', 'empty'));
  else {
    const table = el('table');
    for (const t of s.transfers) {
      const row = el('tr');
      row.append(el('td', t.hashPart), el('td', t.peer === null ? '' : 'from ' + short(t.peer)));
      const bar = el('div', undefined, 'bar');
      const fill = el('div');
      fill.style.width = (t.narSize === 0 ? 100 : 100 * t.received / t.narSize).toFixed(1) + '%';
      bar.append(fill);
      const cell = el('td');
      cell.append(bar);
      row.append(cell, el('td', bytes(t.received) + ' / ' + bytes(t.narSize), 'num'));
      table.append(row);
    }
    transfers.append(table);
  }

  const body = $('peers').tBodies[0];
  body.replaceChildren();
  if (s.peers.length === 0) {
    const row = el('tr');
    const cell = el('td', 'no peers connected', 'empty');
    cell.colSpan = 8;
    row.append(cell);
    body.append(row);
  }
  for (const p of s.peers) {
    const row = el('tr');
    row.dataset.peer = p.id;
    const id = el('td');
    id.append(el('code', short(p.id)));
    id.title = p.id;
    row.append(
      id,
      el('td', p.agent ?? '?'),
      el('td', p.addresses.map(a => a.replace('/p2p/' + p.id, '')).join(' '), 'addr'),
      el('td', p.latencyMs === null ? '–' : p.latencyMs + ' ms', 'num'),
      el('td', duration(p.connectedSeconds)),
      el('td', p.indexSize === null ? '–' : p.indexSize + ' paths', 'num'),
      el('td', p.fetched.narInfos + ' / ' + p.served.narInfos, 'num'),
      el('td', bytes(p.fetched.narBytes) + ' / ' + bytes(p.served.narBytes), 'num')
    );
    body.append(row);
  }
}

async function poll () {
  try {
    const res = await fetch('/status', { cache: 'no-store' });
    if (!res.ok) throw new Error('/status answered ' + res.status);
    render(await res.json());
    $('error').textContent = '';
    document.body.dataset.updated = String(Date.now());
  } catch (err) {
    $('error').textContent = 'daemon unreachable: ' + err.message;
  }
  setTimeout(poll, POLL_MS);
}
poll();
</script>
</body>
</html>
`
