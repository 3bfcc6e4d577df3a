/**
 * zstd for one block of a compressed NAR body (protocols/peerix-nar-1.md, "Encodings").
 * Whole-buffer calls suit independent blocks of at most 256 KiB. Two implementations of the
 * same format, so peers on either interoperate: Node's own (`zlib`, Node ≥ 22.15, what the
 * flake and the NixOS module run) and, on older Node, WebAssembly (@bokuweb/zstd-wasm: no
 * native addon to build). `npx tsx bench/zstd-codecs.ts` has their speeds; on a 119 MiB NAR of
 * /usr/lib/gcc in 256 KiB blocks, level 1 (ratio 0.39), the WebAssembly one compressed at
 * 111–146 MiB/s and decompressed at 173–297, and a native addon (@toondepauw/node-zstd) at
 * 94–188 and 53–75, so an addon's build trouble buys nothing.
 */
import * as zlib from 'node:zlib'
import { compress, decompress, init } from '@bokuweb/zstd-wasm'
import { FormatError } from '../../nix/errors.js'

/** zstd level 1: ratio 0.39 at 111–146 MiB/s above; level 3: ratio 0.36 at 72–80 MiB/s. */
export const ZSTD_LEVEL = 1

export interface ZstdCodec {
  /** Which implementation: Node's own (`node`) or WebAssembly (`wasm`). */
  readonly name: 'node' | 'wasm'
  /** One zstd frame holding `content`, with its content size in the frame header. */
  compress: (content: Uint8Array) => Uint8Array
  /**
   * The `size` bytes that `frame` holds. Throws a FormatError unless the frame's header
   * declares exactly `size` bytes and it decompresses to exactly that: nothing larger than
   * `size` is ever allocated, whatever the frame says.
   */
  decompress: (frame: Uint8Array, size: number) => Uint8Array
}

/** The codec this process uses: Node's own zstd where it has one, else WebAssembly. */
export async function loadZstd (): Promise<ZstdCodec> {
  return nodeZstd() ?? await wasmZstd()
}

/** What node:zlib has for zstd from Node 22.15 on (not in @types/node 20). */
interface ZlibWithZstd {
  zstdCompressSync: (content: Uint8Array, options: { params: Record<number, number>, pledgedSrcSize: number }) => Buffer
  zstdDecompressSync: (frame: Uint8Array, options: { maxOutputLength: number }) => Buffer
  constants: { ZSTD_c_compressionLevel: number, ZSTD_c_contentSizeFlag: number }
}

/** Node's own zstd, or undefined on a Node without it. */
export function nodeZstd (): ZstdCodec | undefined {
  const z = zlib as unknown as Partial<ZlibWithZstd>
  if (typeof z.zstdCompressSync !== 'function' || typeof z.zstdDecompressSync !== 'function' || z.constants?.ZSTD_c_compressionLevel === undefined) return undefined
  const native = z as ZlibWithZstd
  const params = { [native.constants.ZSTD_c_compressionLevel]: ZSTD_LEVEL, [native.constants.ZSTD_c_contentSizeFlag]: 1 }
  return {
    name: 'node',
    compress: (content) => native.zstdCompressSync(content, { params, pledgedSrcSize: content.byteLength }),
    // maxOutputLength: Node stops decoding, and allocating, past the declared size
    decompress: checkedDecompress((frame, size) => native.zstdDecompressSync(frame, { maxOutputLength: Math.max(1, size) }))
  }
}

/**
 * The library's init() once per process, not once per instance of this module: a second call
 * instantiates its WebAssembly again under the first one's feet, and frames that decoded a
 * moment before fail with "srcSize_wrong". Seen when mocha loaded this file twice (through
 * require and import), which a module-level variable would not catch.
 */
const INIT = Symbol.for('peerix.zstd-wasm.init')

/** The WebAssembly codec, once its module is loaded. */
export async function wasmZstd (): Promise<ZstdCodec> {
  const shared = globalThis as typeof globalThis & { [INIT]?: Promise<void> }
  shared[INIT] ??= init()
  await shared[INIT]
  return wasmCodec
}

const wasmCodec: ZstdCodec = {
  name: 'wasm',
  compress: (content) => compress(content, ZSTD_LEVEL),
  // the library allocates what the header declares, and decodes at most that much
  decompress: checkedDecompress((frame) => decompress(frame))
}

/**
 * `decode` behind the checks every codec makes: the frame's header declares exactly `size`
 * bytes before anything is decoded, and exactly `size` bytes come out.
 */
function checkedDecompress (decode: (frame: Uint8Array, size: number) => Uint8Array): ZstdCodec['decompress'] {
  return (frame, size) => {
    const declared = frameContentSize(frame)
    if (declared !== size) {
      throw new FormatError(`zstd frame declares ${declared === undefined ? 'no' : declared} content bytes, the block ${size}`)
    }
    let content: Uint8Array
    try {
      content = decode(frame, size)
    } catch {
      throw new FormatError(`zstd frame of ${frame.byteLength} bytes is corrupt or holds more than its ${size} bytes`)
    }
    // Node's decoder hands back what a truncated frame held so far
    if (content.byteLength !== size) throw new FormatError(`zstd frame of ${frame.byteLength} bytes is corrupt or truncated: it held ${content.byteLength} bytes, the block ${size}`)
    return content
  }
}

const ZSTD_MAGIC = 0xfd2fb528

/**
 * Frame_Content_Size from a zstd frame header (RFC 8878, 3.1.1.1), or undefined when the
 * header does not state it. Throws when `frame` does not start with a zstd frame header.
 */
export function frameContentSize (frame: Uint8Array): number | undefined {
  if (frame.byteLength < 6) throw new FormatError(`zstd frame of ${frame.byteLength} bytes is too short for a header`)
  const view = new DataView(frame.buffer, frame.byteOffset, frame.byteLength)
  if (view.getUint32(0, true) !== ZSTD_MAGIC) throw new FormatError('zstd frame does not start with the zstd magic number')
  const descriptor = frame[4]
  const fcsFlag = descriptor >> 6
  const singleSegment = (descriptor & 0x20) !== 0
  const dictionaryIdBytes = [0, 1, 2, 4][descriptor & 0x03]
  const at = 5 + (singleSegment ? 0 : 1) + dictionaryIdBytes
  const fcsBytes = fcsFlag === 0 ? (singleSegment ? 1 : 0) : 2 ** fcsFlag
  if (fcsBytes === 0) return undefined
  if (frame.byteLength < at + fcsBytes) throw new FormatError('zstd frame ends inside its header')
  switch (fcsBytes) {
    case 1: return view.getUint8(at)
    case 2: return view.getUint16(at, true) + 256
    case 4: return view.getUint32(at, true)
    default: return view.getUint32(at, true) + view.getUint32(at + 4, true) * 2 ** 32
  }
}
