/**
 * Store paths, validated by the rules of Nix's libstore (`StorePath` and `checkName` in
 * path.cc): `/nix/store/<hash part>-<name>`, the hash part being 32 nix32 characters (160 bits)
 * and the name 1–211 characters of `A-Za-z0-9+-._?=`, not `.` or `..` on its own or before the
 * first dash. A peer's narinfo names paths we will ask Nix to create, so nothing else passes.
 */
import { FormatError } from './errors.js'

export const STORE_DIR = '/nix/store'
export const HASH_PART_LENGTH = 32
/** Nix's `StorePath::MaxPathLen`: a base name then fits in a 255-byte file name. */
export const MAX_NAME_LENGTH = 211

export interface StorePath {
  /** `/nix/store/<hashPart>-<name>` */
  path: string
  hashPart: string
  name: string
}

const HASH_PART = /^[0-9a-df-np-sv-z]{32}$/
const NIX32_CHAR = /[0-9a-df-np-sv-z]/
const NAME_CHAR = /[A-Za-z0-9+\-._?=]/

/** Quotes a value for an error message, cut short so that garbage cannot flood a log. */
function quote (text: string): string {
  return JSON.stringify(text.length > 300 ? `${text.slice(0, 300)}…` : text)
}

/** True when `text` is a hash part: exactly 32 characters of Nix's base-32 alphabet. */
export function isHashPart (text: string): boolean {
  return HASH_PART.test(text)
}

/** Why `text` is not a hash part, or undefined when it is one. */
function hashPartProblem (text: string): string | undefined {
  if (text.length !== HASH_PART_LENGTH) return `the hash is ${text.length} characters, expected ${HASH_PART_LENGTH}`
  const bad = [...text].find(c => !NIX32_CHAR.test(c))
  if (bad !== undefined) return `the hash contains ${quote(bad)}, which is not a nix32 character (0-9, a-z without e, o, t, u)`
  return undefined
}

/** Returns `text` when it is a hash part (as in `<hash>.narinfo`), otherwise throws. */
export function parseHashPart (text: string): string {
  const problem = hashPartProblem(text)
  if (problem !== undefined) throw new FormatError(`invalid store path hash ${quote(text)}: ${problem}`)
  return text
}

/** Why `name` is not a valid store path name, or undefined when it is one. */
function nameProblem (name: string): string | undefined {
  if (name === '') return 'the name is empty'
  if (name.length > MAX_NAME_LENGTH) return `the name is ${name.length} characters, longer than ${MAX_NAME_LENGTH}`
  if (name === '.' || name === '..' || name.startsWith('.-') || name.startsWith('..-')) {
    return 'the name must not be "." or ".." or start with "." or ".." followed by "-"'
  }
  const bad = [...name].find(c => !NAME_CHAR.test(c))
  if (bad !== undefined) return `the name contains the illegal character ${quote(bad)} (allowed: A-Z a-z 0-9 + - . _ ? =)`
  return undefined
}

/** Why `text` is not `<hash part>-<name>`, or undefined when it is. */
function baseNameProblem (text: string): string | undefined {
  if (text.includes('/')) return 'expected <hash>-<name> without a directory'
  if (text.length < HASH_PART_LENGTH + 1) return `too short for <${HASH_PART_LENGTH}-character hash>-<name>`
  if (text[HASH_PART_LENGTH] !== '-') return `expected "-" after the ${HASH_PART_LENGTH}-character hash, found ${quote(text[HASH_PART_LENGTH])}`
  return hashPartProblem(text.slice(0, HASH_PART_LENGTH)) ?? nameProblem(text.slice(HASH_PART_LENGTH + 1))
}

function fromBaseName (baseName: string): StorePath {
  return { path: `${STORE_DIR}/${baseName}`, hashPart: baseName.slice(0, HASH_PART_LENGTH), name: baseName.slice(HASH_PART_LENGTH + 1) }
}

/** Parses `<hash part>-<name>`, the form of References and Deriver in a narinfo. */
export function parseBaseName (text: string): StorePath {
  const problem = baseNameProblem(text)
  if (problem !== undefined) throw new FormatError(`invalid store path base name ${quote(text)}: ${problem}`)
  return fromBaseName(text)
}

/** Parses a full store path `/nix/store/<hash part>-<name>`; files inside one are refused. */
export function parseStorePath (text: string): StorePath {
  const prefix = `${STORE_DIR}/`
  const baseName = text.slice(prefix.length)
  const problem = !text.startsWith(prefix)
    ? `not in ${STORE_DIR}`
    : baseName.includes('/')
      ? 'names something inside a store path, not the store path itself'
      : baseNameProblem(baseName)
  if (problem !== undefined) throw new FormatError(`invalid store path ${quote(text)}: ${problem}`)
  return fromBaseName(baseName)
}
