/**
 * One line per event on stderr: `<level> <message>`, no colour (journald adds timestamps).
 * Peer IDs are shortened by the callers with `shortPeer`. Messages carry text from peers
 * (refusal reasons, errors): control characters are escaped so one event stays one line and
 * a peer cannot forge log lines.
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
    ? (msg: string) => { write(`${l} ${oneLine(msg)}`) }
    : () => {}
  return { error: at('error'), warn: at('warn'), info: at('info'), debug: at('debug') }
}

/** `msg` with newlines and other control characters (tab aside) written as escapes. */
export function oneLine (msg: string): string {
  return msg.replace(/[\u0000-\u0008\u000a-\u001f\u007f]/g, c => c === '\n' ? '\\n' : c === '\r' ? '\\r' : `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`)
}

/** A logger that drops everything (library defaults, tests). */
export const silentLogger: Logger = createLogger('error', () => {})

/** The last 8 characters of a peer ID: enough to tell a home lab's hosts apart in a log. */
export function shortPeer (peerId: string): string {
  return peerId.length > 12 ? `…${peerId.slice(-8)}` : peerId
}
