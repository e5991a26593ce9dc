import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomicSync } from '../../core/atomic-file.js';
import { errorMessage } from '../../core/errors.js';
import { DEFAULT_TRUST_DOMAIN_ALIASES, gatewayDefaultsDocument, gatewayDefaultsShape, trustDomainAliasShape, type GatewayDefaults, type TrustDomainAliasConfig } from '../../config/federation-config.js';
import { arrayOf, deepFreeze, formatPath, type ShapeIssue } from '../../config/shape.js';

/** The federation-wide settings the controller sends (Sync), as this gateway last applied them. */
export interface FederationSettings {
  federation: string;
  defaults: GatewayDefaults;
  /** spec.trustDomainAliases: how principals of another mesh map onto member trust domains. */
  trustDomainAliases: readonly TrustDomainAliasConfig[];
}

const aliasesShape = arrayOf(trustDomainAliasShape);

/** Checks trust-domain aliases as federation.yaml has them. */
export function validateAliases(value: unknown): { aliases?: TrustDomainAliasConfig[]; problem?: string } {
  const issues: ShapeIssue[] = [];
  const aliases = aliasesShape.check(value, ['trustDomainAliases'], issues);
  if (!aliases) return { problem: issues.map((i) => `${formatPath(i.path)}: ${i.message}`).join('; ') };
  return { aliases };
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
    let saved: { version?: unknown; federation?: unknown; defaults?: unknown; trustDomainAliases?: unknown };
    try {
      saved = JSON.parse(readFileSync(file, 'utf8')) as typeof saved;
    } catch (error) {
      return { problem: `${file}: not valid JSON (${errorMessage(error)})` };
    }
    if (saved.version !== VERSION) return { problem: `${file}: version ${String(saved.version)} is not ${VERSION}` };
    if (typeof saved.federation !== 'string') return { problem: `${file}: federation: must be a string` };
    const { defaults, problem } = validateDefaults(saved.defaults);
    if (!defaults) return { problem: `${file}: ${problem}` };
    // A file from before aliases were kept has none: the federation's default until the controller says.
    const aliases = saved.trustDomainAliases === undefined ? { aliases: [...DEFAULT_TRUST_DOMAIN_ALIASES] } : validateAliases(saved.trustDomainAliases);
    if (!aliases.aliases) return { problem: `${file}: ${aliases.problem}` };
    return { settings: { federation: saved.federation, defaults, trustDomainAliases: aliases.aliases } };
  }

  /** Throws (with the file's path) when it cannot be written; the caller decides how loud to be. */
  save(settings: FederationSettings): void {
    const document = { version: VERSION, federation: settings.federation, defaults: gatewayDefaultsDocument(settings.defaults), trustDomainAliases: settings.trustDomainAliases };
    writeFileAtomicSync(this.file, `${JSON.stringify(document, null, 2)}\n`);
  }
}
