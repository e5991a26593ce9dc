import { parseDuration } from '../core/duration.js';
import { ErrorCodes, FedgateError } from '../core/errors.js';

/** A location inside a document: object keys and array indexes from the root. */
export type FieldPath = ReadonlyArray<string | number>;

export interface ShapeIssue {
  path: FieldPath;
  message: string;
  severity?: 'error' | 'warning';
}

/**
 * A validator that also describes its output type. `check` never throws: it records every problem
 * it finds (so a file's errors are reported together, as kuma's validators do) and returns the
 * converted value, or undefined when the value was unusable.
 */
export interface Shape<T> {
  readonly check: (value: unknown, path: FieldPath, issues: ShapeIssue[]) => T | undefined;
  /** Absent values are fine (and become `defaultValue`). */
  readonly optional: boolean;
  readonly defaultValue?: T;
  /** Builds the default when the field is absent (sections whose fields have their own defaults). */
  readonly defaultFactory?: () => T;
  /** Short human description for reference docs (`duration`, `integer 1..65535`). */
  readonly describe: string;
}

export type Infer<S> = S extends Shape<infer T> ? T : never;

export function formatPath(path: FieldPath): string {
  let out = '';
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else out += out === '' ? part : `.${part}`;
  }
  return out;
}

function typeName(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  if (typeof value === 'string') return 'a string';
  return `a ${typeof value}`;
}

function shape<T>(describe: string, check: Shape<T>['check']): Shape<T> {
  return { check, optional: false, describe };
}

/** Marks a field optional; with a default, the field is never undefined after validation. */
export function optional<T>(inner: Shape<T>): Shape<T | undefined>;
export function optional<T>(inner: Shape<T>, defaultValue: T): Shape<T>;
export function optional<T>(inner: Shape<T>, defaultValue?: T): Shape<T | undefined> {
  return { check: inner.check, optional: true, defaultValue, describe: inner.describe };
}

/** Adds a check of the converted value; the refinement returns a message when the value is wrong. */
export function refine<T>(inner: Shape<T>, rule: (value: T) => string | undefined): Shape<T> {
  return {
    ...inner,
    check(value, path, issues) {
      const result = inner.check(value, path, issues);
      if (result === undefined) return undefined;
      const problem = rule(result);
      if (problem !== undefined) {
        issues.push({ path, message: problem });
        return undefined;
      }
      return result;
    },
  };
}

export interface StringOptions {
  pattern?: RegExp;
  patternMessage?: string;
  minLength?: number;
  maxLength?: number;
}

export function str(options: StringOptions = {}): Shape<string> {
  return shape('string', (value, path, issues) => {
    if (typeof value !== 'string') {
      issues.push({ path, message: `must be a string, got ${typeName(value)}` });
      return undefined;
    }
    if (options.minLength !== undefined && value.length < options.minLength) {
      issues.push({ path, message: options.minLength === 1 ? 'must not be empty' : `must be at least ${options.minLength} characters` });
      return undefined;
    }
    if (options.maxLength !== undefined && value.length > options.maxLength) {
      issues.push({ path, message: `must be at most ${options.maxLength} characters` });
      return undefined;
    }
    if (options.pattern && !options.pattern.test(value)) {
      issues.push({ path, message: options.patternMessage ?? `must match ${options.pattern}` });
      return undefined;
    }
    return value;
  });
}

/** Lower-case DNS label, the shape of Kubernetes names and fedgate cluster names. */
export function dnsLabel(): Shape<string> {
  return str({
    pattern: /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/,
    patternMessage: 'must be a DNS label: lower-case letters, digits and "-", at most 63 characters, starting and ending with a letter or digit',
  });
}

export function bool(): Shape<boolean> {
  return shape('boolean', (value, path, issues) => {
    if (typeof value !== 'boolean') {
      issues.push({ path, message: `must be true or false, got ${typeName(value)}` });
      return undefined;
    }
    return value;
  });
}

export function num(options: { min?: number; max?: number; integer?: boolean } = {}): Shape<number> {
  const { min, max, integer } = options;
  const kind = integer ? 'an integer' : 'a number';
  const range = min !== undefined && max !== undefined ? ` between ${min} and ${max}` : min !== undefined ? ` >= ${min}` : max !== undefined ? ` <= ${max}` : '';
  return shape(`${integer ? 'integer' : 'number'}${range}`, (value, path, issues) => {
    if (typeof value !== 'number' || Number.isNaN(value) || (integer && !Number.isInteger(value))) {
      issues.push({ path, message: `must be ${kind}${range}, got ${typeName(value) === 'a number' ? value : typeName(value)}` });
      return undefined;
    }
    if ((min !== undefined && value < min) || (max !== undefined && value > max)) {
      issues.push({ path, message: `must be ${kind}${range}, got ${value}` });
      return undefined;
    }
    return value;
  });
}

