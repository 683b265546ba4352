// Logs (pino, the logger fastify uses), one line per lifecycle event. Fields
// are named after what they are: slot, lsn, table. JSON lines for machines;
// on a terminal, readable lines (pino-pretty) so that a newcomer's first
// screen is not a wall of JSON. WALCAST_LOG_FORMAT forces either.
import { pino, type Logger } from 'pino';
import pretty from 'pino-pretty';

export type { Logger };

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** `auto`: pretty when stdout is a terminal, JSON otherwise. */
export const LOG_FORMATS = ['auto', 'pretty', 'json'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

/** The format `auto` stands for on a stream that is (or is not) a terminal. */
export function resolveLogFormat(format: LogFormat, isTTY: boolean | undefined): 'pretty' | 'json' {
  if (format !== 'auto') return format;
  return isTTY ? 'pretty' : 'json';
}

export function createLogger(level: LogLevel, destination?: NodeJS.WritableStream, format: LogFormat = 'json'): Logger {
  const out = destination ?? process.stdout;
  const options = { level, base: { service: 'walcast' } };
  if (resolveLogFormat(format, (out as { isTTY?: boolean }).isTTY) === 'json') return pino(options, out);
  const colorize = (out as { isTTY?: boolean }).isTTY === true;
  // Synchronous, like pino's own destination: a line is out before a crash exits.
  return pino(
    options,
    pretty({ destination: out, sync: true, colorize, ignore: 'pid,hostname,service', translateTime: 'SYS:HH:MM:ss.l' }),
  );
}

/** A logger that drops everything, for tests that do not look at logs. */
export const silentLogger: Logger = pino({ level: 'silent' });
