/** A responder's wait between two exchanges on one stream. */
import { timeLimit } from './deadline.js'
import type { StreamReader } from './stream-reader.js'

/**
 * True once the first byte of the requester's next request arrived; false when the requester
 * closed its write side (it is done with the stream) or sent nothing for `keepAlive` ms.
 * Throws when the stream is reset.
 */
export async function nextRequest (reader: StreamReader, keepAlive: number): Promise<boolean> {
  const timer = timeLimit(keepAlive)
  try {
    return await reader.hasMore({ signal: timer.signal })
  } catch (err) {
    if (timer.expired) return false
    throw err
  } finally {
    timer.clear()
  }
}
