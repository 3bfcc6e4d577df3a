/**
 * The daemon as the NixOS module runs it: the exact ExecStart argv and environment the module
 * produces (evaluated by real Nix, test/nixos/evaluate-module.ts), run by the built dist/cli.js
 * inside the unit's sandbox rebuilt without systemd (test/nixos/hardening.ts: an unlisted UID
 * with no capabilities, a read-only /nix and file system, a state directory the daemon creates,
 * credentials as LoadCredential hands them over, private /tmp and /dev, the unit's seccomp
 * filter). Two hosts in network namespaces keep the module's ports; the real Nix client on B
 * substitutes, with the module's Nix settings, what A built, also while Nix writes to A's store.
 */
import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { chown, mkdir, readdir, stat, writeFile } from 'node:fs/promises'
import { join, relative, resolve } from 'node:path'
import { NixEnv, SANDBOX_PATHS, sampleClosureExpr } from '../helpers/nix.js'
import { Lab, type LabHost } from '../helpers/netns.js'
import { CLI, DaemonProcess } from '../helpers/daemon.js'

/** The checkout that holds dist/cli.js, and a path in it as the sandbox sees it. */
const REPO = resolve(CLI, '..', '..')
const inSandbox = (hostPath: string): string => join(REPO_IN_SANDBOX, relative(REPO, hostPath))
import { evaluateModule, execStartArgv, nixOptions, type ModuleOutput } from './evaluate-module.js'
import { CREDENTIALS_DIRECTORY, REPO_IN_SANDBOX, sandboxArgs, type Sandbox, STATE_DIRECTORY, unaccounted, unitEnvironment } from './hardening.js'
import { buildSeccompExec } from './seccomp.js'

/** Unlisted UIDs in systemd's DynamicUser range (61184–65519), one per host, per test process. */
const UID_A = 61184 + (process.pid % 2000) * 2
const UID_B = UID_A + 1
/** Where A's secret key "is" on the NixOS host (privateKeyFile as a string, e.g. agenix). */
const KEY_PATH_ON_HOST = '/run/agenix/peerix-a'
const HOST_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'

interface Hardened { daemon: DaemonProcess, varLib: string }

/** Run by node inside the sandbox: what the process may do and see, as JSON. argv[1]: a file next to dist/. */
const PROBE = `
const fs = require('fs')
const status = fs.readFileSync('/proc/self/status', 'utf8')
const field = k => (status.match(new RegExp('^' + k + ':\\\\s*(\\\\S+)', 'm')) || [])[1]
const attempt = f => { try { f(); return 'ok' } catch (e) { return e.code ?? String(e.stderr).trim() } }
const write = p => attempt(() => { fs.writeFileSync(p, 'x'); fs.unlinkSync(p) })
console.log(JSON.stringify({
  uid: process.getuid(), gid: process.getgid(), groups: process.getgroups(),
  CapEff: field('CapEff'), CapBnd: field('CapBnd'), CapInh: field('CapInh'), NoNewPrivs: field('NoNewPrivs'), Seccomp: field('Seccomp'),
  umask: process.umask().toString(8),
  writes: { nixStore: write('/nix/store/probe'), nixDb: write('/nix/var/nix/db/probe'), etc: write('/etc/probe'),
    program: write(process.argv[1]), varLib: write('/var/lib/probe'), tmp: write('/tmp/probe') },
  tmp: fs.readdirSync('/tmp'), root: attempt(() => fs.readdirSync('/root')),
  otherProcesses: fs.readdirSync('/proc').filter(n => /^[0-9]+$/.test(n) && Number(n) !== process.pid).length,
  dev: fs.readdirSync('/dev').sort(),
  credentials: fs.readdirSync(process.env.CREDENTIALS_DIRECTORY),
  unshare: attempt(() => require('child_process').execFileSync('unshare', ['--user', 'true'], { stdio: 'pipe' })),
  env: Object.keys(process.env).sort()
}))
`

async function modeAndOwner (path: string): Promise<{ mode: string, uid: number }> {
  const st = await stat(path)
  return { mode: (st.mode & 0o777).toString(8), uid: st.uid }
}

