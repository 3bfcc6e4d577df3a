/** Command-line options of the bench scripts. */

/**
 * Takes `name <number>` out of `args` (so what is left are the script's other arguments) and
 * returns the number, or `fallback` when the option is absent; throws naming a bad value.
 */
export function takeNumberOption (args: string[], name: string, fallback: number): number {
  const at = args.indexOf(name)
  if (at === -1) return fallback
  const [, text] = args.splice(at, 2)
  const value = Number(text)
  if (text === undefined || text.trim() === '' || !Number.isFinite(value) || value < 0) {
    throw new Error(`${name} takes a non-negative number, not ${text === undefined ? 'nothing' : JSON.stringify(text)}`)
  }
  return value
}
