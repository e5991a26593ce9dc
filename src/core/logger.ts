import { pino, type DestinationStream, type Logger as PinoLogger } from 'pino';

/** The logger every component receives; a pino logger, so `child({ component })` is cheap. */
export type Logger = PinoLogger;

/**
 * Where a log call's value for a key that is already bound goes (see oneValuePerKey): the bound
 * value keeps the key, the call's value is kept under `conflicting.<key>`.
 */
export const CONFLICTING_KEY = 'conflicting';

/** Keys pino writes itself on every line (level and time always; msg when a message is given). */
const WRITTEN_BY_PINO = new Set(['level', 'time', 'hostname']);

const BOUND = Symbol('fedgate.log.bound');

type Bound = ReadonlyMap<string, unknown>;

function boundOf(logger: unknown): Bound {
  return ((logger as Record<symbol, Bound | undefined>)[BOUND] ?? new Map()) as Bound;
}

function sameValue(a: unknown, b: unknown): boolean {
  if (Object.is(a, b)) return true;
  if (a === null || b === null || typeof a !== 'object' || typeof b !== 'object') return false;
  try {
    return JSON.stringify(a) === JSON.stringify(b);
  } catch {
    return false;
  }
}

/**
 * One value per key on every line. pino writes bindings and the log call's object as they come,
 * so `cluster` bound at the root and given again by a call (`log.warn({ cluster: peer }, …)`)
 * appears twice on one line, and jq and most pipelines keep the last one: the event is attributed
 * to the wrong cluster. Here a key already bound keeps its bound value (it names the process or
 * component that logs); the call's value, when different, is kept under `conflicting.<key>`; an
 * equal value is dropped. Keys pino writes itself are never overwritten either.
 */
export function oneValuePerKey(bound: Bound, args: unknown[]): unknown[] {
  const first = args[0];
  if (first === null || typeof first !== 'object' || first instanceof Error || Array.isArray(first)) return args;
  const object = first as Record<string, unknown>;
  let out: Record<string, unknown> | undefined;
  let conflicting: Record<string, unknown> | undefined;
  const withMessage = typeof args[1] === 'string';
  for (const key of Object.keys(object)) {
    const taken = bound.has(key) || WRITTEN_BY_PINO.has(key) || key === CONFLICTING_KEY || (key === 'msg' && withMessage);
    if (!taken) continue;
    out ??= { ...object };
    delete out[key];
    const value = object[key];
    if (value === undefined || (bound.has(key) && sameValue(bound.get(key), value))) continue;
    conflicting ??= {};
    conflicting[key] = value;
  }
  if (!out) return args;
  if (conflicting) out[CONFLICTING_KEY] = conflicting;
  return [out, ...args.slice(1)];
}

/**
 * Gives a logger (and, through the prototype chain pino builds children with, every logger derived
 * from it) a child() that never binds a key twice: a binding already present with the same value
 * is dropped, one with a different value is refused (the first value stays, and the refusal is
 * logged once per child, so the defect is seen without losing the line's attribution).
 */
function guardBindings(root: PinoLogger, initial: Bound): void {
  (root as unknown as Record<symbol, Bound>)[BOUND] = initial;
  const pinoChild = root.child;
  const child = function (this: PinoLogger, bindings: Record<string, unknown>, options?: Parameters<PinoLogger['child']>[1]): PinoLogger {
    const bound = boundOf(this);
    const kept: Record<string, unknown> = {};
    const refused: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(bindings ?? {})) {
      if (bound.has(key) || WRITTEN_BY_PINO.has(key) || key === CONFLICTING_KEY || key === 'msg') {
        if (!bound.has(key) || !sameValue(bound.get(key), value)) refused[key] = value;
        continue;
      }
      kept[key] = value;
    }
    const instance = pinoChild.call(this, kept, options) as unknown as PinoLogger;
    (instance as unknown as Record<symbol, Bound>)[BOUND] = new Map([...bound, ...Object.entries(kept)]);
    if (Object.keys(refused).length > 0) instance.warn({ refusedBindings: refused }, 'log binding refused: the key is already bound to another value');
    return instance;
  };
  Object.defineProperty(root, 'child', { value: child, writable: true, configurable: true });
}

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

/**
 * Made once per process in `bin/`; everything else takes a child of it. Every line it and its
 * children write has one value per key (see oneValuePerKey).
 */
export function createRootLogger(options: RootLoggerOptions = {}): Logger {
  const level = options.level ?? process.env.FEDGATE_LOG_LEVEL ?? 'info';
  const base = { pid: process.pid, ...(options.base ?? {}) };
  const logger = pino(
    {
      level,
      name: options.name,
      base,
      redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      hooks: {
        logMethod(args, method) {
          method.apply(this, oneValuePerKey(boundOf(this), args) as Parameters<typeof method>);
        },
      },
    },
    options.destination ?? pino.destination({ dest: 2, sync: false }),
  );
  guardBindings(logger, new Map<string, unknown>([...Object.entries(base), ...(options.name !== undefined ? [['name', options.name] as const] : [])]));
  return logger;
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
