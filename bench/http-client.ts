/** The benchmark's HTTP client: timed GETs over one kept-alive connection, bodies discarded. */
import { execFile } from 'node:child_process'
import { Agent, request } from 'node:http'
import { childrenCpuSeconds, TIMED_COMMAND } from './cpu.js'

export interface Response { status: number, body: string, ms: number, bytes: number }

export class HttpClient {
  private readonly agent = new Agent({ keepAlive: true, maxSockets: 1 })

  /**
   * GETs `url`; keeps the body as text only when `keepBody` (narinfos), else counts it.
   * `ms` runs from the request to the last byte.
   */
  async get (url: string, keepBody = true): Promise<Response> {
    const t0 = process.hrtime.bigint()
    return await new Promise((resolve, reject) => {
      const req = request(url, { agent: this.agent }, (res) => {
        const parts: Buffer[] = []
        let bytes = 0
        res.on('data', (chunk: Buffer) => {
          bytes += chunk.byteLength
          if (keepBody) parts.push(chunk)
        })
        res.on('end', () => {
          resolve({ status: res.statusCode ?? 0, body: Buffer.concat(parts).toString(), ms: Number(process.hrtime.bigint() - t0) / 1e6, bytes })
        })
        res.on('error', reject)
      })
      req.on('error', reject)
      req.end()
    })
  }

  close (): void {
    this.agent.destroy()
  }
}

export interface Download { status: number, bytes: number, seconds: number, cpuSeconds: number }

/**
 * GETs `url` with curl to /dev/null, as Nix fetches NARs (through libcurl): a Node client in
 * the benchmark's own process would take CPU from the daemons on a 2-core machine (measured:
 * a 512 MiB NAR through the shim at 142–251 MiB/s read by Node, 197–291 MiB/s by curl).
 * `seconds` is curl's own transfer time, `cpuSeconds` curl's user + system time.
 */
export async function curlDownload (url: string): Promise<Download> {
  const curl = ['curl', '-sS', '-o', '/dev/null', '-w', '%{http_code} %{size_download} %{time_total}\\n', url]
  const stdout = await new Promise<string>((resolve, reject) => {
    execFile('bash', ['-c', TIMED_COMMAND, 'curl-download', ...curl], (err, out, stderr) => {
      if (err != null) reject(new Error(`curl ${url}: ${stderr.trim() || err.message}`))
      else resolve(out)
    })
  })
  // curl's line, then `times`: the shell's user/system time, then its children's (curl's)
  const [status, bytes, seconds] = stdout.trim().split('\n')[0].split(' ').map(Number)
  return { status, bytes, seconds, cpuSeconds: childrenCpuSeconds(stdout) }
}
