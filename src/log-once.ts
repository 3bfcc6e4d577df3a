/**
 * Logs a line only the first time it is seen (within a bounded recent window). Nix asks for
 * the same narinfo several times per path, and a bad peer answers each time the same way; one
 * line per peer and problem is what an operator needs.
 */

export const DEFAULT_LOG_ONCE_LINES = 1000

export class LogOnce {
  private readonly seen = new Set<string>()

  constructor (private readonly log: (line: string) => void, private readonly maxLines = DEFAULT_LOG_ONCE_LINES) {}

  line (text: string): void {
    if (this.seen.has(text)) return
    this.seen.add(text)
    if (this.seen.size > this.maxLines) {
      const oldest = this.seen.values().next().value
      if (oldest !== undefined) this.seen.delete(oldest)
    }
    this.log(text)
  }
}
