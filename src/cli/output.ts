import { Option } from 'commander';
import { toYaml } from '../config/yaml-source.js';
import type { CliIo } from './io.js';

/** How a command prints what it found: for people, or as one JSON or YAML document for scripts. */
export type OutputFormat = 'text' | 'json' | 'yaml';

export const OUTPUT_FORMATS: readonly OutputFormat[] = ['text', 'json', 'yaml'];

/**
 * `-o, --output text|json|yaml`, the same on every command that prints data. Commander refuses any
 * other value as a usage error (exit 2) and lists the choices; completion offers them.
 */
export function outputOption(extra: readonly string[] = []): Option {
  return new Option('-o, --output <format>', 'output format').choices([...OUTPUT_FORMATS, ...extra]).default('text');
}

/** Prints `data` as JSON or YAML, or calls `text` for people. */
export function printResult(io: CliIo, format: string, data: unknown, text: () => void): void {
  if (format === 'json') io.out(JSON.stringify(data, null, 2));
  else if (format === 'yaml') io.out(toYaml(data).trimEnd());
  else text();
}
