/**
 * Raw TCP between two benchmark hosts (node:net, no encryption, no muxer): the link's ceiling
 * on loopback. The client sends the byte count as a line; the server writes that many bytes
 * from memory with back-pressure and closes.
 */
import { createConnection, createServer, type AddressInfo } from 'node:net'
import type { Transfer } from './host-protocol.js'

const CHUNK = new Uint8Array(256 * 1024).fill(0x5a)

export async function listenTcpSource (): Promise<{ port: number, close: () => void }> {
  const server = createServer((socket) => {
    socket.once('data', (line) => {
      let left = Number(line.toString().trim())
      const pump = (): void => {
        while (left > 0) {
          const piece = left >= CHUNK.byteLength ? CHUNK : CHUNK.subarray(0, left)
          left -= piece.byteLength
          if (!socket.write(piece)) { socket.once('drain', pump); return }
        }
        socket.end()
      }
      pump()
    })
    socket.on('error', () => { socket.destroy() })
  })
  await new Promise<void>((resolve) => { server.listen(0, '127.0.0.1', resolve) })
  return { port: (server.address() as AddressInfo).port, close: () => { server.close() } }
}

export async function pullTcp (port: number, bytes: number): Promise<Transfer> {
  const t0 = process.hrtime.bigint()
  return await new Promise((resolve, reject) => {
    let got = 0
    const socket = createConnection({ port, host: '127.0.0.1' }, () => { socket.write(`${bytes}\n`) })
    socket.on('data', (data) => { got += data.byteLength })
    socket.on('error', reject)
    socket.on('end', () => {
      if (got !== bytes) reject(new Error(`raw TCP: got ${got} of ${bytes} bytes`))
      else resolve({ bytes: got, seconds: Number(process.hrtime.bigint() - t0) / 1e9 })
    })
  })
}
