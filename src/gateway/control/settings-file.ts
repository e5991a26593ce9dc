import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomicSync } from '../../core/atomic-file.js';
import { errorMessage } from '../../core/errors.js';
import { gatewayDefaultsDocument, gatewayDefaultsShape, type GatewayDefaults } from '../../config/federation-config.js';
import { deepFreeze, formatPath, type ShapeIssue } from '../../config/shape.js';

/** The federation-wide settings the controller sends (Sync), as this gateway last applied them. */
export interface FederationSettings {
  federation: string;
  defaults: GatewayDefaults;
}

/** Checks a defaults document (durations as strings, as federation.yaml has them) and fills in what it leaves out. */
export function validateDefaults(value: unknown): { defaults?: GatewayDefaults; problem?: string } {
  const issues: ShapeIssue[] = [];
  const defaults = gatewayDefaultsShape.check(value, ['defaults'], issues);
  if (!defaults) return { problem: issues.map((i) => `${formatPath(i.path)}: ${i.message}`).join('; ') };
  return { defaults: deepFreeze(defaults) };
}

const VERSION = 1;

/**
 * settings.json: the federation's defaults (timeouts, retries, health checks, outlier detection)
 * kept across restarts, so that a gateway starting while the controller is away runs with the
 * federation's settings, not built-in ones. It is written in the document form the controller
 * sends and federation.yaml uses (durations as "250ms"), which is what it is read back with.
 */
export class SettingsFile {
  constructor(private readonly stateDir: string) {}

  get file(): string {
    return join(this.stateDir, 'settings.json');
  }

  /** The saved settings; undefined when none were saved. A damaged file is reported as a problem, never fatal. */
  load(): { settings?: FederationSettings; problem?: string } {
    const file = this.file;
    if (!existsSync(file)) return {};
    let saved: { version?: unknown; federation?: unknown; defaults?: unknown };
    try {
      saved = JSON.parse(readFileSync(file, 'utf8')) as typeof saved;
    } catch (error) {
      return { problem: `${file}: not valid JSON (${errorMessage(error)})` };
    }
    if (saved.version !== VERSION) return { problem: `${file}: version ${String(saved.version)} is not ${VERSION}` };
    if (typeof saved.federation !== 'string') return { problem: `${file}: federation: must be a string` };
    const { defaults, problem } = validateDefaults(saved.defaults);
    if (!defaults) return { problem: `${file}: ${problem}` };
    return { settings: { federation: saved.federation, defaults } };
  }

  /** Throws (with the file's path) when it cannot be written; the caller decides how loud to be. */
  save(settings: FederationSettings): void {
    writeFileAtomicSync(this.file, `${JSON.stringify({ version: VERSION, federation: settings.federation, defaults: gatewayDefaultsDocument(settings.defaults) }, null, 2)}\n`);
  }
}
