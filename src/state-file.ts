/**
 * Files the daemon creates once in its state directory (its peer identity, a generated
 * signing key) and must never replace: their contents are what other hosts trust.
 */
import { randomBytes } from 'node:crypto'
import { link, unlink, writeFile } from 'node:fs/promises'

/**
 * Writes `data` to `file` unless it exists; false when another process created it first.
 * Written aside and linked into place: a crash never leaves a half-written file, and of two
 * processes starting at once on one state directory, one writes and both then read the same.
 */
export async function createOnce (file: string, data: string | Uint8Array, mode: number): Promise<boolean> {
  const temp = `${file}.${process.pid}-${randomBytes(4).toString('hex')}.tmp`
  await writeFile(temp, data, { mode, flush: true })
  try {
    await link(temp, file)
    return true
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false
    throw err
  } finally {
    await unlink(temp)
  }
}
