/**
 * A benchmark host: a child process that runs real peerix daemons (`startDaemon`, configured
 * from the same flags as `peerix daemon`) and, on the same libp2p nodes, the bench-only
 * transfers the NAR benchmark compares the shim with. Driven over Node's IPC channel by
 * `BenchHost` (bench/host-client.ts); one process per simulated machine, so daemons and the
 * benchmark client do not share an event loop.
 */
import '../src/polyfill.js'
import { peerIdFromString } from '@libp2p/peer-id'
import { configFromFlags, daemonCommand } from '../src/cli/daemon.js'
import { startDaemon, type Daemon } from '../src/daemon/index.js'
import { createLogger } from '../src/log.js'
import { handleBenchProtocols, pullBytes, pullNarChunks } from './p2p-transfers.js'
import { listenTcpSource, pullTcp } from './tcp-transfer.js'
import { listenBareRelay } from './bare-relay.js'
import { handleFileProtocol, listenFileRelay } from './file-relay.js'
import { listenAbsentServer, narinfoLatencies } from './narinfo-requests.js'
import type { HostReply, HostRequest } from './host-protocol.js'

const daemons: Daemon[] = []
const tcpServers: Array<{ close: () => void }> = []

/** Parses `peerix daemon` flags with the real command, then starts the daemon here. */
async function start (args: string[]): Promise<Daemon> {
  let started: Promise<Daemon> | undefined
  const command = daemonCommand().exitOverride().action((flags: Parameters<typeof configFromFlags>[0]) => {
    const config = configFromFlags(flags)
    started = startDaemon(config, createLogger(config.logLevel))
  })
  await command.parseAsync(args, { from: 'user' })
  if (started === undefined) throw new Error(`peerix daemon ${args.join(' ')}: did not start`)
  const daemon = await started
  await handleBenchProtocols(daemon.node)
  await handleFileProtocol(daemon.node)
  daemons.push(daemon)
  return daemon
}

function daemonAt (index: number): Daemon {
  const daemon = daemons[index]
  if (daemon === undefined) throw new Error(`no daemon #${index} in this host`)
  return daemon
}

async function answer (req: HostRequest): Promise<unknown> {
  switch (req.op) {
    case 'start': {
      const d = await start(req.args)
      return { index: daemons.length - 1, peerId: d.peerId, url: `http://127.0.0.1:${d.httpAddress.port}`, addrs: d.node.getMultiaddrs().map(String) }
    }
    case 'peers':
      return daemonAt(req.daemon).node.getPeers().length
    case 'stop-daemon': {
      const d = daemonAt(req.daemon)
      await d.stop()
      return null
    }
    case 'pull-bytes':
      return await pullBytes(daemonAt(req.daemon).node, peerIdFromString(req.peer), req.bytes, req.sendChunk)
    case 'pull-nar-chunks':
      return await pullNarChunks(daemonAt(req.daemon).node, peerIdFromString(req.peer), req.file, req.writerChunk, req.sendChunk)
    case 'pull-nar': {
      const t0 = process.hrtime.bigint()
      const answer = await daemonAt(req.daemon).node.services.nar.fetch(peerIdFromString(req.peer), req.hashPart, req.narHash, 0)
      if (answer.status !== 'found') throw new Error(`/peerix/nar/1 answered ${answer.status}: ${JSON.stringify(answer)}`)
      let bytes = 0
      for await (const chunk of answer.value) bytes += chunk.byteLength
      return { bytes, seconds: Number(process.hrtime.bigint() - t0) / 1e9 }
    }
    case 'tcp-listen': {
      const server = await listenTcpSource()
      tcpServers.push(server)
      return server.port
    }
    case 'pull-tcp':
      return await pullTcp(req.port, req.bytes)
    case 'narinfo-latencies':
      return await narinfoLatencies(req.baseUrl, req.hashes, req.rounds, req.missesOnly, req.missUrl)
    case 'bare-relay': {
      const server = await listenBareRelay(daemonAt(req.daemon).node, peerIdFromString(req.peer))
      tcpServers.push(server)
      return server.url
    }
    case 'file-relay': {
      const server = await listenFileRelay(daemonAt(req.daemon).node, peerIdFromString(req.peer), req.dir, req.pullAll)
      tcpServers.push(server)
      return server.url
    }
    case 'absent-http': {
      const server = await listenAbsentServer()
      tcpServers.push(server)
      return server.url
    }
  }
}

process.on('message', (msg: HostRequest) => {
  const reply = (r: HostReply): void => { process.send?.(r) }
  answer(msg).then(
    (value) => { reply({ id: msg.id, ok: true, value }) },
    (err: unknown) => { reply({ id: msg.id, ok: false, error: err instanceof Error ? (err.stack ?? err.message) : String(err) }) }
  )
})

// The parent going away (even by SIGKILL) closes the IPC channel: take the daemons down.
process.on('disconnect', () => {
  for (const s of tcpServers) s.close()
  Promise.allSettled(daemons.map(async d => { await d.stop() })).finally(() => { process.exit(0) })
})
process.send?.({ id: 0, ok: true, value: 'ready' } satisfies HostReply)
