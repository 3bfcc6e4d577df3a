/**
 * The two zstd codecs of /peerix/nar/1 (src/p2p/nar/compression.ts) on the same bytes: the NAR
 * of a directory (default /usr/lib/gcc) cut into the protocol's 256 KiB blocks, each block
 * compressed whole at the daemon's level, each frame dropped before the next block as a sender
 * drops it once sent, then decompressed whole, the codecs taking turns for `--rounds` rounds.
 * Node's own codec only exists on Node ≥ 22.15 (`scripts/node22.sh`); the WebAssembly one is
 * the baseline. Run: `npx tsx bench/zstd-codecs.ts [--rounds N] [dir]`.
 */
import { narStream } from '../src/nix/nar.js'
import { nodeZstd, wasmZstd, type ZstdCodec } from '../src/p2p/nar/compression.js'
import { MAX_BLOCK_BYTES } from '../src/p2p/nar/constants.js'
import { takeNumberOption } from './args.js'
import { formatTable } from './report.js'

const MiB = 1024 * 1024
const args = process.argv.slice(2)
const rounds = takeNumberOption(args, '--rounds', 3)
const dir = args[0] ?? '/usr/lib/gcc'

const chunks: Uint8Array[] = []
for await (const chunk of narStream(dir)) chunks.push(chunk)
const nar = Buffer.concat(chunks)
const blocks: Uint8Array[] = []
for (let at = 0; at < nar.byteLength; at += MAX_BLOCK_BYTES) blocks.push(nar.subarray(at, at + MAX_BLOCK_BYTES))

const codecs = [nodeZstd(), await wasmZstd()].filter((c): c is ZstdCodec => c !== undefined)
const rows: string[][] = []
for (let round = 0; round < rounds; round++) {
  for (const codec of round % 2 === 0 ? codecs : [...codecs].reverse()) {
    // as a daemon does: each frame goes out (here: is dropped) before the next block
    let wire = 0
    let began = performance.now()
    for (const block of blocks) wire += codec.compress(block).byteLength
    const compressed = performance.now() - began
    const frames = blocks.map(block => codec.compress(block))
    began = performance.now()
    frames.forEach((frame, i) => {
      if (codec.decompress(frame, blocks[i].byteLength).byteLength !== blocks[i].byteLength) throw new Error('a block did not round-trip')
    })
    const decompressed = performance.now() - began
    const rate = (ms: number): string => (nar.byteLength / MiB / (ms / 1000)).toFixed(0)
    rows.push([String(round + 1), codec.name, (wire / nar.byteLength).toFixed(2), rate(compressed), rate(decompressed)])
  }
}
console.log(formatTable({
  title: `zstd codecs on the NAR of ${dir} (${(nar.byteLength / MiB).toFixed(1)} MiB, ${blocks.length} blocks of 256 KiB), Node ${process.version}`,
  columns: ['round', 'codec', 'wire bytes / NAR byte', 'compress MiB/s', 'decompress MiB/s'],
  rows,
  notes: [codecs.length === 1 ? 'This Node has no zstd of its own (Node ≥ 22.15 has): WebAssembly only.' : 'node: node:zlib (Node\'s own libzstd); wasm: @bokuweb/zstd-wasm.']
}))
