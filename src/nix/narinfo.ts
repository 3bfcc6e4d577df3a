/**
 * The `.narinfo` files of a binary cache, read and written as Nix does (libstore nar-info.cc).
 * Parsing is stricter than Nix: narinfos come from other hosts, so any line we do not fully
 * understand is refused with its line number rather than half-read. Keys we do not know are
 * skipped, as Nix skips them, so that newer peers can add fields.
 */
import { FormatError } from './errors.js'
import { toNarHash } from './hash.js'
import { NIX32_ALPHABET, nix32Length } from './nix32.js'
import { parseBaseName, parseStorePath } from './store-path.js'

/** Real narinfos are a few KiB; anything near this is garbage or an attack. */
export const MAX_NARINFO_BYTES = 1024 * 1024

export interface NarInfo {
  /** Full store path. */
  storePath: string
  url: string
  compression: string
  fileHash?: string
  fileSize?: number
  /** `sha256:<nix32>` */
  narHash: string
  narSize: number
  /** Base names `<hash>-<name>`, in the order of the file. */
  references: string[]
  /** Base name. */
  deriver?: string
  system?: string
  sigs: string[]
  ca?: string
}

/** What Nix assumes when a narinfo has no Compression line (caches predating the field). */
const DEFAULT_COMPRESSION = 'bzip2'
/** What some caches write instead of leaving Deriver out; Nix reads it as no deriver. */
const UNKNOWN_DERIVER = 'unknown-deriver'

const KEY = /^[A-Za-z][A-Za-z0-9-]*$/
const CONTROL_CHAR = /[\u0000-\u001f\u007f]/
const COMPRESSION = /^[A-Za-z0-9._+-]+$/
const DECIMAL = /^(0|[1-9][0-9]*)$/
/**
 * A signature as Nix writes it, 64 bytes in padded base64. Nix throws "signature is not valid"
 * on any other value under a key name it trusts, failing the substitution; a narinfo carrying
 * one is refused here, so that no peer can spoil a genuine narinfo by adding one.
 */
const SIG = /^[^\s:]+:[A-Za-z0-9+/]{86}==$/
const SYSTEM = /^\S+$/

/** Whether Nix can check `sig`: the signatures a store may hold that are fit to pass on. */
export function isWellFormedSig (sig: string): boolean {
  return SIG.test(sig)
}

/** The hash of a content address in the encodings Nix reads: base16, nix32 or base64. */
const CA_HASH_BYTES: Record<string, number> = { md5: 16, sha1: 20, sha256: 32, sha512: 64 }

/**
 * A content address as Nix parses it (`text:sha256:…`, `fixed:[r:|git:]<algo>:…`); Nix
 * throws on anything else, and CA is outside the signature.
 */
function contentAddress (value: string): string {
  const m = /^(?:text:(sha256)|fixed:(?:r:|git:)?(md5|sha1|sha256|sha512)):(.+)$/.exec(value)
  if (m === null) throw new Error('expected a content address text:sha256:<hash> or fixed:[r:]<algorithm>:<hash>')
  const bytes = CA_HASH_BYTES[m[1] ?? m[2]]
  const hash = m[3]
  const base16 = hash.length === bytes * 2 && /^[0-9a-fA-F]+$/.test(hash)
  const nix32 = hash.length === nix32Length(bytes) && [...hash].every(c => NIX32_ALPHABET.includes(c))
  const base64 = hash.length === 4 * Math.ceil(bytes / 3) && /^[A-Za-z0-9+/]+={0,2}$/.test(hash)
  if (!base16 && !nix32 && !base64) throw new Error(`the ${m[1] ?? m[2]} hash of the content address is not base16, nix32 or base64 of ${bytes} bytes`)
  return value
}

function quote (text: string): string {
  return JSON.stringify(text.length > 200 ? `${text.slice(0, 200)}…` : text)
}

/** Reads a field's value; throws a plain message that the caller prefixes with the line. */
type FieldReader = (value: string, info: Partial<NarInfo>) => void

function nonNegative (value: string): number {
  if (!DECIMAL.test(value)) throw new Error('not a decimal number without sign or leading zeros')
  const n = Number(value)
  if (!Number.isSafeInteger(n)) throw new Error(`larger than ${Number.MAX_SAFE_INTEGER}`)
  return n
}

function matching (pattern: RegExp, what: string): (value: string) => string {
  return value => {
    if (!pattern.test(value)) throw new Error(`expected ${what}`)
    return value
  }
}

