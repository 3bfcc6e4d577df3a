/** Experiment: the bare relay floor hashing on its own thread (?thread) or inline, alternating. npx tsx bench/hash-thread-ab.ts [rounds] */
import { startNarPair } from './nar-pair.js'
import { curlDownload } from './http-client.js'
const MiB = 1 << 20
const rounds = Number(process.argv[2] ?? 4)
const pair = await startNarPair(1024 * MiB, 16 * MiB, () => {})
try {
  const { hostA, hostB, a, b, narSize } = pair
  const relayUrl = await hostB.bareRelay(b.index, a.peerId)
  const res: Record<string, string[]> = { inline: [], thread: [] }
  for (let r = 0; r <= rounds; r++) {
    for (const mode of (r % 2 === 0 ? ['inline', 'thread'] : ['thread', 'inline'])) {
      const before = [await hostA.cpuSeconds(), await hostB.cpuSeconds()]
      const got = await curlDownload(`${relayUrl}/${narSize}${mode === 'thread' ? '?thread' : ''}`)
      const cpuA = await hostA.cpuSeconds() - before[0], cpuB = await hostB.cpuSeconds() - before[1]
      if (got.bytes !== narSize) throw new Error('short')
      const line = `${(narSize / MiB / got.seconds).toFixed(0)} MiB/s (A ${cpuA.toFixed(2)} B ${cpuB.toFixed(2)} curl ${got.cpuSeconds.toFixed(2)})`
      if (r > 0) res[mode].push(line)
      console.log(r, mode, line)
    }
  }
} finally { await pair.stop() }
