import { decodeMessage, encodeMessage, enumeration, message, streamMessage } from 'protons-runtime'
import type { Codec, DecodeOptions } from 'protons-runtime'
import type { Uint8ArrayList } from 'uint8arraylist'

export interface NarRequest {
  hashPart: string
  narHash: string
  offset: bigint
  acceptZstd: boolean
}

export namespace NarRequest {
  let _codec: Codec<NarRequest>

  export const codec = (): Codec<NarRequest> => {
    if (_codec == null) {
      _codec = message<NarRequest>((obj, w, opts = {}) => {
        if (opts.lengthDelimited !== false) {
          w.fork()
        }

        if ((obj.hashPart != null && obj.hashPart !== '')) {
          w.uint32(10)
          w.string(obj.hashPart)
        }

        if ((obj.narHash != null && obj.narHash !== '')) {
          w.uint32(18)
          w.string(obj.narHash)
        }

        if ((obj.offset != null && obj.offset !== 0n)) {
          w.uint32(24)
          w.uint64(obj.offset)
        }

        if ((obj.acceptZstd != null && obj.acceptZstd !== false)) {
          w.uint32(32)
          w.bool(obj.acceptZstd)
        }

        if (opts.lengthDelimited !== false) {
          w.ldelim()
        }
      }, (reader, length, opts = {}) => {
        const obj: any = {
          hashPart: '',
          narHash: '',
          offset: 0n,
          acceptZstd: false
        }

        const end = length == null ? reader.len : reader.pos + length

        while (reader.pos < end) {
          const tag = reader.uint32()

          switch (tag >>> 3) {
            case 1: {
              obj.hashPart = reader.string()
              break
            }
            case 2: {
              obj.narHash = reader.string()
              break
            }
            case 3: {
              obj.offset = reader.uint64()
              break
            }
            case 4: {
              obj.acceptZstd = reader.bool()
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
                field: `${prefix}.hashPart`,
                value: reader.string()
              }
              break
            }
            case 2: {
              yield {
                field: `${prefix}.narHash`,
                value: reader.string()
              }
              break
            }
            case 3: {
              yield {
                field: `${prefix}.offset`,
                value: reader.uint64()
              }
              break
            }
            case 4: {
              yield {
                field: `${prefix}.acceptZstd`,
                value: reader.bool()
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

  export interface NarRequestHashPartFieldEvent {
    field: '$.hashPart'
    value: string
  }

  export interface NarRequestNarHashFieldEvent {
    field: '$.narHash'
    value: string
  }

  export interface NarRequestOffsetFieldEvent {
    field: '$.offset'
    value: bigint
  }

  export interface NarRequestAcceptZstdFieldEvent {
    field: '$.acceptZstd'
    value: boolean
  }

  export function encode (obj: Partial<NarRequest>): Uint8Array<ArrayBuffer> {
    return encodeMessage(obj, NarRequest.codec())
  }

  export function decode (buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<NarRequest>): NarRequest {
    return decodeMessage(buf, NarRequest.codec(), opts)
  }

  export function stream (buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<NarRequest>): Generator<NarRequestHashPartFieldEvent | NarRequestNarHashFieldEvent | NarRequestOffsetFieldEvent | NarRequestAcceptZstdFieldEvent> {
    return streamMessage(buf, NarRequest.codec(), opts)
  }
}

export interface NarResponse {
  status: NarResponse.Status
  length: bigint
  message: string
  encoding: NarResponse.Encoding
}

export namespace NarResponse {
  export enum Status {
    UNSPECIFIED = 'UNSPECIFIED',
    FOUND = 'FOUND',
    ABSENT = 'ABSENT',
    REFUSED = 'REFUSED',
    ERROR = 'ERROR'
  }

  enum __StatusValues {
    UNSPECIFIED = 0,
    FOUND = 1,
    ABSENT = 2,
    REFUSED = 3,
    ERROR = 4
  }

  export namespace Status {
    export const codec = (): Codec<Status> => {
      return enumeration<Status>(__StatusValues)
    }
  }

  export enum Encoding {
    IDENTITY = 'IDENTITY',
    ZSTD = 'ZSTD'
  }

  enum __EncodingValues {
    IDENTITY = 0,
    ZSTD = 1
  }

  export namespace Encoding {
    export const codec = (): Codec<Encoding> => {
      return enumeration<Encoding>(__EncodingValues)
    }
  }

  let _codec: Codec<NarResponse>

  export const codec = (): Codec<NarResponse> => {
    if (_codec == null) {
      _codec = message<NarResponse>((obj, w, opts = {}) => {
        if (opts.lengthDelimited !== false) {
          w.fork()
        }

        if (obj.status != null && __StatusValues[obj.status] !== 0) {
          w.uint32(8)
          NarResponse.Status.codec().encode(obj.status, w)
        }

        if ((obj.length != null && obj.length !== 0n)) {
          w.uint32(16)
          w.uint64(obj.length)
        }

        if ((obj.message != null && obj.message !== '')) {
          w.uint32(26)
          w.string(obj.message)
        }

        if (obj.encoding != null && __EncodingValues[obj.encoding] !== 0) {
          w.uint32(32)
          NarResponse.Encoding.codec().encode(obj.encoding, w)
        }

        if (opts.lengthDelimited !== false) {
          w.ldelim()
        }
      }, (reader, length, opts = {}) => {
        const obj: any = {
          status: Status.UNSPECIFIED,
          length: 0n,
          message: '',
          encoding: Encoding.IDENTITY
        }

        const end = length == null ? reader.len : reader.pos + length

        while (reader.pos < end) {
          const tag = reader.uint32()

          switch (tag >>> 3) {
            case 1: {
              obj.status = NarResponse.Status.codec().decode(reader)
              break
            }
            case 2: {
              obj.length = reader.uint64()
              break
            }
            case 3: {
              obj.message = reader.string()
              break
            }
            case 4: {
              obj.encoding = NarResponse.Encoding.codec().decode(reader)
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
                field: `${prefix}.status`,
                value: NarResponse.Status.codec().decode(reader)
              }
              break
            }
            case 2: {
              yield {
                field: `${prefix}.length`,
                value: reader.uint64()
              }
              break
            }
            case 3: {
              yield {
                field: `${prefix}.message`,
                value: reader.string()
              }
              break
            }
            case 4: {
              yield {
                field: `${prefix}.encoding`,
                value: NarResponse.Encoding.codec().decode(reader)
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

  export interface NarResponseStatusFieldEvent {
    field: '$.status'
    value: NarResponse.Status
  }

  export interface NarResponseLengthFieldEvent {
    field: '$.length'
    value: bigint
  }

  export interface NarResponseMessageFieldEvent {
    field: '$.message'
    value: string
  }

  export interface NarResponseEncodingFieldEvent {
    field: '$.encoding'
    value: NarResponse.Encoding
  }

  export function encode (obj: Partial<NarResponse>): Uint8Array<ArrayBuffer> {
    return encodeMessage(obj, NarResponse.codec())
  }

  export function decode (buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<NarResponse>): NarResponse {
    return decodeMessage(buf, NarResponse.codec(), opts)
  }

  export function stream (buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<NarResponse>): Generator<NarResponseStatusFieldEvent | NarResponseLengthFieldEvent | NarResponseMessageFieldEvent | NarResponseEncodingFieldEvent> {
    return streamMessage(buf, NarResponse.codec(), opts)
  }
}
