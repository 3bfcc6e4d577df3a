/**
 * zstd for one block of a compressed NAR body (protocols/peerix-nar-1.md, "Encodings"), as
 * WebAssembly (@bokuweb/zstd-wasm): no native addon to build, nothing tied to the Node version.
 * Whole-buffer calls suit independent blocks of at most 256 KiB. Measured on a 119 MiB NAR of
 * /usr/lib/gcc in 256 KiB blocks, level 1 (ratio 0.39), 2 shared cores: compress 111–146 MiB/s,
 * decompress 173–297; a native addon (@toondepauw/node-zstd) compressed at 94–188 and
 * decompressed at 53–75, so an addon's build trouble buys nothing.
 */
import { compress, decompress, init } from '@bokuweb/zstd-wasm'
import { FormatError } from '../../nix/errors.js'

/** zstd level 1: ratio 0.39 at 111–146 MiB/s above; level 3: ratio 0.36 at 72–80 MiB/s. */
export const ZSTD_LEVEL = 1

export interface ZstdCodec {
  /** One zstd frame holding `content`, with its content size in the frame header. */
  compress: (content: Uint8Array) => Uint8Array
  /**
   * The `size` bytes that `frame` holds. Throws a FormatError unless the frame's header
   * declares exactly `size` bytes and it decompresses to exactly that: nothing larger than
   * `size` is ever allocated, whatever the frame says.
   */
  decompress: (frame: Uint8Array, size: number) => Uint8Array
}

/**
 * The library's init() once per process, not once per instance of this module: a second call
 * instantiates its WebAssembly again under the first one's feet, and frames that decoded a
 * moment before fail with "srcSize_wrong". Seen when mocha loaded this file twice (through
 * require and import), which a module-level variable would not catch.
 */
const INIT = Symbol.for('peerix.zstd-wasm.init')

/** The codec, once its WebAssembly module is loaded. */
export async function loadZstd (): Promise<ZstdCodec> {
  const shared = globalThis as typeof globalThis & { [INIT]?: Promise<void> }
  shared[INIT] ??= init()
  await shared[INIT]
  return codec
}

const codec: ZstdCodec = {
  compress: (content) => compress(content, ZSTD_LEVEL),
  decompress: (frame, size) => {
    const declared = frameContentSize(frame)
    // the library allocates what the header declares, and decodes at most that much
    if (declared !== size) {
      throw new FormatError(`zstd frame declares ${declared === undefined ? 'no' : declared} content bytes, the block ${size}`)
    }
    let content: Uint8Array
    try {
      content = decompress(frame)
    } catch {
      throw new FormatError(`zstd frame of ${frame.byteLength} bytes is corrupt or holds more than its ${size} bytes`)
    }
    if (content.byteLength !== size) throw new FormatError(`zstd frame held ${content.byteLength} bytes, the block ${size}`)
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
