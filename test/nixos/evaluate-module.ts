/**
 * What nixos/module.nix produces for a configuration, computed by real Nix through the
 * stand-in lib of test/nixos/eval-module.nix: the unit's serviceConfig, the Nix settings, and
 * ExecStart split into the argv systemd would run.
 */
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { NixEnv } from '../helpers/nix.js'

const EVAL_MODULE = fileURLToPath(new URL('./eval-module.nix', import.meta.url))

export type ServiceConfig = Record<string, string | number | boolean | string[]>

export interface ModuleOutput {
  serviceConfig: ServiceConfig
  nixSettings: Record<string, string | number | boolean | string[]>
}

let evaluations = 0

/** Evaluates `services.peerix = { … };` (Nix text) with the package at `<dir>/stub/peerix`. */
export async function evaluateModule (nix: NixEnv, dir: string, services: string): Promise<ModuleOutput> {
  const stubDir = join(dir, 'stub')
  await mkdir(stubDir, { recursive: true })
  const file = join(dir, `configuration-${evaluations++}.nix`)
  await writeFile(file, `{\n${services}\n}\n`)
  const expr = `import ${EVAL_MODULE} { configuration = import ${file}; stubDir = "${stubDir}"; }`
  const { stdout } = await nix.run('nix-instantiate', ['--eval', '--strict', '--json', '-E', expr])
  const { config } = JSON.parse(stdout) as { config: { systemd?: { services: { peerix: { serviceConfig: ServiceConfig } } }, nix?: { settings: ModuleOutput['nixSettings'] } } }
  const serviceConfig = config.systemd?.services.peerix.serviceConfig
  if (serviceConfig === undefined) throw new Error('the module defines no systemd.services.peerix')
  return { serviceConfig, nixSettings: config.nix?.settings ?? {} }
}

/**
 * ExecStart= as systemd splits and expands it, for the forms the module writes ("JSON-quoted"
 * words and bare words): `%d` is the credentials directory, `%%` and `$$` are literal.
 */
export function execStartArgv (execStart: string, credentialsDirectory: string): string[] {
  return [...execStart.matchAll(/"(?:[^"\\]|\\.)*"|\S+/g)].map(([token]) => {
    const word = token.startsWith('"') ? JSON.parse(token) as string : token.replaceAll(/%d/g, credentialsDirectory)
    return word.replaceAll('%%', '%').replaceAll('$$', '$')
  })
}

/** Nix settings as `--option name value` pairs, lists space-separated as in nix.conf. */
export function nixOptions (settings: ModuleOutput['nixSettings']): string[] {
  return Object.entries(settings).flatMap(([name, value]) =>
    ['--option', name, Array.isArray(value) ? value.join(' ') : String(value)])
}
