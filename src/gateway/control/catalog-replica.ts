import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { writeFileAtomicSync } from '../../core/atomic-file.js';
import { dirname, join } from 'node:path';
import { errorMessage } from '../../core/errors.js';
import type { Logger } from '../../core/logger.js';
import type { BundleRecord, ClusterRecord, PolicyRecord } from '../../model/catalog.js';
import type { ClustersetServiceView } from '../../model/clusterset.js';
import { bundleFromProto, clusterRecordFromProto, policyFromProto, serviceFromProto } from '../../proto/convert.js';
import type { CatalogUpdate } from '../../proto/gen/fedgate.js';

/** The catalog as a gateway holds it: what the data plane routes by. Immutable once built. */
export interface CatalogData {
  epoch: string;
  revision: number;
  policyRevision: number;
  clusters: ReadonlyMap<string, ClusterRecord>;
  services: ReadonlyMap<string, ClustersetServiceView>;
  bundles: ReadonlyMap<string, BundleRecord>;
  policies: ReadonlyMap<string, PolicyRecord>;
}

export type ApplyResult = { status: 'applied'; data: CatalogData } | { status: 'duplicate' } | { status: 'rejected'; reason: string; resync: boolean };

/**
 * Checks a candidate catalog before it replaces the current one (bundles, policies); returns why
 * not. `previous` lets a check look only at what changed: entries carried over unchanged are the
 * same objects in both.
 */
export type CatalogCheck = (candidate: CatalogData, previous: CatalogData) => string | undefined;

const EMPTY: CatalogData = { epoch: '', revision: 0, policyRevision: 0, clusters: new Map(), services: new Map(), bundles: new Map(), policies: new Map() };

interface PersistedCatalog {
  version: 1;
  epoch: string;
  revision: number;
  policyRevision: number;
  clusters: ClusterRecord[];
  services: ClustersetServiceView[];
  bundles: BundleRecord[];
  policies: PolicyRecord[];
}

/**
 * The gateway's copy of the controller's catalog. Updates apply whole or not at all: the next
 * catalog is built aside, checked, and only then swapped in, so a bad update leaves the last good
 * catalog serving. It is persisted after every change, so a gateway that restarts while the
 * controller is unreachable starts from it (static stability).
 */
export class CatalogReplica {
  /** The catalog of a gateway that holds none yet. */
  static readonly EMPTY: CatalogData = EMPTY;
  private current: CatalogData = EMPTY;
  private readonly listeners = new Set<(data: CatalogData) => void>();
  private persistTimer: NodeJS.Timeout | undefined;
  /** Updates applied, in order; how tests prove nothing was applied twice, and how a resume was served. */
  readonly history: Array<{ revision: number; epoch: string; snapshot: boolean }> = [];

  constructor(
    private readonly options: { stateDir?: string; log: Logger; check?: CatalogCheck },
  ) {}

  get data(): CatalogData {
    return this.current;
  }

  get file(): string | undefined {
    return this.options.stateDir ? join(this.options.stateDir, 'catalog.json') : undefined;
  }

