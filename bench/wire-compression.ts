/**
 * zstd on the wire, where it pays: one NAR of real files (default /usr/lib/gcc) and one of
 * random bytes, from daemon A to the HTTP client of daemon B over a veth whose A side is
 * limited with tc tbf, at a few rates, with B's `--wire-compression off` and `zstd` (two B
 * daemons on host B, asked in turn), and `auto` (a third B, started afresh for each rate and
 * NAR and given two unrecorded NARs to measure the link and try zstd, so that its rows show
 * the choice it settled on). Prints a Markdown table of MiB/s (NAR bytes per second as the
 * client received them) and the wire bytes per NAR byte.
 *
 *   npm run build && npx tsx bench/wire-compression.ts [--dir /usr/lib/gcc] [--rates 40mbit,200mbit,1000mbit,unlimited] [--runs 2] [--random-mib 64]
 *
 * Needs root (network namespaces, tc), nix-bin and curl. Not part of the tests.
 */
import { existsSync } from 'node:fs'
import { loadavg } from 'node:os'
import { parseArgs } from 'node:util'
import { NixEnv } from '../test/helpers/nix.js'
import { Lab, type LabHost } from '../test/helpers/netns.js'
import { CLI, LabDaemons, type DaemonProcess } from '../test/helpers/daemon.js'
import { addRandomFile } from './stores.js'
import { formatTable, MiB, range, type Table } from './report.js'

const { values } = parseArgs({
  options: {
    dir: { type: 'string', default: '/usr/lib/gcc' },
    rates: { type: 'string', default: '40mbit,200mbit,1000mbit,unlimited' },
    runs: { type: 'string', default: '2' },
    'random-mib': { type: 'string', default: '64' }
  }
})
const rates = values.rates.split(',')
const runs = Number(values.runs)
const progress = (line: string): void => { process.stderr.write(`… ${line}\n`) }
const load = (): string => loadavg().map(l => l.toFixed(1)).join(' ')
const MODES = ['off', 'zstd'] as const
type Mode = typeof MODES[number] | 'auto'
/** NARs `auto` gets before its recorded ones: one to measure the link, one to try zstd. */
const AUTO_WARM_UP = 2

/** tbf needs a bucket of at least one timer tick of traffic to reach its rate: 10 ms of it, at least 64 kbit. */
function burstOf (rate: string): string {
  const bits = Number(/^(\d+)mbit$/.exec(rate)?.[1]) * 1e6
  if (!Number.isFinite(bits)) throw new Error(`--rates: ${JSON.stringify(rate)} is neither NNNmbit nor unlimited`)
  return `${Math.max(64, bits / 100 / 1000)}kbit`
}

async function setRate (lab: Lab, host: LabHost, rate: string): Promise<void> {
  await lab.exec(host, 'tc', ['qdisc', 'del', 'dev', host.dev, 'root']).catch(() => {})
  if (rate === 'unlimited') return
  await lab.exec(host, 'tc', ['qdisc', 'add', 'dev', host.dev, 'root', 'tbf', 'rate', rate, 'burst', burstOf(rate), 'latency', '50ms'])
}

interface Fetched { mibPerSecond: number, wirePerByte: number, zstd: boolean }

/**
 * The NAR of `path` through daemon `b`'s shim, read by curl on host B; the wire bytes from the
 * line B logs when it asked for zstd (before the NAR's last bytes: `auto` asked if it is there).
 */
async function fetchNar (lab: Lab, hostB: LabHost, b: DaemonProcess, mode: Mode, path: string, narSize: number): Promise<Fetched> {
  const hashPart = path.slice('/nix/store/'.length, '/nix/store/'.length + 32)
  const narinfo = (await lab.exec(hostB, 'curl', ['-sf', `${b.url}/${hashPart}.narinfo`])).stdout
  const url = /^URL: (\S+)$/m.exec(narinfo)?.[1]
  if (url === undefined) throw new Error(`no URL in B's narinfo for ${path}:\n${narinfo}`)
  const wireLine = new RegExp(`nar ${hashPart}: \\d+ bytes from peer \\S+ took (\\d+) on the wire`)
  const before = b.lines.filter(l => wireLine.test(l)).length
  const out = (await lab.exec(hostB, 'curl', ['-sf', '-o', '/dev/null', '-w', '%{size_download} %{time_total}', `${b.url}/${url}`])).stdout
  const [bytes, seconds] = out.trim().split(' ').map(Number)
  if (bytes !== narSize) throw new Error(`curl got ${bytes} of the NAR's ${narSize} bytes`)
  const logged = mode === 'auto' ? b.lines.filter(l => wireLine.test(l)).at(before) : mode === 'zstd' ? await b.waitFor(wireLine, 10_000, before + 1) : undefined
  const wire = logged === undefined ? narSize : Number(wireLine.exec(logged)?.[1])
  return { mibPerSecond: bytes / MiB / seconds, wirePerByte: wire / narSize, zstd: logged !== undefined }
}