export function int(options: { min?: number; max?: number } = {}): Shape<number> {
  return num({ ...options, integer: true });
}

export function port(): Shape<number> {
  return int({ min: 1, max: 65535 });
}

export function enumOf<const V extends string>(values: readonly V[]): Shape<V> {
  return shape(values.join(' | '), (value, path, issues) => {
    if (typeof value !== 'string' || !(values as readonly string[]).includes(value)) {
      issues.push({ path, message: `must be one of ${values.join(', ')}, got ${typeof value === 'string' ? `"${value}"` : typeName(value)}` });
      return undefined;
    }
    return value as V;
  });
}

export function literal<const V extends string>(expected: V): Shape<V> {
  return shape(`"${expected}"`, (value, path, issues) => {
    if (value !== expected) {
      issues.push({ path, message: `must be "${expected}", got ${typeof value === 'string' ? `"${value}"` : typeName(value)}` });
      return undefined;
    }
    return expected;
  });
}

/** A Go-style duration string (`500ms`, `30s`, `1h`), converted to milliseconds. */
export function duration(options: { min?: number; max?: number } = {}): Shape<number> {
  return shape('duration (e.g. 500ms, 30s, 5m, 1h)', (value, path, issues) => {
    if (typeof value !== 'string') {
      issues.push({ path, message: `must be a duration such as "500ms" or "30s", got ${typeName(value) === 'a number' ? `the number ${String(value)}` : typeName(value)}` });
      return undefined;
    }
    let ms: number;
    try {
      ms = parseDuration(value);
    } catch {
      issues.push({ path, message: `"${value}" is not a duration (use e.g. 500ms, 30s, 5m, 1h)` });
      return undefined;
    }
    if (options.min !== undefined && ms < options.min) {
      issues.push({ path, message: `must be at least ${options.min}ms, got ${value}` });
      return undefined;
    }
    if (options.max !== undefined && ms > options.max) {
      issues.push({ path, message: `must be at most ${options.max}ms, got ${value}` });
      return undefined;
    }
    return ms;
  });
}

/** `host:port` or `[ipv6]:port`. */
export function address(): Shape<string> {
  return shape('host:port', (value, path, issues) => {
    if (typeof value !== 'string') {
      issues.push({ path, message: `must be an address "host:port", got ${typeName(value)}` });
      return undefined;
    }
    const parsed = parseHostPort(value);
    if (!parsed) {
      issues.push({ path, message: `"${value}" is not an address of the form host:port (IPv6 as [::1]:port)` });
      return undefined;
    }
    return value;
  });
}

export function parseHostPort(value: string): { host: string; port: number } | undefined {
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([A-Za-z0-9.-]+)):(\d{1,5})$/.exec(value);
  if (!match) return undefined;
  const portNumber = Number(match[3]);
  if (portNumber < 0 || portNumber > 65535) return undefined;
  return { host: (match[1] ?? match[2]) as string, port: portNumber };
}

export function arrayOf<T>(item: Shape<T>, options: { minItems?: number; maxItems?: number; uniqueBy?: (value: T) => string; uniqueMessage?: string } = {}): Shape<T[]> {
  return shape(`list of ${item.describe}`, (value, path, issues) => {
    if (!Array.isArray(value)) {
      issues.push({ path, message: `must be a list, got ${typeName(value)}` });
      return undefined;
    }
    if (options.minItems !== undefined && value.length < options.minItems) {
      issues.push({ path, message: options.minItems === 1 ? 'must not be empty' : `must have at least ${options.minItems} items` });
      return undefined;
    }
    if (options.maxItems !== undefined && value.length > options.maxItems) {
      issues.push({ path, message: `must have at most ${options.maxItems} items, got ${value.length}` });
      return undefined;
    }
    const out: T[] = [];
    const seen = new Map<string, number>();
    let failed = false;
    value.forEach((element, index) => {
      const itemPath = [...path, index];
      const checked = item.check(element, itemPath, issues);
      if (checked === undefined) {
        failed = true;
        return;
      }
      if (options.uniqueBy) {
        const key = options.uniqueBy(checked);
        const first = seen.get(key);
        if (first !== undefined) {
          issues.push({ path: itemPath, message: options.uniqueMessage ? `${options.uniqueMessage} (same as [${first}])` : `duplicate of [${first}]` });
          failed = true;
          return;
        }
        seen.set(key, index);
      }
      out.push(checked);
    });
    return failed ? undefined : out;
  });
}

