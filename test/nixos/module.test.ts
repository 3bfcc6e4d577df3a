/**
 * The NixOS module, the flake and README's NixOS section, as far as a machine without nixpkgs or
 * KVM can check them (the two-VM test in nixos/tests runs in `nix flake check`): every .nix file
 * parses; the flake's outputs are all there (test/nixos/eval-flake.nix, a stand-in nixpkgs);
 * README documents exactly the module's options; the module, evaluated by real Nix with a
 * stand-in lib (test/nixos/eval-module.nix), accepts the original Peerix setup block unchanged and
 * produces a command line `peerix daemon` accepts and a unit systemd accepts; the npm lock helper
 * gives each package the URL npm itself fetched it from.
 */
import '../../src/polyfill.js'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { chmod, mkdir, readdir, readFile, writeFile } from 'node:fs/promises'
import { join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { configFromFlags, daemonCommand } from '../../src/cli/daemon.js'
import { NixEnv } from '../helpers/nix.js'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))
const EVAL_MODULE = join(ROOT, 'test/nixos/eval-module.nix')
const CREDENTIALS_DIR = '/run/credentials/peerix.service'
/** A real public key (the daemon checks them); the original's example keys are not valid base64. */
const PEER_KEY = 'peerix-desktop-1:Bpp8jlpnNLHsgTffqEtZ9zHzRATHK8AYQdnbxGivbHg='

/** The block from the most-read setup guide of the original Peerix, verbatim. */
const ORIGINAL_BLOCK = `services.peerix = {
  enable = true;
  package = peerix.packages.x86_64-linux.peerix;
  openFirewall = true;
  privateKeyFile = ./peerix-private;
  publicKeyFile = ./peerix-public;
  publicKey = "peerix-laptop:1ZjzxYFhzeRMni4CyK2uKHjgo6xy0= peerix-desktop:...";
};`

interface Service {
  description: string
  wantedBy: string[]
  wants: string[]
  after: string[]
  serviceConfig: Record<string, string | number | boolean | string[]>
}
interface Produced {
  warnings?: string[]
  environment?: { systemPackages: string[] }
  nix?: { settings: Record<string, unknown> }
  networking?: { firewall: { allowedTCPPorts: number[], allowedUDPPorts: number[] } }
  systemd?: { services: { peerix: Service } }
}
interface Evaluation { options: string[], config: Produced }

const run = promisify(execFile)

async function haveCommand (cmd: string): Promise<boolean> {
  return await run('sh', ['-c', `command -v ${cmd}`]).then(() => true, () => false)
}

async function nixFiles (dir: string): Promise<string[]> {
  const skip = new Set(['node_modules', '.git', 'dist', '.tmp'])
  const found: string[] = []
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    if (skip.has(entry.name)) continue
    const path = join(dir, entry.name)
    if (entry.isDirectory()) found.push(...await nixFiles(path))
    else if (entry.name.endsWith('.nix')) found.push(path)
  }
  return found
}

/** Option names in the options table of README's "## NixOS" section. */
function readmeOptions (readme: string): string[] {
  const start = readme.search(/^## NixOS\s*$/m)
  assert.ok(start >= 0, 'README.md has no "## NixOS" section')
  const rest = readme.slice(start + 1)
  const end = rest.search(/^## /m)
  const section = end >= 0 ? rest.slice(0, end) : rest
  return [...section.matchAll(/^\|\s*`services\.peerix\.([A-Za-z0-9]+)`/gm)].map(m => m[1])
}

/** ExecStart split the way systemd does for the forms the module writes: "JSON" and bare words. */
function execArgs (execStart: string): string[] {
  return [...execStart.matchAll(/"(?:[^"\\]|\\.)*"|\S+/g)].map(([token]) => {
    const word = token.startsWith('"') ? JSON.parse(token) as string : token.replaceAll('%d', CREDENTIALS_DIR)
    return word.replaceAll('%%', '%').replaceAll('$$', '$')
  })
}

/** What `peerix daemon` makes of the module's command line: unknown flags, and the validated config. */
function parseDaemonArgs (args: string[]): { unknown: string[], config: ReturnType<typeof configFromFlags> } {
  assert.equal(args[0], 'daemon')
  const command = daemonCommand().exitOverride()
  const { unknown } = command.parseOptions(args.slice(1))
  return { unknown, config: configFromFlags(command.opts()) }
}

