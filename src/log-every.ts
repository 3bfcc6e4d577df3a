/**
 * Logs one line per problem per interval, and how many more of it there were. A store that
 * fails (its database moved away, a disk error) fails every request a peer makes, and a peer
 * sending garbage can open stream after stream: one warning per request flooded the log with
 * thousands of lines a second where one a minute tells the operator as much.
 */
export const DEFAULT_LOG_INTERVAL_MS = 60_000
/** Problems remembered at once; the oldest is forgotten first (logged again when it recurs). */
const MAX_PROBLEMS = 1000

interface Problem { loggedAt: number, repeats: number }

export class LogEvery {
  readonly #problems = new Map<string, Problem>()

  constructor (
    private readonly log: (line: string) => void,
    private readonly repeat: (line: string) => void = () => {},
    private readonly intervalMs = DEFAULT_LOG_INTERVAL_MS
  ) {}

  /**
   * Logs `text` unless `problem` was logged in the last interval; a repeat goes to `repeat`
   * (the debug level) and is counted into the next line logged for that problem.
   */
  line (problem: string, text: string, now = Date.now()): void {
    const seen = this.#problems.get(problem)
    if (seen !== undefined && now - seen.loggedAt < this.intervalMs) {
      seen.repeats++
      this.repeat(text)
      return
    }
    const repeats = seen?.repeats ?? 0
    this.#problems.delete(problem)
    this.#problems.set(problem, { loggedAt: now, repeats: 0 })
    if (this.#problems.size > MAX_PROBLEMS) {
      const oldest = this.#problems.keys().next().value
      if (oldest !== undefined) this.#problems.delete(oldest)
    }
    this.log(repeats > 0 ? `${text} (and ${repeats} more like it since the last such line)` : text)
  }
}
