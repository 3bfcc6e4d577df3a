/**
 * A private, offline Nix for tests: its own config dir and cache dir, chroot stores under a
 * temp dir, and helpers that run the real Nix client against them.
 */
import { execFile, type ExecFileOptions } from 'node:child_process'
import { mkdtemp, mkdir, readFile, writeFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

export const SANDBOX_PATHS = '/bin /usr /lib /lib64'

export interface RunResult { stdout: string, stderr: string }

/** A key pair written by `nix-store --generate-binary-cache-key` into the env's dir. */
export interface KeyPair {
  name: string
  secretFile: string
  publicFile: string
  /** The public key as Nix prints it, `name:base64`. */
  publicKey: string
}

export class NixEnv {
  private constructor (readonly dir: string, readonly env: NodeJS.ProcessEnv) {}

  /** A fresh config (no substituters, no sandbox, negative narinfo TTL 0) under a temp dir. */
  static async create (prefix = 'peerix-test-'): Promise<NixEnv> {
    const dir = await mkdtemp(join(tmpdir(), prefix))
    await mkdir(join(dir, 'conf'), { recursive: true })
    await writeFile(join(dir, 'conf', 'nix.conf'), [
      'sandbox = false',
      'build-users-group =',
      'experimental-features = nix-command',
      'substituters =',
      'narinfo-cache-negative-ttl = 0',
      'narinfo-cache-positive-ttl = 0',
      ''
    ].join('\n'))
    const env = { ...process.env, NIX_CONF_DIR: join(dir, 'conf'), XDG_CACHE_HOME: join(dir, 'xdg'), NIX_REMOTE: '' }
    return new NixEnv(dir, env)
  }

  /** The root of a chroot store named `name` (created by Nix on first use). */
  storeRoot (name: string): string {
    return join(this.dir, name)
  }

  /** Creates an empty chroot store (database and all) and returns its root. */
  async initStore (name: string): Promise<string> {
    const root = this.storeRoot(name)
    await this.run('nix-store', ['--store', root, '--init'])
    return root
  }

  /** Runs a command with this env; rejects with stderr in the message on a non-zero exit. */
  async run (cmd: string, args: string[], opts: ExecFileOptions & { input?: string } = {}): Promise<RunResult> {
    return await new Promise((resolve, reject) => {
      const child = execFile(cmd, args, { env: this.env, maxBuffer: 64 * 1024 * 1024, encoding: 'utf8', ...opts }, (err, stdout, stderr) => {
        if (err != null) {
          reject(Object.assign(new Error(`${cmd} ${args.join(' ')} failed: ${String(stderr)}`), { stdout: String(stdout), stderr: String(stderr), code: (err as { code?: number }).code }))
        } else {
          resolve({ stdout: String(stdout), stderr: String(stderr) })
        }
      })
      if (opts.input !== undefined) child.stdin?.end(opts.input)
    })
  }

  /** A fresh signing key `name` made by Nix itself, as a user would make one. */
  async generateKey (name: string): Promise<KeyPair> {
    const secretFile = join(this.dir, `${name}.sec`)
    const publicFile = join(this.dir, `${name}.pub`)
    await this.run('nix-store', ['--generate-binary-cache-key', name, secretFile, publicFile])
    return { name, secretFile, publicFile, publicKey: await readFile(publicFile, 'utf8') }
  }

  /**
   * Evaluates and builds a Nix expression into a chroot store (`args` go to nix-build, e.g.
   * substituters); returns the output paths.
   */
  async build (storeRoot: string, expr: string, args: string[] = []): Promise<string[]> {
    const file = join(this.dir, `expr-${Math.random().toString(36).slice(2)}.nix`)
    await writeFile(file, expr)
    const { stdout } = await this.run('nix-build', ['--store', storeRoot, file, '--no-out-link', '--option', 'extra-sandbox-paths', SANDBOX_PATHS, ...args])
    return stdout.trim().split('\n').filter(l => l !== '')
  }

  /** All paths in the closure of `path` in that store. */
  async closure (storeRoot: string, path: string): Promise<string[]> {
    const { stdout } = await this.run('nix-store', ['--store', storeRoot, '-qR', path])
    return stdout.trim().split('\n').filter(l => l !== '')
  }

  async cleanup (): Promise<void> {
    // Nix makes store dirs read-only; make them writable again so they can be removed.
    await this.run('chmod', ['-R', 'u+w', this.dir]).catch(() => {})
    await rm(this.dir, { recursive: true, force: true })
  }
}

/**
 * A closure of three paths: a leaf (a file, an executable, a symlink, a nested dir, an empty
 * file), a middle path referring to the leaf, and a top path referring to both.
 */
export function sampleClosureExpr (tag = 'x'): string {
  return `
let
  sh = "/bin/sh";
  mk = name: script: builtins.derivation { inherit name; builder = sh; args = [ "-c" script ]; system = builtins.currentSystem; PATH = "/bin:/usr/bin"; };
  leaf = mk "leaf-${tag}" ''
    mkdir -p $out/a/b/c $out/empty-dir
    echo hi > $out/f
    : > $out/empty
    printf '#!/bin/sh\\necho run\\n' > $out/a/run.sh; chmod +x $out/a/run.sh
    echo deep > $out/a/b/c/deep
    ln -s f $out/link
    ln -s /nonexistent/target $out/a/dangling
    echo upper > $out/B; echo lower > $out/b
  '';
  mid = mk "mid-${tag}" ''mkdir $out; echo ${'$'}{leaf} > $out/ref'';
  top = mk "top-${tag}" ''mkdir $out; echo ${'$'}{leaf} ${'$'}{mid} > $out/refs; ln -s ${'$'}{mid}/ref $out/mid-ref'';
in top
`
}
