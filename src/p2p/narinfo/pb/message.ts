import { decodeMessage, encodeMessage, enumeration, message, streamMessage } from 'protons-runtime'
import { alloc as uint8ArrayAlloc } from 'uint8arrays/alloc'
import type { Codec, DecodeOptions } from 'protons-runtime'
import type { Uint8ArrayList } from 'uint8arraylist'

export interface NarinfoRequest {
  hashPart: string
  maxNarBytes: number
}

export namespace NarinfoRequest {
  let _codec: Codec<NarinfoRequest>

  export const codec = (): Codec<NarinfoRequest> => {
    if (_codec == null) {
      _codec = message<NarinfoRequest>((obj, w, opts = {}) => {
        if (opts.lengthDelimited !== false) {
          w.fork()
        }

        if ((obj.hashPart != null && obj.hashPart !== '')) {
          w.uint32(10)
          w.string(obj.hashPart)
        }

        if ((obj.maxNarBytes != null && obj.maxNarBytes !== 0)) {
          w.uint32(16)
          w.uint32(obj.maxNarBytes)
        }

        if (opts.lengthDelimited !== false) {
          w.ldelim()
        }
      }, (reader, length, opts = {}) => {
        const obj: any = {
          hashPart: '',
          maxNarBytes: 0
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
              obj.maxNarBytes = reader.uint32()
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
                field: `${prefix}.maxNarBytes`,
                value: reader.uint32()
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

  export interface NarinfoRequestHashPartFieldEvent {
    field: '$.hashPart'
    value: string
  }

  export interface NarinfoRequestMaxNarBytesFieldEvent {
    field: '$.maxNarBytes'
    value: number
  }

  export function encode (obj: Partial<NarinfoRequest>): Uint8Array<ArrayBuffer> {
    return encodeMessage(obj, NarinfoRequest.codec())
  }

  export function decode (buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<NarinfoRequest>): NarinfoRequest {
    return decodeMessage(buf, NarinfoRequest.codec(), opts)
  }

  export function stream (buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<NarinfoRequest>): Generator<NarinfoRequestHashPartFieldEvent | NarinfoRequestMaxNarBytesFieldEvent> {
    return streamMessage(buf, NarinfoRequest.codec(), opts)
  }
}

export interface NarinfoResponse {
  status: NarinfoResponse.Status
  narinfo: string
  message: string
  nar: Uint8Array<ArrayBuffer>
}

export namespace NarinfoResponse {
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

  let _codec: Codec<NarinfoResponse>

  export const codec = (): Codec<NarinfoResponse> => {
    if (_codec == null) {
      _codec = message<NarinfoResponse>((obj, w, opts = {}) => {
        if (opts.lengthDelimited !== false) {
          w.fork()
        }

        if (obj.status != null && __StatusValues[obj.status] !== 0) {
          w.uint32(8)
          NarinfoResponse.Status.codec().encode(obj.status, w)
        }

        if ((obj.narinfo != null && obj.narinfo !== '')) {
          w.uint32(18)
          w.string(obj.narinfo)
        }

        if ((obj.message != null && obj.message !== '')) {
          w.uint32(26)
          w.string(obj.message)
        }

        if ((obj.nar != null && obj.nar.byteLength > 0)) {
          w.uint32(34)
          w.bytes(obj.nar)
        }

        if (opts.lengthDelimited !== false) {
          w.ldelim()
        }
      }, (reader, length, opts = {}) => {
        const obj: any = {
          status: Status.UNSPECIFIED,
          narinfo: '',
          message: '',
          nar: uint8ArrayAlloc(0)
        }

        const end = length == null ? reader.len : reader.pos + length

        while (reader.pos < end) {
          const tag = reader.uint32()

          switch (tag >>> 3) {
            case 1: {
              obj.status = NarinfoResponse.Status.codec().decode(reader)
              break
            }
            case 2: {
              obj.narinfo = reader.string()
              break
            }
            case 3: {
              obj.message = reader.string()
              break
            }
            case 4: {
              obj.nar = reader.bytes()
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
                value: NarinfoResponse.Status.codec().decode(reader)
              }
              break
            }
            case 2: {
              yield {
                field: `${prefix}.narinfo`,
                value: reader.string()
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
                field: `${prefix}.nar`,
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

  export interface NarinfoResponseStatusFieldEvent {
    field: '$.status'
    value: NarinfoResponse.Status
  }

  export interface NarinfoResponseNarinfoFieldEvent {
    field: '$.narinfo'
    value: string
  }

  export interface NarinfoResponseMessageFieldEvent {
    field: '$.message'
    value: string
  }

  export interface NarinfoResponseNarFieldEvent {
    field: '$.nar'
    value: Uint8Array<ArrayBuffer>
  }

  export function encode (obj: Partial<NarinfoResponse>): Uint8Array<ArrayBuffer> {
    return encodeMessage(obj, NarinfoResponse.codec())
  }

  export function decode (buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<NarinfoResponse>): NarinfoResponse {
    return decodeMessage(buf, NarinfoResponse.codec(), opts)
  }

  export function stream (buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<NarinfoResponse>): Generator<NarinfoResponseStatusFieldEvent | NarinfoResponseNarinfoFieldEvent | NarinfoResponseMessageFieldEvent | NarinfoResponseNarFieldEvent> {
    return streamMessage(buf, NarinfoResponse.codec(), opts)
  }
}