export function recordOf<T>(valueShape: Shape<T>, keyShape: Shape<string> = str({ minLength: 1 })): Shape<Record<string, T>> {
  return shape(`mapping of ${valueShape.describe}`, (value, path, issues) => {
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      issues.push({ path, message: `must be a mapping, got ${typeName(value)}` });
      return undefined;
    }
    const out: Record<string, T> = {};
    let failed = false;
    for (const [key, element] of Object.entries(value)) {
      if (keyShape.check(key, [...path, key], issues) === undefined) {
        failed = true;
        continue;
      }
      const checked = valueShape.check(element, [...path, key], issues);
      if (checked === undefined) failed = true;
      else out[key] = checked;
    }
    return failed ? undefined : out;
  });
}

export type ObjectFields = Record<string, Shape<unknown>>;
export type InferObject<F extends ObjectFields> = { [K in keyof F]: Infer<F[K]> };

/**
 * A mapping with known fields. Unknown fields are errors: a typo such as `retires:` must not be
 * silently ignored while the operator believes retries are configured.
 */
export function object<F extends ObjectFields>(fields: F, options: { allowUnknown?: boolean } = {}): Shape<InferObject<F>> {
  return shape('mapping', (value, path, issues) => {
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      issues.push({ path, message: `must be a mapping, got ${typeName(value)}` });
      return undefined;
    }
    const input = value as Record<string, unknown>;
    const out: Record<string, unknown> = {};
    let failed = false;
    if (!options.allowUnknown) {
      for (const key of Object.keys(input)) {
        if (!(key in fields)) {
          const known = Object.keys(fields);
          const hint = closest(key, known);
          issues.push({ path: [...path, key], message: hint ? `unknown field (did you mean "${hint}"?)` : `unknown field (known: ${known.join(', ')})` });
          failed = true;
        }
      }
    }
    for (const [key, fieldShape] of Object.entries(fields)) {
      const fieldValue = input[key];
      if (fieldValue === undefined || fieldValue === null) {
        if (fieldShape.optional) {
          out[key] = fieldShape.defaultFactory ? fieldShape.defaultFactory() : structuredCloneDefault(fieldShape.defaultValue);
        } else {
          issues.push({ path: [...path, key], message: 'required' });
          failed = true;
        }
        continue;
      }
      const checked = fieldShape.check(fieldValue, [...path, key], issues);
      if (checked === undefined) failed = true;
      else out[key] = checked;
    }
    return failed ? undefined : (out as InferObject<F>);
  });
}

/** An optional mapping whose absence means "all defaults", so `spec.gateway` may be left out entirely. */
export function section<F extends ObjectFields>(fields: F): Shape<InferObject<F>> {
  const inner = object(fields);
  return {
    ...inner,
    optional: true,
    defaultFactory: () => {
      const value = inner.check({}, [], []);
      if (value === undefined) throw new FedgateError(ErrorCodes.INTERNAL, 'section() used with a required field; give every field a default');
      return value;
    },
  };
}

/** Converts a validated value (e.g. a shorthand string into its long form). */
export function transform<T, U>(inner: Shape<T>, convert: (value: T) => U): Shape<U> {
  return shape(inner.describe, (value, path, issues) => {
    const checked = inner.check(value, path, issues);
    return checked === undefined ? undefined : convert(checked);
  });
}

/** Accepts either of two shapes (e.g. an endpoint as "10.0.0.1" or as { address, ready }). */
export function either<A, B>(first: Shape<A>, second: Shape<B>, pick: (value: unknown) => 'first' | 'second'): Shape<A | B> {
  return shape(`${first.describe} or ${second.describe}`, (value, path, issues) =>
    pick(value) === 'first' ? first.check(value, path, issues) : second.check(value, path, issues),
  );
}

function structuredCloneDefault<T>(value: T): T {
  return value === undefined || value === null || typeof value !== 'object' ? value : structuredClone(value);
}

/** The known name nearest to a typo, when it is near enough to be a useful hint. */
export function closest(input: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of candidates) {
    const d = editDistance(input.toLowerCase(), candidate.toLowerCase());
    if (d < bestDistance) {
      bestDistance = d;
      best = candidate;
    }
  }
  return best !== undefined && bestDistance <= Math.max(1, Math.floor(input.length / 3)) ? best : undefined;
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let previous = row[0] as number;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const current = row[j] as number;
      row[j] = Math.min((row[j] as number) + 1, (row[j - 1] as number) + 1, previous + (a[i - 1] === b[j - 1] ? 0 : 1));
      previous = current;
    }
  }
  return row[b.length] as number;
}

/** Recursively freezes a validated config so nothing downstream can change it by accident. */
export function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const inner of Object.values(value as Record<string, unknown>)) deepFreeze(inner);
  }
  return value;
}
