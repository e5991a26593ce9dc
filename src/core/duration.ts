import { ErrorCodes, FedgateError } from './errors.js';

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const DURATION = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)/;

/**
 * Parses Go-style durations (`500ms`, `30s`, `1h30m`, `90d`) to milliseconds. Bare numbers are
 * refused on purpose: "timeout: 5" is ambiguous between seconds and milliseconds.
 */
export function parseDuration(text: string): number {
  const input = text.trim();
  if (input === '') throw new FedgateError(ErrorCodes.DURATION_INVALID, 'empty duration');
  if (input === '0') return 0;
  let rest = input;
  let total = 0;
  while (rest.length > 0) {
    const match = DURATION.exec(rest);
    if (!match) {
      throw new FedgateError(ErrorCodes.DURATION_INVALID, `invalid duration "${text}" (use e.g. 500ms, 30s, 5m, 1h30m, 7d)`);
    }
    total += Number(match[1]) * (UNIT_MS[match[2] as string] as number);
    rest = rest.slice(match[0].length);
  }
  return Math.round(total);
}

/** The shortest readable form of a millisecond count (`90000` → `1m30s`). */
export function formatDuration(ms: number): string {
  if (ms === 0) return '0s';
  if (ms < 1000) return `${ms}ms`;
  const parts: string[] = [];
  let rest = ms;
  for (const [unit, size] of [['d', 86_400_000], ['h', 3_600_000], ['m', 60_000], ['s', 1000]] as const) {
    if (rest >= size) {
      const count = Math.floor(rest / size);
      parts.push(`${count}${unit}`);
      rest -= count * size;
    }
  }
  if (rest > 0) parts.push(`${rest}ms`);
  return parts.join('');
}