describe('the daemon under the NixOS module\'s flags and systemd hardening', function () {
  this.timeout(300_000)
  let nix: NixEnv
  let lab: Lab
  let seccompExec: string
  let rootA: string
  let rootB: string
  let first: string
  let second: string
  let skA: string
  let pkA: string
  let moduleA: ModuleOutput
  let moduleB: ModuleOutput
  let a: Hardened
  let b: Hardened
  let nixBuild: ChildProcess | undefined

  before(async function () {
    if (process.getuid?.() !== 0) this.skip()
    assert.ok(existsSync(CLI), `${CLI} is missing: run \`npx tsc -p tsconfig.json\` first`)
    nix = await NixEnv.create('peerix-hardened-')
    rootA = nix.storeRoot('hostA')
    ;[first] = await nix.build(rootA, sampleClosureExpr('hardened-1'))
    ;[second] = await nix.build(rootA, sampleClosureExpr('hardened-2'))
    rootB = await nix.initStore('hostB')
    ;({ secretFile: skA, publicKey: pkA } = await nix.generateKey('peerix-hostA-1'))

    moduleB = await evaluateModule(nix, nix.dir, `services.peerix = { enable = true; trustedPublicKeys = [ "${pkA}" ]; };`)
    const seccomp = await buildSeccompExec(nix.dir, {
      SystemCallFilter: moduleB.serviceConfig.SystemCallFilter as string[],
      SystemCallErrorNumber: String(moduleB.serviceConfig.SystemCallErrorNumber),
      RestrictAddressFamilies: moduleB.serviceConfig.RestrictAddressFamilies as string[]
    })
    seccompExec = seccomp.program
    lab = await Lab.create(2)
  })

  after(async () => {
    nixBuild?.kill('SIGKILL')
    await Promise.all([a, b].map(async h => await h?.daemon.stop()))
    await lab?.cleanup()
    await nix?.cleanup()
  })

  /**
   * Runs the module's ExecStart for `module` in `host`'s namespace inside the sandbox: `nixDir`
   * becomes /nix, a fresh directory owned by `uid` becomes /var/lib, and LoadCredential's
   * sources are the test's files named in `secrets` (host path → file here).
   */
  async function sandboxFor (module: ModuleOutput, storeRoot: string, uid: number, secrets: Record<string, string>, varLib: string): Promise<Sandbox> {
    await mkdir(varLib, { mode: 0o700 })
    await chown(varLib, uid, uid)
    const credentials: Record<string, string> = {}
    for (const entry of module.serviceConfig.LoadCredential as string[]) {
      const [name, source] = [entry.slice(0, entry.indexOf(':')), entry.slice(entry.indexOf(':') + 1)]
      assert.ok(secrets[source] !== undefined, `LoadCredential ${entry}: the test has no file for ${source}`)
      credentials[name] = secrets[source]
    }
    return { nixDir: join(storeRoot, 'nix'), varLib, credentials, uid, seccompExec, repo: REPO }
  }

  async function startHardened (host: LabHost, module: ModuleOutput, storeRoot: string, uid: number, secrets: Record<string, string>): Promise<Hardened> {
    const { serviceConfig } = module
    const varLib = join(nix.dir, `var-lib-${uid}`)
    const sandbox = await sandboxFor(module, storeRoot, uid, secrets, varLib)
    const argv = execStartArgv(String(serviceConfig.ExecStart), CREDENTIALS_DIRECTORY)
    assert.equal(argv[0], join(nix.dir, 'stub/peerix/bin/peerix'))
    // The package's bin/peerix is node on dist/cli.js: the only part of the argv replaced.
    const command = [process.execPath, inSandbox(CLI), ...argv.slice(1)]
    const env = unitEnvironment(serviceConfig, 'peerix')
    const child = lab.spawn(host, 'unshare', sandboxArgs(sandbox, command, env), { env: { PATH: HOST_PATH } })
    const daemon = new DaemonProcess(child)
    try {
      await daemon.waitFor(/substituter on http/, 60_000)
    } catch (err) {
      await daemon.stop()
      throw err
    }
    return { daemon, varLib }
  }

  /** `nix-store --realise PATH` into a fresh store on `host`, with only the module's Nix settings added. */
  async function substituteOn (host: LabHost, module: ModuleOutput, path: string, dest: string): Promise<void> {
    await lab.exec(host, 'nix-store', ['--store', nix.storeRoot(dest), '--realise', path, ...nixOptions(module.nixSettings)], { env: nix.env })
  }

  async function assertHasClosure (dest: string, path: string): Promise<void> {
    assert.deepEqual((await nix.closure(nix.storeRoot(dest), path)).sort(), (await nix.closure(rootA, path)).sort())
    await nix.run('nix', ['store', 'verify', '--store', nix.storeRoot(dest), '--trusted-public-keys', pkA, '-r', path])
  }

  it('every directive of the unit is reproduced here or documented as not reproducible', async () => {
    const defaults = await evaluateModule(nix, nix.dir, 'services.peerix.enable = true;')
    assert.deepEqual(unaccounted(defaults.serviceConfig), [])
    assert.deepEqual(unaccounted(moduleB.serviceConfig), [])
  })

  it('the sandbox confines as the unit would: user, capabilities, seccomp, read-only /nix and system, private /tmp, /dev and /proc', async () => {
    const module = await evaluateModule(nix, nix.dir, `services.peerix = { enable = true; privateKeyFile = "${KEY_PATH_ON_HOST}"; };`)
    const sandbox = await sandboxFor(module, rootA, UID_A, { [KEY_PATH_ON_HOST]: skA }, join(nix.dir, 'var-lib-probe'))
    const program = inSandbox(join(CLI, '..', 'sandbox-probe'))
    const { stdout } = await lab.exec(lab.hosts[0], 'unshare', sandboxArgs(sandbox, [process.execPath, '-e', PROBE, program], unitEnvironment(module.serviceConfig, 'peerix')), { env: { PATH: HOST_PATH } })
    const seen = JSON.parse(stdout) as Record<string, unknown>
    assert.deepEqual(seen, {
      uid: UID_A,
      gid: UID_A,
      groups: [UID_A],
      CapEff: '0000000000000000',
      CapBnd: '0000000000000000',
      CapInh: '0000000000000000',
      NoNewPrivs: '1',
      Seccomp: '2',
      umask: '77',
      writes: { nixStore: 'EROFS', nixDb: 'EROFS', etc: 'EROFS', program: 'EROFS', varLib: 'ok', tmp: 'ok' },
      tmp: [],
      root: 'EACCES',
      otherProcesses: 0,
      dev: ['fd', 'full', 'null', 'pts', 'random', 'shm', 'stderr', 'stdin', 'stdout', 'tty', 'urandom', 'zero'],
      credentials: ['signing-key'],
      unshare: 'unshare: unshare failed: Operation not permitted',
      env: ['CREDENTIALS_DIRECTORY', 'HOME', 'LANG', 'LOGNAME', 'NODE_OPTIONS', 'PATH', 'SHELL', 'STATE_DIRECTORY', 'USER']
    })
  })

  it('B, with no key configured, creates its state directory and keys itself as an unprivileged user', async () => {
    assert.equal(moduleB.serviceConfig.StateDirectory, 'peerix')
    b = await startHardened(lab.hosts[1], moduleB, rootB, UID_B, {})
    await b.daemon.waitFor(new RegExp(`generated signing key ${STATE_DIRECTORY}/signing-key; public key: peerix-`))
    const state = join(b.varLib, 'peerix')
    assert.deepEqual(await modeAndOwner(state), { mode: '700', uid: UID_B })
    assert.deepEqual((await readdir(state)).sort(), ['peer-key', 'signing-key', 'signing-key.pub'])
    for (const file of ['peer-key', 'signing-key']) {
      assert.deepEqual(await modeAndOwner(join(state, file)), { mode: '600', uid: UID_B }, file)
    }
    // Only the state directory was written: the parent holds nothing else.
    assert.deepEqual(await readdir(b.varLib), ['peerix'])
  })

  it('A, with privateKeyFile as a string, signs with the credential and serves its read-only store to B\'s Nix', async () => {
    // B's peer ID exists only once B has created its identity: trusted as README tells.
    moduleA = await evaluateModule(nix, nix.dir, `services.peerix = {
      enable = true;
      privateKeyFile = "${KEY_PATH_ON_HOST}";
      trustedPeers = [ "${b.daemon.peerId}" ];
    };`)
    assert.deepEqual(moduleA.serviceConfig.LoadCredential, [`signing-key:${KEY_PATH_ON_HOST}`])
    assert.deepEqual(unaccounted(moduleA.serviceConfig), [])
    // No Nix process has the database open: A starts on the snapshot path (no WAL files).
    assert.equal(existsSync(join(rootA, 'nix/var/nix/db/db.sqlite-wal')), false)
    a = await startHardened(lab.hosts[0], moduleA, rootA, UID_A, { [KEY_PATH_ON_HOST]: skA })
    await a.daemon.waitFor(new RegExp(`signing key ${pkA.replaceAll('+', '\\+')}$`))
    assert.deepEqual(await readdir(join(a.varLib, 'peerix')), ['peer-key'])
    assert.ok(!a.daemon.lines.some(l => /generated signing key/.test(l)), 'A generated a key although one was configured')

    await b.daemon.waitFor(/peer found/, 60_000)
    await substituteOn(lab.hosts[1], moduleB, first, 'client-first')
    await assertHasClosure('client-first', first)
  })

  /** Polls B's substituter until it has a narinfo for `path`. */
  async function untilServed (host: LabHost, path: string): Promise<void> {
    const url = `http://127.0.0.1:12304/${path.slice('/nix/store/'.length, '/nix/store/'.length + 32)}.narinfo`
    for (let i = 0; i < 100; i++) {
      const { stdout } = await lab.exec(host, 'curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', url])
      if (stdout === '200') return
      await new Promise(resolve => setTimeout(resolve, 200))
    }
    assert.fail(`B's substituter never offered ${path}`)
  }

  it('A keeps serving while nix-build writes to its store, and serves what was built meanwhile', async () => {
    const expr = join(nix.dir, 'built-while-serving.nix')
    await writeFile(expr, `builtins.derivation { name = "built-while-serving"; builder = "/bin/sh"; system = builtins.currentSystem;
      args = [ "-c" "/bin/sleep 12; /bin/mkdir $out; echo ${String(Date.now())} > $out/f" ]; }`)
    nixBuild = spawn('nix-build', ['--store', rootA, expr, '--no-out-link', '--option', 'extra-sandbox-paths', SANDBOX_PATHS], { env: nix.env, stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    let errors = ''
    nixBuild.stdout?.on('data', (d: Buffer) => { out += d.toString() })
    nixBuild.stderr?.on('data', (d: Buffer) => { errors += d.toString() })
    const built = new Promise<string>((resolve, reject) => {
      nixBuild?.once('exit', (code) => { code === 0 ? resolve(out.trim()) : reject(new Error(`nix-build failed (${String(code)}): ${errors}`)) })
    })

    // The writer's WAL files exist: A now reads the live database through its read-only mount.
    const wal = join(rootA, 'nix/var/nix/db/db.sqlite-wal')
    for (let i = 0; i < 200 && !existsSync(wal) && nixBuild.exitCode === null; i++) await new Promise(resolve => setTimeout(resolve, 50))
    assert.ok(existsSync(wal), 'nix-build never opened A\'s database in WAL mode')
    await substituteOn(lab.hosts[1], moduleB, second, 'client-second')
    assert.equal(nixBuild.exitCode, null, 'the build ended before B\'s copy: nothing was read while Nix wrote')
    await assertHasClosure('client-second', second)

    const third = await built
    // A announces new paths in its store summary every --index-interval (2 s by default):
    // until B holds the update, B answers 404 at once, which Nix would remember for a minute.
    await untilServed(lab.hosts[1], third)
    await substituteOn(lab.hosts[1], moduleB, third, 'client-third')
    await assertHasClosure('client-third', third)
  })

  it('both stop cleanly on SIGTERM, as systemctl stop sends it', async () => {
    for (const host of [a, b]) {
      assert.equal(await host.daemon.stop(), 0, host.daemon.lines.join('\n'))
      assert.match(host.daemon.lines.at(-1) ?? '', /stopped/)
    }
  })
})