/** The unit file NixOS would write for this service (lists as repeated keys, booleans spelt out). */
function renderUnit (service: Service): string {
  const line = (key: string, value: unknown): string => `${key}=${String(value)}`
  const many = (key: string, values: unknown): string[] => (Array.isArray(values) ? values : [values]).map(v => line(key, v))
  return [
    '[Unit]', line('Description', service.description), ...many('Wants', service.wants), ...many('After', service.after),
    '[Service]', ...Object.entries(service.serviceConfig).flatMap(([key, value]) => many(key, value)),
    '[Install]', ...many('WantedBy', service.wantedBy), ''
  ].join('\n')
}

describe('NixOS module, flake and README section', function () {
  this.timeout(60_000)
  let nix: NixEnv
  let stubDir: string
  let configs = 0

  before(async () => {
    nix = await NixEnv.create('peerix-nixos-')
    stubDir = join(nix.dir, 'stub')
    // Stand-ins for the package and the ExecStartPre script, so systemd-analyze finds executables.
    for (const file of ['peerix/bin/peerix', 'peerix-public-key']) {
      await mkdir(join(stubDir, file, '..'), { recursive: true })
      await writeFile(join(stubDir, file), '#!/bin/sh\n')
      await chmod(join(stubDir, file), 0o755)
    }
    await writeFile(join(nix.dir, 'peerix-private'), 'peerix-laptop:c2VjcmV0')
    await writeFile(join(nix.dir, 'peerix-public'), 'peerix-laptop:1ZjzxYFhzeRMni4CyK2uKHjgo6xy0=')
  })
  after(async () => { await nix.cleanup() })

  /** Evaluates the module for a configuration written as Nix text (files next to it: the key fixtures). */
  async function evaluate (configuration: string, { enableIPv6 = true } = {}): Promise<Evaluation> {
    const file = join(nix.dir, `configuration-${configs++}.nix`)
    const stubPackage = `{ type = "derivation"; name = "peerix"; outPath = "${stubDir}/peerix"; }`
    await writeFile(file, `let peerix = { packages.x86_64-linux.peerix = ${stubPackage}; }; in {\n${configuration}\n}\n`)
    const expr = `import ${EVAL_MODULE} { configuration = import ${file}; stubDir = "${stubDir}"; enableIPv6 = ${String(enableIPv6)}; }`
    const { stdout } = await nix.run('nix-instantiate', ['--eval', '--strict', '--json', '-E', expr])
    return JSON.parse(stdout) as Evaluation
  }

  function service (evaluation: Evaluation): Service {
    const svc = evaluation.config.systemd?.services.peerix
    assert.ok(svc !== undefined, 'the module defines no systemd.services.peerix')
    return svc
  }

  it('every .nix file in the repository parses', async () => {
    const files = await nixFiles(ROOT)
    const names = files.map(f => relative(ROOT, f))
    for (const expected of ['flake.nix', 'nixos/module.nix', 'nixos/package.nix', 'nixos/tests/peerix.nix']) {
      assert.ok(names.includes(expected), `${expected} is missing`)
    }
    for (const file of files) await nix.run('nix-instantiate', ['--parse', file])
  })

  it('the flake exposes packages, module, overlay, checks and dev shell for both Linux systems', async () => {
    const { stdout } = await nix.run('nix-instantiate', ['--eval', '--strict', '--json', join(ROOT, 'test/nixos/eval-flake.nix')])
    const flake = JSON.parse(stdout) as Record<string, unknown>
    const perSystem = (names: string[]): Record<string, string[]> => ({ 'aarch64-linux': names, 'x86_64-linux': names })
    assert.deepEqual(flake.packages, perSystem(['default', 'peerix']))
    assert.equal(flake.defaultIsPeerix, true)
    assert.deepEqual(flake.checks, perSystem(['package', 'vm']))
    assert.deepEqual(flake.devShells, perSystem(['default']))
    assert.deepEqual(flake.nixosModules, ['default', 'peerix'])
    assert.equal(flake.packageFile, join(ROOT, 'nixos/package.nix'))
    assert.equal(flake.overlay, join(ROOT, 'nixos/package.nix'))
    assert.deepEqual(flake.moduleImports, [join(ROOT, 'nixos/module.nix')])
    // The module defaults to the flake's own package where the flake builds one: no overlay needed.
    assert.deepEqual(flake.modulePackage, {
      'aarch64-linux': '/stub/aarch64-linux/peerix', 'x86_64-linux': '/stub/x86_64-linux/peerix', 'riscv64-linux': null
    })
    assert.deepEqual(flake.vmTest, { imports: [join(ROOT, 'nixos/tests/peerix.nix')], defaultsImport: ['/stub/x86_64-linux/peerix'] })
  })

  it('README documents exactly the options the module declares', async () => {
    const documented = readmeOptions(await readFile(join(ROOT, 'README.md'), 'utf8'))
    const { options } = await evaluate('services.peerix.enable = false;')
    assert.equal(new Set(documented).size, documented.length, `an option is listed twice in README: ${documented.join(', ')}`)
    assert.deepEqual([...documented].sort(), [...options].sort())
  })

  it('a disabled service changes nothing', async () => {
    assert.deepEqual((await evaluate('services.peerix.enable = false;')).config, {})
  })

  it('evaluates the original Peerix setup block unchanged, and warns that the key went into the store', async () => {
    const evaluation = await evaluate(ORIGINAL_BLOCK)
    const { serviceConfig } = service(evaluation)
    const settings = evaluation.config.nix?.settings ?? {}

    const warning = (evaluation.config.warnings ?? []).join('\n')
    assert.match(warning, new RegExp(`${join(nix.dir, 'peerix-private')}.*\\s+.*copied into the world-readable /nix/store`))
    assert.match(warning, /as a string/)
    // The path literal's contents reach systemd as a store path, the way Nix copies it.
    const [signingKey, publicKey, ...more] = serviceConfig.LoadCredential as string[]
    assert.match(signingKey, /^signing-key:\/nix\/store\/[0-9a-z]{32}-peerix-private$/)
    assert.match(publicKey, /^public-key:\/nix\/store\/[0-9a-z]{32}-peerix-public$/)
    assert.deepEqual(more, [])
    // publicKey's space-separated keys reach both Nix and the daemon.
    assert.deepEqual(settings['extra-trusted-public-keys'], ['peerix-laptop:1ZjzxYFhzeRMni4CyK2uKHjgo6xy0=', 'peerix-desktop:...'])
    const args = execArgs(String(serviceConfig.ExecStart))
    assert.equal(args[0], `${stubDir}/peerix/bin/peerix`)
    const keys = args[args.indexOf('--trusted-public-keys') + 1].split(' ')
    assert.ok(keys.includes('peerix-laptop:1ZjzxYFhzeRMni4CyK2uKHjgo6xy0=') && keys.includes('peerix-desktop:...'), keys.join(' '))
    assert.ok(keys.some(k => k.startsWith('cache.nixos.org-1:')), 'the daemon is not given the keys Nix already trusts')
    assert.deepEqual(args.slice(-2), ['--signing-key-file', `${CREDENTIALS_DIR}/signing-key`])

    assert.deepEqual(settings['extra-substituters'], ['http://127.0.0.1:12304'])
    assert.equal(settings.fallback, true)
    assert.ok(Number(settings['connect-timeout']) <= 10, `connect-timeout ${String(settings['connect-timeout'])}`)
    assert.ok(Number(settings['narinfo-cache-negative-ttl']) <= 300, 'Nix would remember a miss from peerix for too long')
    assert.deepEqual(evaluation.config.networking?.firewall, { allowedTCPPorts: [12305], allowedUDPPorts: [5353] })
    assert.deepEqual(evaluation.config.environment?.systemPackages, [`${stubDir}/peerix`])
  })

  it('reads a privateKeyFile string through LoadCredential without copying it or warning', async () => {
    const evaluation = await evaluate(`services.peerix = {
      enable = true;
      privateKeyFile = "/run/agenix/peerix";
      trustedPublicKeys = [ "peerix-desktop:1ZjzxYFhzeRMni4CyK2uKHjgo6xy0=" ];
    };`)
    const { serviceConfig } = service(evaluation)
    assert.deepEqual(evaluation.config.warnings, [])
    assert.deepEqual(serviceConfig.LoadCredential, ['signing-key:/run/agenix/peerix'])
    assert.ok(!String(serviceConfig.ExecStart).includes('/run/agenix'), 'the key path itself must not be on the command line')
    assert.equal(serviceConfig.ExecStartPre, undefined)
  })

  it('without a key, lets the daemon generate one in its state directory', async () => {
    const { serviceConfig } = service(await evaluate('services.peerix.enable = true;'))
    assert.deepEqual(serviceConfig.LoadCredential, [])
    assert.ok(!String(serviceConfig.ExecStart).includes('--signing-key-file'))
    assert.equal(serviceConfig.StateDirectory, 'peerix')
    assert.equal(serviceConfig.DynamicUser, true)
  })

  it('refuses a value of the wrong type, naming the option', async () => {
    await assert.rejects(evaluate('services.peerix = { enable = true; port = "12304"; };'), /services\.peerix\.port: a string is not a integer between 1 and 65535/)
    await assert.rejects(evaluate('services.peerix = { enable = true; trustedPublicKey = [ ]; };'), /no such option: trustedPublicKey/)
  })

  it('refuses at evaluation a number the daemon would refuse at every start', async () => {
    for (const [option, value, range] of [['priority', 5000, '0 and 1000'], ['timeout', 3600000, '1 and 600000'], ['timeout', 0, '1 and 600000'], ['port', 0, '1 and 65535'], ['p2pPort', 70000, '1 and 65535']] as const) {
      await assert.rejects(evaluate(`services.peerix = { enable = true; ${option} = ${value}; };`), new RegExp(`services\\.peerix\\.${option}: a int is not a integer between ${range}`))
    }
  })

  it('trusts a publicKeyFile given as a Nix path, as the original did; a string one is only logged, with a warning', async () => {
    const literal = await evaluate('services.peerix = { enable = true; publicKeyFile = ./peerix-public; };')
    assert.deepEqual(literal.config.nix?.settings['extra-trusted-public-keys'], ['peerix-laptop:1ZjzxYFhzeRMni4CyK2uKHjgo6xy0='])
    const args = execArgs(String(service(literal).serviceConfig.ExecStart))
    assert.ok(args[args.indexOf('--trusted-public-keys') + 1].split(' ').includes('peerix-laptop:1ZjzxYFhzeRMni4CyK2uKHjgo6xy0='))
    assert.deepEqual(literal.config.warnings, [])
    const string = await evaluate('services.peerix = { enable = true; publicKeyFile = "/run/agenix/peerix.pub"; };')
    assert.deepEqual(string.config.nix?.settings['extra-trusted-public-keys'], [])
    assert.match((string.config.warnings ?? []).join('\n'), /publicKeyFile is the string \/run\/agenix\/peerix\.pub[\s\S]*only logged at start, not trusted/)
  })

  it('passes `peerix daemon` a command line it accepts, with the values configured', async () => {
    const peer = peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()
    const evaluation = await evaluate(`services.peerix = {
      enable = true;
      port = 12400;
      p2pPort = 12401;
      priority = 30;
      timeout = 2500;
      logLevel = "debug";
      wireCompression = "zstd";
      mdns = false;
      trustedPublicKeys = [ "${PEER_KEY}" ];
      trustedPeers = [ "${peer}" ];
      staticPeers = [ "/ip4/10.0.0.5/tcp/12305" ];
      privateKeyFile = "/run/agenix/peerix";
      extraArgs = [ "--store-root" "/" ];
    };`, { enableIPv6: false })
    const { unknown, config } = parseDaemonArgs(execArgs(String(service(evaluation).serviceConfig.ExecStart)).slice(1))
    assert.deepEqual(unknown, [])
    assert.deepEqual(config.listen, { host: '127.0.0.1', port: 12400 })
    assert.deepEqual(config.p2pListen, ['/ip4/0.0.0.0/tcp/12401'])
    assert.equal(config.priority, 30)
    assert.equal(config.timeoutMs, 2500)
    assert.equal(config.logLevel, 'debug')
    assert.equal(config.wireCompression, 'zstd')
    assert.equal(config.mdns, false)
    assert.deepEqual(config.trustedPeers, [peer])
    assert.deepEqual(config.peers, ['/ip4/10.0.0.5/tcp/12305'])
    assert.equal(config.signingKeyFile, `${CREDENTIALS_DIR}/signing-key`)
    assert.deepEqual(config.trustedPublicKeys, [
      'cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=',
      PEER_KEY
    ])

    const defaults = parseDaemonArgs(execArgs(String(service(await evaluate('services.peerix.enable = true;')).serviceConfig.ExecStart)).slice(1))
    assert.deepEqual(defaults.unknown, [])
    assert.deepEqual(defaults.config.p2pListen, ['/ip4/0.0.0.0/tcp/12305', '/ip6/::/tcp/12305'])
  })

  it('listens for peers only on the p2pListenAddresses named, IPv4 and IPv6', async () => {
    const evaluation = await evaluate('services.peerix = { enable = true; p2pPort = 12401; p2pListenAddresses = [ "100.64.0.5" "fd7a:115c:a1e0::5" ]; };')
    const { unknown, config } = parseDaemonArgs(execArgs(String(service(evaluation).serviceConfig.ExecStart)).slice(1))
    assert.deepEqual(unknown, [])
    assert.deepEqual(config.p2pListen, ['/ip4/100.64.0.5/tcp/12401', '/ip6/fd7a:115c:a1e0::5/tcp/12401'])
  })

  it('passes the serving policy options as flags `peerix daemon` accepts', async () => {
    const evaluation = await evaluate(`services.peerix = {
      enable = true;
      serve = "all";
      serveDeny = [ "*-secrets" "*.env" ];
      peersOnly = true;
    };`)
    const args = execArgs(String(service(evaluation).serviceConfig.ExecStart)).slice(1)
    assert.deepEqual(args.filter(a => a.startsWith('--serve') || a === '--peers-only'), ['--serve', '--serve-deny', '--serve-deny', '--peers-only'])
    assert.deepEqual(parseDaemonArgs(args).unknown, [])
  })

  it('writes a unit systemd accepts: no unknown or malformed directives', async function () {
    if (!await haveCommand('systemd-analyze')) this.skip()
    const svc = service(await evaluate(ORIGINAL_BLOCK))
    const unitDir = join(nix.dir, 'units')
    await mkdir(unitDir, { recursive: true })
    const unit = join(unitDir, 'peerix.service')
    await writeFile(unit, renderUnit(svc))
    const { stderr } = await run('systemd-analyze', ['verify', unit])
    const complaints = stderr.split('\n').filter(l => l.includes(unit))
    assert.deepEqual(complaints, [])
  })

  it('the VM test script is valid Python', async function () {
    if (!await haveCommand('python3')) this.skip()
    const { stdout } = await nix.run('nix-instantiate', ['--eval', '--strict', '--json', '-E',
      `(import ${join(ROOT, 'nixos/tests/peerix.nix')} { lib.mkForce = x: x; }).testScript`])
    const script = JSON.parse(stdout) as string
    assert.match(script, /subtest/)
    await nix.run('python3', ['-c', 'import ast, sys; ast.parse(sys.stdin.read())'], { input: script })
  })

  it('the npm lock helper gives each installed package the registry URL of its name and version', async () => {
    const expr = `map (p: { path = p; url = (l.packages.\${p}).resolved or null; }) (builtins.attrNames l.packages)`
    const { stdout } = await nix.run('nix-instantiate', ['--eval', '--strict', '--json', '-E',
      `let l = import ${join(ROOT, 'nixos/npm-lock.nix')} { lockFile = ${join(ROOT, 'package-lock.json')}; os = "${process.platform}"; cpu = "${process.arch}"; }; in ${expr}`])
    const resolved = new Map((JSON.parse(stdout) as Array<{ path: string, url: string | null }>).filter(e => e.url !== null).map(e => [e.path, e.url]))

    // npm's record of what it installed here, for this platform.
    const installed = JSON.parse(await readFile(join(ROOT, 'node_modules/.package-lock.json'), 'utf8')) as { packages: Record<string, { link?: boolean }> }
    const installedPaths = Object.keys(installed.packages).filter(p => installed.packages[p].link !== true)
    assert.deepEqual([...resolved.keys()].sort(), installedPaths.sort())
    for (const path of installedPaths) {
      const { name, version } = JSON.parse(await readFile(join(ROOT, path, 'package.json'), 'utf8')) as { name: string, version: string }
      assert.equal(resolved.get(path), `https://registry.npmjs.org/${name}/-/${name.split('/').pop() ?? name}-${version}.tgz`)
    }
  })
})
