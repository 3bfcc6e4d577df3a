/**
 * The Golomb–Rice codec of /peerix/index/1 summaries (src/p2p/index/golomb.ts) against the
 * bit-by-bit baseline it replaced (test/helpers/golomb-bit-by-bit.ts), on the same random key
 * sets of 100,000 and 1,000,000 keys (MAX_KEYS) or `--keys N`. Decoding runs on the daemon's
 * event loop, so its time is how long the HTTP shim answers nothing. The codecs take turns for
 * `--rounds` rounds; the table gives the median, and the slowest decode. Run:
 * `npx tsx bench/summary-codec.ts [--keys N] [--rounds R]`.
 */
import { randomFillSync } from 'node:crypto'
import { decodeKeySet, encodeKeySet, type EncodedKeySet } from '../src/p2p/index/golomb.js'
import { toKeySet } from '../src/store/summary-keys.js'
import { decodeKeySetBitByBit, encodeKeySetBitByBit } from '../test/helpers/golomb-bit-by-bit.js'
import { takeNumberOption } from './args.js'
import { formatTable, percentile } from './report.js'

interface Codec {
  name: string
  encode: (keys: Uint32Array) => EncodedKeySet
  decode: (set: EncodedKeySet, maxCount: number) => Uint32Array
}

const args = process.argv.slice(2)
const sizes = args.includes('--keys') ? [takeNumberOption(args, '--keys', 0)] : [100_000, 1_000_000]
const rounds = takeNumberOption(args, '--rounds', 5)
const codecs: Codec[] = [
  { name: 'bit by bit (baseline)', encode: encodeKeySetBitByBit, decode: decodeKeySetBitByBit },
  { name: 'golomb.ts', encode: encodeKeySet, decode: decodeKeySet }
]

/** About `count` uniform 32-bit keys, as summaryKey gives for random hash parts. */
function randomKeySet (count: number): Uint32Array {
  return toKeySet(randomFillSync(new Uint32Array(count)))
}

const sameBytes = (a: Uint8Array, b: Uint8Array): boolean => a.byteLength === b.byteLength && a.every((byte, i) => byte === b[i])

const rows: string[][] = []
for (const size of sizes) {
  const keys = randomKeySet(size)
  const encodeMs = codecs.map((): number[] => [])
  const decodeMs = codecs.map((): number[] => [])
  let wire: Uint8Array | undefined
  for (let round = 0; round < rounds; round++) {
    const order = round % 2 === 0 ? [0, 1] : [1, 0]
    for (const c of order) {
      const codec = codecs[c]
      let began = performance.now()
      const encoded = codec.encode(keys)
      encodeMs[c].push(performance.now() - began)
      wire ??= encoded.data
      if (!sameBytes(encoded.data, wire)) throw new Error(`${codec.name} encoded other bits`)
      began = performance.now()
      const decoded = codec.decode(encoded, keys.length)
      decodeMs[c].push(performance.now() - began)
      if (!sameBytes(new Uint8Array(decoded.buffer), new Uint8Array(keys.buffer))) throw new Error(`${codec.name} did not round-trip`)
    }
  }
  codecs.forEach((codec, c) => {
    rows.push([keys.length.toLocaleString('en'), codec.name, (wire?.byteLength ?? 0).toLocaleString('en'),
      percentile(encodeMs[c], 50).toFixed(1), percentile(decodeMs[c], 50).toFixed(1), percentile(decodeMs[c], 100).toFixed(1)])
  })
}
console.log(formatTable({
  title: `Golomb–Rice summary codec, median of ${rounds} rounds, Node ${process.version}`,
  columns: ['keys', 'codec', 'key data bytes', 'encode ms', 'decode ms', 'slowest decode ms'],
  rows,
  notes: [
    'Random uniform keys; both codecs must give the same bytes and the keys back, or the run fails.',
    'The slowest decode is often the first, before V8 has optimised the decoder: a daemon decodes a full summary rarely.'
  ]
}))
