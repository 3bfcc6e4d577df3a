/**
 * One line per event on stderr: `<level> <message>`, no colour (journald adds timestamps).
 * Peer IDs are shortened by the callers with `shortPeer`.
 */
export const LOG_LEVELS = ['error', 'warn', 'info', 'debug'] as const
export type LogLevel = typeof LOG_LEVELS[number]

export interface Logger {
  error: (msg: string) => void
  warn: (msg: string) => void
  info: (msg: string) => void
  debug: (msg: string) => void
}

export function createLogger (level: LogLevel = 'info', write: (line: string) => void = (line) => { process.stderr.write(line + '\n') }): Logger {
  const threshold = LOG_LEVELS.indexOf(level)
  const at = (l: LogLevel) => LOG_LEVELS.indexOf(l) <= threshold
    ? (msg: string) => { write(`${l} ${msg}`) }
    : () => {}
  return { error: at('error'), warn: at('warn'), info: at('info'), debug: at('debug') }
}

/** A logger that drops everything (library defaults, tests). */
export const silentLogger: Logger = createLogger('error', () => {})

/** The last 8 characters of a peer ID: enough to tell a home lab's hosts apart in a log. */
export function shortPeer (peerId: string): string {
  return peerId.length > 8 ? `…${peerId.slice(-8)}` : peerId
}
