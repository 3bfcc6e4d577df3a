/**
 * What `peerix peers` and `peerix which` print is partly chosen by peers (agent versions,
 * refusal reasons): a stranger's control characters come out written as escapes, so it cannot
 * retitle the terminal, move the cursor or forge a row.
 */
import assert from 'node:assert/strict'
import { formatPeers } from '../../src/cli/peers.js'
import { formatWhich } from '../../src/cli/which.js'
import { printable } from '../../src/cli/format.js'
import type { PeerStatus } from '../../src/daemon/status.js'

const HOSTILE = 'x\u001b]0;pwned\u0007\u001b[31m\r\nFAKE  verified\u009b2J\u202eevil\t'
const ID = '12D3KooWGRUVh6F1ThbVBm1cC5YyvW4mEphc3FMWrHVG5pcjmRkE'

/** Anything a terminal acts on: C0 but the newline between rows, DEL, C1, bidi overrides. */
const ACTS = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/

describe('operator command output', () => {
  it('writes out a peer\'s control characters in `peerix peers`', () => {
    const peer: PeerStatus = {
      id: ID, peerix: true, addresses: ['/ip4/10.0.0.5/tcp/12305'], protocols: [], agent: HOSTILE, latencyMs: 1,
      connectedSince: 0, connectedSeconds: 1, indexSize: null, fetched: { narInfos: 0, rejected: 0, errors: 0, narBytes: 0 }, served: { narInfos: 0, refusals: 0, narBytes: 0 }
    }
    const out = formatPeers([peer])
    assert.doesNotMatch(out, ACTS)
    assert.equal(out.split('\n').length, 3, 'a header, one row, and the final newline')
    assert.match(out, /x\\x1b\]0;pwned\\x07\\x1b\[31m\\r\\nFAKE  verified\\x9b2J\\u202eevil\\t/)
  })

  it('shows how long a peer has been connected by the daemon\'s clock, not this machine\'s', () => {
    const peer: PeerStatus = {
      id: ID, peerix: true, addresses: [], protocols: [], agent: 'peerix/0.1.0', latencyMs: 1,
      // the daemon's clock is a day behind this machine's
      connectedSince: Date.now() - 86_400_000 - 90_000, connectedSeconds: 90, indexSize: null, fetched: { narInfos: 0, rejected: 0, errors: 0, narBytes: 0 }, served: { narInfos: 0, refusals: 0, narBytes: 0 }
    }
    const row = formatPeers([peer]).split('\n')[1]
    assert.match(row, / 1m 30s /, row)
  })

  it('writes out a refusal reason\'s control characters in `peerix which`', () => {
    const out = formatWhich('p4pclmv1gyja5kzc26npqpia1qqxrf0l', [{ peer: ID, status: 'refused', reason: HOSTILE }])
    assert.doesNotMatch(out, ACTS)
    assert.equal(out.split('\n').length, 4, 'a head line, a header, one row, and the final newline')
  })

  it('leaves ordinary text alone', () => {
    assert.equal(printable('peerix/0.1.0 (café, 日本)'), 'peerix/0.1.0 (café, 日本)')
  })
})
