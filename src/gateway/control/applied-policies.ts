import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { writeFileAtomicSync } from '../../core/atomic-file.js';
import { join } from 'node:path';
import { errorMessage } from '../../core/errors.js';
import type { Logger } from '../../core/logger.js';
import type { PolicyRecord } from '../../model/catalog.js';
import { compileForGateway, type GatewayPolicyLimits } from '../../policy/policy-set.js';
import { PolicyIndex } from '../../policy/resolve.js';
import type { GatewayMetrics } from '../request/request-metrics.js';
import type { CatalogData } from './catalog-replica.js';

export interface PolicyNack {
  /** Policy revision of the set that was refused. */
  revision: number;
  reason: string;
}

interface PersistedPolicies {
  version: 1;
  revision: number;
  records: PolicyRecord[];
}

/**
 * The policy set in force on a gateway. It follows the catalog's policy records but is applied on
 * its own: a set this gateway cannot apply is refused whole (NACKed with every reason) while the
 * last good set stays in force, and the catalog's other changes still apply. The last good set is
 * persisted, so a restart never falls back to no policies (which would drop authorization).
 */
export class AppliedPolicies {
  private indexValue: PolicyIndex = PolicyIndex.EMPTY;
  private appliedRevisionValue = 0;
  private appliedRecords: readonly PolicyRecord[] = [];
  private latestRevisionValue = 0;
  private nackValue: PolicyNack | undefined;
  private lastSeen: ReadonlyMap<string, PolicyRecord> | undefined;
  private warningsValue: string[] = [];

  constructor(
    private readonly options: { stateDir?: string; limits: GatewayPolicyLimits; log: Logger },
  ) {}

  get index(): PolicyIndex {
    return this.indexValue;
  }

  get appliedRevision(): number {
    return this.appliedRevisionValue;
  }

  get latestRevision(): number {
    return this.latestRevisionValue;
  }

  /** Why the newest set was refused; undefined while the newest set is the one in force. */
  get nack(): PolicyNack | undefined {
    return this.nackValue;
  }

  private get file(): string | undefined {
    return this.options.stateDir ? join(this.options.stateDir, 'policies.json') : undefined;
  }

  /** Starts from the last good set of a previous run; a damaged file is reported, never fatal. */
  loadPersisted(): void {
    const file = this.file;
    if (!file || !existsSync(file)) return;
    try {
      const saved = JSON.parse(readFileSync(file, 'utf8')) as PersistedPolicies;
      if (saved.version !== 1 || !Array.isArray(saved.records)) throw new Error('not a policies file of this version');
      const result = compileForGateway(saved.records, this.options.limits);
      if (!result.ok) throw new Error(result.problems.join('; '));
      this.indexValue = result.index;
      this.appliedRevisionValue = saved.revision;
      this.appliedRecords = saved.records;
      this.latestRevisionValue = saved.revision;
      this.options.log.info({ revision: saved.revision, policies: saved.records.length }, 'starting with the last applied policy set');
    } catch (error) {
      this.options.log.error({ file, err: errorMessage(error) }, 'persisted policy set unusable; starting without policies until the controller sends a set');
    }
  }

  /**
   * Applies the set carried by a catalog (no-op when it did not change). Returns 'applied',
   * 'rejected' or 'unchanged'.
   */
  update(records: ReadonlyMap<string, PolicyRecord>, revision: number): 'applied' | 'rejected' | 'unchanged' {
    if (records === this.lastSeen && revision === this.latestRevisionValue) return 'unchanged';
    this.lastSeen = records;
    this.latestRevisionValue = revision;
    if (revision === this.appliedRevisionValue && this.nackValue === undefined && sameRecords(records, this.appliedRecords)) return 'unchanged';
    const result = compileForGateway(records.values(), this.options.limits);
    if (!result.ok) {
      this.nackValue = { revision, reason: result.problems.join('; ') };
      this.options.log.error({ revision, applied: this.appliedRevisionValue, problems: result.problems }, 'policy set refused; the last good set stays in force');
      return 'rejected';
    }
    this.indexValue = result.index;
    this.appliedRevisionValue = revision;
    this.appliedRecords = [...records.values()];
    this.nackValue = undefined;
    this.warningsValue = result.warnings.map((w) => `${w.source ?? ''}: ${w.path ? `${w.path}: ` : ''}${w.message}`);
    this.options.log.info({ revision, policies: records.size }, 'policy set applied');
    this.persist();
    return 'applied';
  }

  /** A static federation's set, read from federation-config at start. */
  useStatic(index: PolicyIndex, records: readonly PolicyRecord[], revision: number): void {
    this.indexValue = index;
    this.appliedRecords = records;
    this.appliedRevisionValue = revision;
    this.latestRevisionValue = revision;
  }

  describe(): unknown {
    return {
      appliedRevision: this.appliedRevisionValue,
      latestRevision: this.latestRevisionValue,
      inSync: this.nackValue === undefined && this.appliedRevisionValue === this.latestRevisionValue,
      ...(this.nackValue ? { nack: this.nackValue } : {}),
      documents: this.appliedRecords.map((r) => ({ key: r.key, revision: r.revision })).sort((a, b) => a.key.localeCompare(b.key)),
      ...(this.warningsValue.length > 0 ? { warnings: this.warningsValue } : {}),
    };
  }

  private persist(): void {
    const file = this.file;
    if (!file) return;
    try {
      mkdirSync(this.options.stateDir as string, { recursive: true });
      const saved: PersistedPolicies = { version: 1, revision: this.appliedRevisionValue, records: [...this.appliedRecords] };
      writeFileAtomicSync(file, JSON.stringify(saved));
    } catch (error) {
      this.options.log.warn({ file, err: errorMessage(error) }, 'could not persist the applied policy set');
    }
  }
}

/** Applies the policy set a catalog carries and counts the result (refused sets stay refused until a new one). */
export function applyPolicySet(policies: AppliedPolicies, data: CatalogData, metrics: Pick<GatewayMetrics, 'policyApplies' | 'policyRevision'>): void {
  const result = policies.update(data.policies, data.policyRevision);
  if (result === 'unchanged') return;
  metrics.policyApplies.inc({ result });
  metrics.policyRevision.set({ state: 'applied' }, policies.appliedRevision);
  metrics.policyRevision.set({ state: 'latest' }, policies.latestRevision);
}

function sameRecords(a: ReadonlyMap<string, PolicyRecord>, b: readonly PolicyRecord[]): boolean {
  if (a.size !== b.length) return false;
  for (const record of b) if (a.get(record.key)?.revision !== record.revision) return false;
  return true;
}
