/** Chroot stores with the paths the benchmarks fetch, made with the real Nix, offline. */
import { randomBytes } from 'node:crypto'
import { mkdir, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { NixEnv } from '../test/helpers/nix.js'

/** `count` store paths of `bytes` random bytes each, added with `nix-store --add`. */
export async function addSmallPaths (nix: NixEnv, storeRoot: string, count: number, bytes = 512): Promise<string[]> {
  const dir = join(nix.dir, `small-${count}-${Date.now()}`)
  await mkdir(dir)
  const files: string[] = []
  for (let i = 0; i < count; i++) {
    files.push(join(dir, `small-${i}`))
    await writeFile(files[i], randomBytes(bytes))
  }
  const { stdout } = await nix.run('nix-store', ['--store', storeRoot, '--add', ...files])
  await rm(dir, { recursive: true })
  return stdout.trim().split('\n')
}

/** One store path holding a file of `bytes` random bytes (written to disk twice on the way). */
export async function addRandomFile (nix: NixEnv, storeRoot: string, bytes: number): Promise<string> {
  const file = join(nix.dir, 'big-random')
  await nix.run('sh', ['-c', `head -c ${bytes} /dev/urandom > ${file}`])
  const { stdout } = await nix.run('nix-store', ['--store', storeRoot, '--add', file])
  await rm(file)
  return stdout.trim()
}

export interface ClosureShape {
  leaves: number
  mids: number
  /** Leaf sizes run from min to max, most of them near min (like a real closure). */
  minLeafBytes: number
  maxLeafBytes: number
}

/** Leaf i's size: min + (max − min)·u⁸ for u spread evenly over [0, 1). */
export function leafBytes (shape: ClosureShape, i: number): number {
  const u = (i * 0.6180339887) % 1
  return Math.round(shape.minLeafBytes + (shape.maxLeafBytes - shape.minLeafBytes) * u ** 8)
}

/**
 * Leaves of random data, mids each referring to a share of the leaves, one top referring to
 * the mids: `leaves + mids + 1` paths. `tag` makes the derivations new for each run.
 */
export function closureExpr (shape: ClosureShape, tag: string): string {
  const sizes = Array.from({ length: shape.leaves }, (_, i) => leafBytes(shape, i))
  return `
let
  mk = name: script: builtins.derivation { inherit name; builder = "/bin/sh"; args = [ "-c" script ]; system = builtins.currentSystem; PATH = "/bin:/usr/bin"; };
  sizes = [ ${sizes.join(' ')} ];
  leaves = builtins.genList (i: mk "leaf-${tag}-\${toString i}" "head -c \${toString (builtins.elemAt sizes i)} /dev/urandom > $out") ${shape.leaves};
  perMid = ${Math.ceil(shape.leaves / shape.mids)};
  mids = builtins.genList (m: mk "mid-${tag}-\${toString m}" ''
    mkdir $out
    echo \${toString (builtins.genList (j: let i = m * perMid + j; in if i < ${shape.leaves} then builtins.elemAt leaves i else "") perMid)} > $out/refs
  '') ${shape.mids};
in mk "top-${tag}" "mkdir $out; echo \${toString mids} > $out/refs"
`
}

export function hashPart (storePath: string): string {
  return storePath.slice('/nix/store/'.length, '/nix/store/'.length + 32)
}

/** A narinfo's field (`URL`, `NarHash`, …) or undefined. */
export function narinfoField (text: string, field: string): string | undefined {
  return new RegExp(`^${field}: (.*)$`, 'm').exec(text)?.[1]
}