  onChange(listener: (data: CatalogData) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Loads the persisted catalog; a corrupt file is reported and ignored, never fatal. */
  loadPersisted(): boolean {
    const file = this.file;
    if (!file || !existsSync(file)) return false;
    try {
      const saved = JSON.parse(readFileSync(file, 'utf8')) as PersistedCatalog;
      if (saved.version !== 1) throw new Error(`unknown version ${String(saved.version)}`);
      const data: CatalogData = {
        epoch: saved.epoch,
        revision: saved.revision,
        policyRevision: saved.policyRevision,
        clusters: new Map(saved.clusters.map((c) => [c.name, c])),
        services: new Map(saved.services.map((s) => [`${s.namespace}/${s.name}`, s])),
        bundles: new Map(saved.bundles.map((b) => [b.trustDomain, b])),
        policies: new Map(saved.policies.map((p) => [p.key, p])),
      };
      const problem = this.options.check?.(data, EMPTY);
      if (problem) throw new Error(problem);
      this.current = data;
      this.options.log.info({ revision: data.revision, epoch: data.epoch, services: data.services.size }, 'starting from the persisted catalog');
      this.emit();
      return true;
    } catch (error) {
      this.options.log.error({ file, err: errorMessage(error) }, 'persisted catalog unreadable; starting empty');
      return false;
    }
  }

  apply(update: CatalogUpdate): ApplyResult {
    const held = this.current;
    if (!update.snapshot) {
      if (update.epoch !== held.epoch) return { status: 'rejected', reason: `resync: delta of epoch ${update.epoch}, this gateway holds epoch ${held.epoch || 'none'}`, resync: true };
      if (update.revision <= held.revision) return { status: 'duplicate' };
      if (update.baseRevision !== held.revision) {
        return { status: 'rejected', reason: `resync: delta based on revision ${update.baseRevision}, this gateway holds ${held.revision}`, resync: true };
      }
    } else if (update.epoch === held.epoch && update.revision < held.revision) {
      return { status: 'duplicate' };
    } else if (update.epoch !== held.epoch && held.clusters.size > 0 && update.clusters.length === 0) {
      // A store that lost its state must not empty the federation's data plane.
      return { status: 'rejected', reason: `refusing an empty snapshot from new epoch ${update.epoch}; keeping revision ${held.revision} of epoch ${held.epoch}`, resync: false };
    }
    let next: CatalogData;
    try {
      next = this.build(update, update.snapshot ? EMPTY : held);
    } catch (error) {
      return { status: 'rejected', reason: errorMessage(error), resync: false };
    }
    const problem = this.options.check?.(next, held);
    if (problem) return { status: 'rejected', reason: problem, resync: false };
    this.current = next;
    this.history.push({ revision: next.revision, epoch: next.epoch, snapshot: update.snapshot });
    if (this.history.length > 10_000) this.history.splice(0, this.history.length - 10_000);
    this.schedulePersist();
    this.emit();
    return { status: 'applied', data: next };
  }

  private build(update: CatalogUpdate, base: CatalogData): CatalogData {
    const clusters = new Map(base.clusters);
    const services = new Map(base.services);
    const bundles = new Map(base.bundles);
    const policies = new Map(base.policies);
    for (const name of update.removedClusters) clusters.delete(name);
    for (const info of update.clusters) clusters.set(info.name, clusterRecordFromProto(info));
    for (const key of update.removedServices) services.delete(key);
    for (const service of update.services) {
      const view = serviceFromProto(service);
      services.set(`${view.namespace}/${view.name}`, view);
    }
    for (const td of update.removedBundles) bundles.delete(td);
    for (const bundle of update.bundles) bundles.set(bundle.trustDomain, bundleFromProto(bundle));
    for (const key of update.removedPolicies) policies.delete(key);
    for (const policy of update.policies) policies.set(policy.key, policyFromProto(policy, `policy ${policy.key}`));
    return { epoch: update.epoch, revision: update.revision, policyRevision: update.policyRevision, clusters, services, bundles, policies };
  }

  private emit(): void {
    for (const listener of this.listeners) {
      try {
        listener(this.current);
      } catch (error) {
        this.options.log.error({ err: errorMessage(error) }, 'catalog listener failed');
      }
    }
  }

  private schedulePersist(): void {
    if (!this.file || this.persistTimer) return;
    this.persistTimer = setTimeout(() => {
      this.persistTimer = undefined;
      this.persistNow();
    }, 100);
    this.persistTimer.unref();
  }

  /** Writes atomically (temp file + rename): a crash mid-write never leaves a torn catalog. */
  persistNow(): void {
    const file = this.file;
    if (!file) return;
    if (this.persistTimer) {
      clearTimeout(this.persistTimer);
      this.persistTimer = undefined;
    }
    const data = this.current;
    const saved: PersistedCatalog = {
      version: 1,
      epoch: data.epoch,
      revision: data.revision,
      policyRevision: data.policyRevision,
      clusters: [...data.clusters.values()],
      services: [...data.services.values()],
      bundles: [...data.bundles.values()],
      policies: [...data.policies.values()],
    };
    try {
      mkdirSync(dirname(file), { recursive: true });
      writeFileAtomicSync(file, JSON.stringify(saved));
    } catch (error) {
      this.options.log.error({ file, err: errorMessage(error) }, 'could not persist the catalog');
    }
  }
}

/** The trust domains of the catalog's member clusters (those that have not left): the only ones that may bring a bundle. */
export function memberTrustDomains(data: CatalogData): Set<string> {
  const members = new Set<string>();
  for (const record of data.clusters.values()) if (record.state !== 'left') members.add(record.trustDomain);
  return members;
}
