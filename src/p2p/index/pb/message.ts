/* eslint-disable require-yield */

import { decodeMessage, encodeMessage, enumeration, message, streamMessage } from 'protons-runtime'
import { alloc as uint8ArrayAlloc } from 'uint8arrays/alloc'
import type { Codec, DecodeOptions } from 'protons-runtime'
import type { Uint8ArrayList } from 'uint8arraylist'

export interface IndexRequest {}

export namespace IndexRequest {
  let _codec: Codec<IndexRequest>

  export const codec = (): Codec<IndexRequest> => {
    if (_codec == null) {
      _codec = message<IndexRequest>((obj, w, opts = {}) => {
        if (opts.lengthDelimited !== false) {
          w.fork()
        }

        if (opts.lengthDelimited !== false) {
          w.ldelim()
        }
      }, (reader, length, opts = {}) => {
        const obj: any = {}

        const end = length == null ? reader.len : reader.pos + length

        while (reader.pos < end) {
          const tag = reader.uint32()

          switch (tag >>> 3) {
            default: {
              reader.skipType(tag & 7)
              break
            }
          }
        }

        return obj
      }, function * (reader, length, prefix, opts = {}) {
        const end = length == null ? reader.len : reader.pos + length

        while (reader.pos < end) {
          const tag = reader.uint32()

          switch (tag >>> 3) {
            default: {
              reader.skipType(tag & 7)
              break
            }
          }
        }
      })
    }

    return _codec
  }

  export function encode (obj: Partial<IndexRequest>): Uint8Array<ArrayBuffer> {
    return encodeMessage(obj, IndexRequest.codec())
  }

  export function decode (buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<IndexRequest>): IndexRequest {
    return decodeMessage(buf, IndexRequest.codec(), opts)
  }

  export function stream (buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<IndexRequest>): Generator<{}> {
    return streamMessage(buf, IndexRequest.codec(), opts)
  }
}

export interface KeySet {
  count: number
  riceBits: number
  data: Uint8Array<ArrayBuffer>
}

export namespace KeySet {
  let _codec: Codec<KeySet>

  export const codec = (): Codec<KeySet> => {
    if (_codec == null) {
      _codec = message<KeySet>((obj, w, opts = {}) => {
        if (opts.lengthDelimited !== false) {
          w.fork()
        }

        if ((obj.count != null && obj.count !== 0)) {
          w.uint32(8)
          w.uint32(obj.count)
        }

        if ((obj.riceBits != null && obj.riceBits !== 0)) {
          w.uint32(16)
          w.uint32(obj.riceBits)
        }

        if ((obj.data != null && obj.data.byteLength > 0)) {
          w.uint32(26)
          w.bytes(obj.data)
        }

        if (opts.lengthDelimited !== false) {
          w.ldelim()
        }
      }, (reader, length, opts = {}) => {
        const obj: any = {
          count: 0,
          riceBits: 0,
          data: uint8ArrayAlloc(0)
        }

        const end = length == null ? reader.len : reader.pos + length

        while (reader.pos < end) {
          const tag = reader.uint32()

          switch (tag >>> 3) {
            case 1: {
              obj.count = reader.uint32()
              break
            }
            case 2: {
              obj.riceBits = reader.uint32()
              break
            }
            case 3: {
              obj.data = reader.bytes()
              break
            }
            default: {
              reader.skipType(tag & 7)
              break
            }
          }
        }

        return obj
      }, function * (reader, length, prefix, opts = {}) {
        const end = length == null ? reader.len : reader.pos + length

        while (reader.pos < end) {
          const tag = reader.uint32()

          switch (tag >>> 3) {
            case 1: {
              yield {
                field: `${prefix}.count`,
                value: reader.uint32()
              }
              break
            }
            case 2: {
              yield {
                field: `${prefix}.riceBits`,
                value: reader.uint32()
              }
              break
            }
            case 3: {
              yield {
                field: `${prefix}.data`,
                value: reader.bytes()
              }
              break
            }
            default: {
              reader.skipType(tag & 7)
              break
            }
          }
        }
      })
    }

    return _codec
  }

  export interface KeySetCountFieldEvent {
    field: '$.count'
    value: number
  }

  export interface KeySetRiceBitsFieldEvent {
    field: '$.riceBits'
    value: number
  }

  export interface KeySetDataFieldEvent {
    field: '$.data'
    value: Uint8Array<ArrayBuffer>
  }

  export function encode (obj: Partial<KeySet>): Uint8Array<ArrayBuffer> {
    return encodeMessage(obj, KeySet.codec())
  }

  export function decode (buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<KeySet>): KeySet {
    return decodeMessage(buf, KeySet.codec(), opts)
  }

  export function stream (buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<KeySet>): Generator<KeySetCountFieldEvent | KeySetRiceBitsFieldEvent | KeySetDataFieldEvent> {
    return streamMessage(buf, KeySet.codec(), opts)
  }
}

export interface IndexUpdate {
  kind: IndexUpdate.Kind
  version: number
  added?: KeySet
  removed?: KeySet
}

