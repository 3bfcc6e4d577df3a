/** The benchmark's HTTP client: timed GETs over one kept-alive connection, bodies discarded. */
import { Agent, request } from 'node:http'

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