/** One reader per key Nix knows; `Sig` is the only key that may repeat. */
const FIELDS: Record<string, FieldReader> = {
  StorePath: (v, info) => { info.storePath = parseStorePath(v).path },
  URL: (v, info) => { info.url = matching(/./, 'a non-empty URL')(v) },
  Compression: (v, info) => { info.compression = matching(COMPRESSION, 'a compression method such as none or xz')(v) },
  FileHash: (v, info) => { info.fileHash = toNarHash(v) },
  FileSize: (v, info) => { info.fileSize = nonNegative(v) },
  NarHash: (v, info) => { info.narHash = toNarHash(v) },
  NarSize: (v, info) => {
    const n = nonNegative(v)
    if (n === 0) throw new Error('a NAR is never empty (Nix refuses NarSize 0)')
    info.narSize = n
  },
  References: (v, info) => {
    const refs = v === '' ? [] : v.split(' ')
    const seen = new Set<string>()
    for (const ref of refs) {
      if (ref === '') throw new Error('references must be separated by single spaces')
      parseBaseName(ref)
      if (seen.has(ref)) throw new Error(`${quote(ref)} is listed twice`)
      seen.add(ref)
    }
    info.references = refs
  },
  Deriver: (v, info) => {
    if (v === UNKNOWN_DERIVER) return
    parseBaseName(v)
    info.deriver = v
  },
  System: (v, info) => { info.system = matching(SYSTEM, 'a system such as x86_64-linux')(v) },
  Sig: (v, info) => { (info.sigs ??= []).push(matching(SIG, '<key name>:<base64 of a 64-byte signature>')(v)) },
  CA: (v, info) => { info.ca = contentAddress(v) }
}

const REQUIRED = ['StorePath', 'URL', 'NarHash', 'NarSize'] as const

export function parseNarInfo (text: string): NarInfo {
  const bytes = Buffer.byteLength(text, 'utf8')
  if (bytes > MAX_NARINFO_BYTES) throw new FormatError(`narinfo is ${bytes} bytes, more than the limit of ${MAX_NARINFO_BYTES}`)
  const lines = text.split('\n')
  const last = lines.pop()
  if (last !== '') throw new FormatError(`narinfo line ${lines.length + 1} ${quote(last ?? '')}: the file does not end with a newline`)

  const info: Partial<NarInfo> = {}
  const seen = new Set<string>()
  lines.forEach((line, i) => {
    const fail = (why: string): never => { throw new FormatError(`narinfo line ${i + 1} ${quote(line)}: ${why}`) }
    const sep = line.indexOf(': ')
    const key = line.slice(0, sep)
    if (sep < 0 || !KEY.test(key)) fail('expected "Key: value"')
    if (CONTROL_CHAR.test(line)) fail('contains a control character')
    if (!Object.hasOwn(FIELDS, key)) return
    if (seen.has(key) && key !== 'Sig') fail(`${key} appears more than once`)
    seen.add(key)
    try {
      FIELDS[key](line.slice(sep + 2), info)
    } catch (err) {
      fail((err as Error).message)
    }
  })

  const missing = REQUIRED.find(key => !seen.has(key))
  if (missing !== undefined) throw new FormatError(`narinfo has no ${missing} line`)
  return {
    storePath: info.storePath as string,
    url: info.url as string,
    compression: info.compression ?? DEFAULT_COMPRESSION,
    ...(info.fileHash !== undefined && { fileHash: info.fileHash }),
    ...(info.fileSize !== undefined && { fileSize: info.fileSize }),
    narHash: info.narHash as string,
    narSize: info.narSize as number,
    references: info.references ?? [],
    ...(info.deriver !== undefined && { deriver: info.deriver }),
    ...(info.system !== undefined && { system: info.system }),
    sigs: info.sigs ?? [],
    ...(info.ca !== undefined && { ca: info.ca })
  }
}

/**
 * Writes a narinfo in Nix's field order, Compression always explicit and References always
 * present (empty when there are none), as Nix's `NarInfo::to_string` does. Hashes are written
 * as `sha256:<nix32>` whatever form they were given in. Every value is checked by the rules
 * parseNarInfo applies, so what this writes always reads back.
 */
export function formatNarInfo (info: NarInfo): string {
  const fields: Array<[string, string | number | undefined]> = [
    ['StorePath', info.storePath],
    ['URL', info.url],
    ['Compression', info.compression],
    ['FileHash', info.fileHash === undefined ? undefined : normalisedHash('FileHash', info.fileHash)],
    ['FileSize', info.fileSize],
    ['NarHash', normalisedHash('NarHash', info.narHash)],
    ['NarSize', info.narSize],
    ['References', info.references.join(' ')],
    ['Deriver', info.deriver],
    ['System', info.system],
    ...info.sigs.map((sig): [string, string] => ['Sig', sig]),
    ['CA', info.ca]
  ]
  let out = ''
  const check: Partial<NarInfo> = {}
  for (const [key, value] of fields) {
    if (value === undefined) continue
    const text = String(value)
    try {
      if (CONTROL_CHAR.test(text)) throw new Error('contains a control character')
      FIELDS[key](text, check)
    } catch (err) {
      throw new FormatError(`cannot write narinfo: ${key} ${quote(text)}: ${(err as Error).message}`)
    }
    out += `${key}: ${text}\n`
  }
  return out
}

function normalisedHash (key: string, hash: string): string {
  try {
    return toNarHash(hash)
  } catch (err) {
    throw new FormatError(`cannot write narinfo: ${key}: ${(err as Error).message}`)
  }
}
