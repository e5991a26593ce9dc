import { pino, type DestinationStream, type Logger as PinoLogger } from 'pino';

/** The logger every component receives; a pino logger, so `child({ component })` is cheap. */
export type Logger = PinoLogger;

/**
 * Paths whose values must never reach a log line. Keys, tokens and passwords are redacted
 * wherever they appear one or two levels deep, which covers config objects and error details.
 */
export const REDACTED_PATHS = [
  'key',
  'privateKey',
  'token',
  'joinToken',
  'password',
  'secret',
  '*.key',
  '*.privateKey',
  '*.token',
  '*.joinToken',
  '*.password',
  '*.secret',
  '*.*.key',
  '*.*.privateKey',
  '*.*.token',
  '*.*.password',
  'req.headers.authorization',
  'headers.authorization',
];

export interface RootLoggerOptions {
  level?: string;
  name?: string;
  base?: Record<string, unknown>;
  destination?: DestinationStream;
}

/** Made once per process in `bin/`; everything else takes a child of it. */
export function createRootLogger(options: RootLoggerOptions = {}): Logger {
  const level = options.level ?? process.env.FEDGATE_LOG_LEVEL ?? 'info';
  return pino(
    {
      level,
      name: options.name,
      base: { pid: process.pid, ...(options.base ?? {}) },
      redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    options.destination ?? pino.destination({ dest: 2, sync: false }),
  );
}

/** A logger that drops everything; for library callers and tests that do not care. */
export function createSilentLogger(): Logger {
  return pino({ level: 'silent' });
}

/** Removes credentials from a URL before it is printed (`redis://user:secret@host` → `redis://user:***@host`). */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return url.replace(/\/\/([^:/@]+):[^@/]+@/, '//$1:***@');
  }
}
