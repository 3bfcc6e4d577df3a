/**
 * Compiles the host process (bench/host.ts and the daemon sources it runs) to plain JS, so
 * the daemons the benchmarks measure run as `node dist/cli.js` would: under tsx every
 * process carries its loader, about 55 MB more resident memory (measured idle: 94 MB
 * compiled, 150 MB under tsx), which would swamp the peak-RSS figures.
 */
import { execFile } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdtemp, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const ROOT = fileURLToPath(new URL('..', import.meta.url))

/** Returns the compiled host's path under a new temp dir (the caller removes the dir). */
export async function compileHost (): Promise<{ hostJs: string, dir: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'peerix-bench-js-'))
  const tsc = join(ROOT, 'node_modules', '.bin', 'tsc')
  // Type errors elsewhere in a tree others are editing do not stop tsc from emitting.
  const failure = await new Promise<string | undefined>((resolve) => {
    execFile(tsc, ['-p', join(ROOT, 'bench', 'tsconfig.host.json'), '--outDir', dir], { cwd: ROOT }, (err, stdout) => { resolve(err == null ? undefined : stdout) })
  })
  const hostJs = join(dir, 'bench', 'host.js')
  if (!existsSync(hostJs)) throw new Error(`compiling bench/host.ts failed:\n${failure ?? ''}`)
  // ESM like the sources, and the project's packages.
  await writeFile(join(dir, 'package.json'), '{ "type": "module" }\n')
  await symlink(join(ROOT, 'node_modules'), join(dir, 'node_modules'))
  return { hostJs, dir }
}