async function main (): Promise<void> {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build\` first`)
  console.log(`# zstd on the wire — ${new Date().toISOString()}, node ${process.version}, load average at start ${load()}\n`)
  const nix = await NixEnv.create('peerix-bench-zstd-')
  const lab = await Lab.create(2)
  const daemons = new LabDaemons()
  try {
    const [hostA, hostB] = lab.hosts
    const rootA = nix.storeRoot('hostA')
    progress(`adding ${values.dir} and ${values['random-mib']} MiB of random bytes to A's store`)
    const real = (await nix.run('nix-store', ['--store', rootA, '--add', values.dir])).stdout.trim()
    const random = await addRandomFile(nix, rootA, Number(values['random-mib']) * MiB)
    const sizeOf = async (path: string): Promise<number> => Number((await nix.run('nix-store', ['--store', rootA, '-q', '--size', path])).stdout.trim())
    const paths = [{ label: `NAR of ${values.dir}`, path: real, narSize: await sizeOf(real) }, { label: 'random bytes', path: random, narSize: await sizeOf(random) }]

    const { secretFile: skA, publicKey: pkA } = await nix.generateKey('bench-a-1')
    await daemons.start(lab, hostA, nix, ['--store-root', rootA, '--signing-key-file', skA, '--serve', 'all', '--no-mdns'])
    let bsStarted = 0
    const startB = async (mode: Mode): Promise<DaemonProcess> => {
      const i = bsStarted++
      const b = await daemons.start(lab, hostB, nix, ['--store-root', await nix.initStore(`hostB-${mode}-${i}`), '--trusted-public-keys', pkA, '--no-mdns',
        '--listen', `127.0.0.1:${12304 + 10 * i}`, '--p2p-listen', `/ip4/0.0.0.0/tcp/${12305 + 10 * i}`,
        '--peer', `/ip4/${hostA.ip}/tcp/12305`, '--wire-compression', mode])
      await b.waitFor(/peer found/)
      return b
    }
    const bs = {} as Record<typeof MODES[number], DaemonProcess>
    for (const mode of MODES) bs[mode] = await startB(mode)

    const rows: string[][] = []
    for (const { label, path, narSize } of paths) {
      for (const rate of label === 'random bytes' ? rates.slice(-1) : rates) {
        await setRate(lab, hostA, rate)
        const got: Record<Mode, Fetched[]> = { off: [], zstd: [], auto: [] }
        const auto = await startB('auto')
        for (let i = 0; i < AUTO_WARM_UP; i++) await fetchNar(lab, hostB, auto, 'auto', path, narSize)
        for (let run = 0; run < runs; run++) {
          for (const [mode, b] of [...MODES.map(m => [m, bs[m]] as const), ['auto', auto] as const]) {
            progress(`${label}, ${rate}, ${mode}, run ${run + 1}/${runs}`)
            got[mode].push(await fetchNar(lab, hostB, b, mode, path, narSize))
          }
        }
        await auto.stop()
        const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length
        rows.push([
          `${label} (${(narSize / MiB).toFixed(0)} MiB)`, rate,
          range(got.off.map(f => f.mibPerSecond), 1), range(got.zstd.map(f => f.mibPerSecond), 1),
          range(got.zstd.map(f => f.wirePerByte), 3),
          (mean(got.zstd.map(f => f.mibPerSecond)) / mean(got.off.map(f => f.mibPerSecond))).toFixed(2),
          range(got.auto.map(f => f.mibPerSecond), 1), `${got.auto.filter(f => f.zstd).length} of ${runs}`
        ])
      }
    }
    await setRate(lab, hostA, 'unlimited')
    const table: Table = {
      title: 'NAR throughput through B\'s shim, A → B over a tbf-limited veth',
      columns: ['NAR', 'link (A → B)', 'off MiB/s', 'zstd MiB/s', 'zstd wire bytes / NAR byte', 'zstd ÷ off (mean)', 'auto MiB/s', 'auto asked zstd'],
      rows,
      notes: [
        `${runs} runs of each, off, zstd and auto in turn; MiB/s = NAR bytes / curl's time_total on host B.`,
        `auto: a fresh daemon per row, after ${AUTO_WARM_UP} NARs not recorded (one measures the link, one tries zstd where the link is in the trial zone).`,
        'tbf on A\'s side of the veth (rate, burst 10 ms of it, latency 50 ms); "unlimited": no qdisc.',
        `load average at the end ${load()}`
      ]
    }
    console.log(formatTable(table))
  } finally {
    await daemons.stopAll()
    await lab.cleanup()
    await nix.cleanup()
  }
}

await main()