export namespace IndexUpdate {
  export enum Kind {
    UNSPECIFIED = 'UNSPECIFIED',
    FULL = 'FULL',
    DELTA = 'DELTA',
    UNKNOWN = 'UNKNOWN'
  }

  enum __KindValues {
    UNSPECIFIED = 0,
    FULL = 1,
    DELTA = 2,
    UNKNOWN = 3
  }

  export namespace Kind {
    export const codec = (): Codec<Kind> => {
      return enumeration<Kind>(__KindValues)
    }
  }

  let _codec: Codec<IndexUpdate>

  export const codec = (): Codec<IndexUpdate> => {
    if (_codec == null) {
      _codec = message<IndexUpdate>((obj, w, opts = {}) => {
        if (opts.lengthDelimited !== false) {
          w.fork()
        }

        if (obj.kind != null && __KindValues[obj.kind] !== 0) {
          w.uint32(8)
          IndexUpdate.Kind.codec().encode(obj.kind, w)
        }

        if ((obj.version != null && obj.version !== 0)) {
          w.uint32(16)
          w.uint32(obj.version)
        }

        if (obj.added != null) {
          w.uint32(26)
          KeySet.codec().encode(obj.added, w)
        }

        if (obj.removed != null) {
          w.uint32(34)
          KeySet.codec().encode(obj.removed, w)
        }

        if (opts.lengthDelimited !== false) {
          w.ldelim()
        }
      }, (reader, length, opts = {}) => {
        const obj: any = {
          kind: Kind.UNSPECIFIED,
          version: 0
        }

        const end = length == null ? reader.len : reader.pos + length

        while (reader.pos < end) {
          const tag = reader.uint32()

          switch (tag >>> 3) {
            case 1: {
              obj.kind = IndexUpdate.Kind.codec().decode(reader)
              break
            }
            case 2: {
              obj.version = reader.uint32()
              break
            }
            case 3: {
              obj.added = KeySet.codec().decode(reader, reader.uint32(), {
                limits: opts.limits?.added
              })
              break
            }
            case 4: {
              obj.removed = KeySet.codec().decode(reader, reader.uint32(), {
                limits: opts.limits?.removed
              })
              break
            }
            default: {
              reader.skipType(tag & 7)
              break
            }
          }
        }

        return obj
      }, function * (reader, length, prefix, opts = {}) {
        const end = length == null ? reader.len : reader.pos + length

        while (reader.pos < end) {
          const tag = reader.uint32()

          switch (tag >>> 3) {
            case 1: {
              yield {
                field: `${prefix}.kind`,
                value: IndexUpdate.Kind.codec().decode(reader)
              }
              break
            }
            case 2: {
              yield {
                field: `${prefix}.version`,
                value: reader.uint32()
              }
              break
            }
            case 3: {
              yield * KeySet.codec().stream(reader, reader.uint32(), `${prefix}.added`, {
                limits: opts.limits?.added
              })

              break
            }
            case 4: {
              yield * KeySet.codec().stream(reader, reader.uint32(), `${prefix}.removed`, {
                limits: opts.limits?.removed
              })

              break
            }
            default: {
              reader.skipType(tag & 7)
              break
            }
          }
        }
      })
    }

    return _codec
  }

  export interface IndexUpdateKindFieldEvent {
    field: '$.kind'
    value: IndexUpdate.Kind
  }

  export interface IndexUpdateVersionFieldEvent {
    field: '$.version'
    value: number
  }

  export interface IndexUpdateAddedCountFieldEvent {
    field: '$.added.count'
    value: number
  }

  export interface IndexUpdateAddedRiceBitsFieldEvent {
    field: '$.added.riceBits'
    value: number
  }

  export interface IndexUpdateAddedDataFieldEvent {
    field: '$.added.data'
    value: Uint8Array<ArrayBuffer>
  }

  export interface IndexUpdateRemovedCountFieldEvent {
    field: '$.removed.count'
    value: number
  }

  export interface IndexUpdateRemovedRiceBitsFieldEvent {
    field: '$.removed.riceBits'
    value: number
  }

  export interface IndexUpdateRemovedDataFieldEvent {
    field: '$.removed.data'
    value: Uint8Array<ArrayBuffer>
  }

  export function encode (obj: Partial<IndexUpdate>): Uint8Array<ArrayBuffer> {
    return encodeMessage(obj, IndexUpdate.codec())
  }

  export function decode (buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<IndexUpdate>): IndexUpdate {
    return decodeMessage(buf, IndexUpdate.codec(), opts)
  }

  export function stream (buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<IndexUpdate>): Generator<IndexUpdateKindFieldEvent | IndexUpdateVersionFieldEvent | IndexUpdateAddedCountFieldEvent | IndexUpdateAddedRiceBitsFieldEvent | IndexUpdateAddedDataFieldEvent | IndexUpdateRemovedCountFieldEvent | IndexUpdateRemovedRiceBitsFieldEvent | IndexUpdateRemovedDataFieldEvent> {
    return streamMessage(buf, IndexUpdate.codec(), opts)
  }
}
