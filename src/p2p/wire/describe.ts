/** A short, single-line description of an error, for logs and for ERROR messages to peers. */
export function describe (err: unknown): string {
  const text = err instanceof Error ? err.message : String(err)
  const line = text.split('\n', 1)[0]
  return line.length > 300 ? `${line.slice(0, 300)}…` : line
}
