import { randomUUID } from 'node:crypto';
import { ErrorCodes, StoreError } from '../core/errors.js';
import { exportKey, serviceKey, type BundleRecord, type Change, type ClusterRecord, type ClusterState, type ExportRecord, type PolicyRecord } from '../model/catalog.js';
import type {
  AuditEntry,
  ExportsWrite,
  Fence,
  GatewayStatusRecord,
  ReplicaRecord,
  RestoreInput,
  Store,
  StoreSnapshot,
  TokenConsumeResult,
  TokenRecord,
  WatchEvent,
} from './store.js';

export interface MemoryStoreOptions {
  /** Entries kept in the change log; a watcher further behind must take a snapshot. */
  changeLogLength?: number;
  now?: () => number;
}

/**
 * The single-process store: `fedgate demo` and unit tests. Same contract as RedisStore (the
 * conformance suite runs against both), but its state dies with the process.
 */
export class MemoryStore implements Store {
  readonly kind = 'memory' as const;
  /** A memory store has no connection that could be re-established. */
  readonly connectionGeneration = 0;

  get connectionUp(): boolean {
    return !this.closed;
  }
  private epochId: string | undefined;
  private rev = 0;
  private readonly clusters = new Map<string, ClusterRecord>();
  private readonly exports = new Map<string, Map<string, ExportRecord>>();
  private readonly bundles = new Map<string, BundleRecord>();
  private readonly policies = new Map<string, PolicyRecord>();
  private log: Change[] = [];
  private readonly tokens = new Map<string, { record: TokenRecord; retainUntil: number }>();
  private readonly leases = new Map<string, { holder: string; expiresAt: number }>();
  private readonly locks = new Map<string, { holder: string; token: number; expiresAt: number }>();
  private fenceCounter = 0;
  /** By `statusField(cluster, instance)`. */
  private readonly statuses = new Map<string, GatewayStatusRecord>();
  private audit: AuditEntry[] = [];
  private readonly replicas = new Map<string, ReplicaRecord>();
  private readonly waiters = new Set<() => void>();
  private readonly changeLogLength: number;
  private readonly now: () => number;
  private closed = false;

  constructor(options: MemoryStoreOptions = {}) {
    this.changeLogLength = options.changeLogLength ?? 100_000;
    this.now = options.now ?? Date.now;
  }

  async open(): Promise<{ epoch: string; created: boolean }> {
    this.closed = false;
    if (this.epochId) return { epoch: this.epochId, created: false };
    this.epochId = randomUUID();
    return { epoch: this.epochId, created: true };
  }

  async close(): Promise<void> {
    this.closed = true;
    this.wake();
  }

  async ping(): Promise<void> {
    if (this.closed) throw new StoreError(ErrorCodes.STORE_UNAVAILABLE, 'memory store is closed');
  }

  async epoch(): Promise<string | undefined> {
    return this.epochId;
  }

  async revision(): Promise<number> {
    return this.rev;
  }

  async snapshot(): Promise<StoreSnapshot> {
    return structuredClone({
      epoch: this.epochId ?? '',
      revision: this.rev,
      clusters: [...this.clusters.values()],
      exports: [...this.exports.values()].flatMap((m) => [...m.values()]),
      bundles: [...this.bundles.values()],
      policies: [...this.policies.values()],
    });
  }

  async getCluster(name: string): Promise<ClusterRecord | undefined> {
    return structuredClone(this.clusters.get(name));
  }

  async createCluster(record: ClusterRecord, bundle: BundleRecord): Promise<number> {
    const existing = this.clusters.get(record.name);
    if (existing) {
      throw new StoreError(ErrorCodes.CLUSTER_EXISTS, `cluster "${record.name}" already exists (trust domain ${existing.trustDomain}, joined ${new Date(existing.joinedAt).toISOString()})`);
    }
    const owner = [...this.clusters.values()].find((c) => c.trustDomain === record.trustDomain);
    if (owner) throw new StoreError(ErrorCodes.CLUSTER_EXISTS, `trust domain "${record.trustDomain}" already belongs to cluster "${owner.name}"`);
    return this.commit((revision) => {
      this.clusters.set(record.name, structuredClone(record));
      const changes: Change[] = [{ revision, type: 'cluster', key: record.name, op: 'put', value: structuredClone(record) }];
      const current = this.bundles.get(bundle.trustDomain);
      if (!current || bundle.sequence > current.sequence) {
        this.bundles.set(bundle.trustDomain, { ...bundle });
        changes.push({ revision, type: 'bundle', key: bundle.trustDomain, op: 'put', value: { ...bundle } });
      }
      return changes;
    });
  }

  async putCluster(record: ClusterRecord, fence?: Fence): Promise<number> {
    this.checkFence(fence);
    return this.commit((revision) => {
      this.clusters.set(record.name, structuredClone(record));
      return [{ revision, type: 'cluster', key: record.name, op: 'put', value: structuredClone(record) }];
    });
  }

  async setClusterState(name: string, state: ClusterState, audit: { by: string; reason: string; at: number }, fence?: Fence): Promise<number | undefined> {
    this.checkFence(fence);
    const current = this.clusters.get(name);
    if (!current || current.state === state) return undefined;
    const next: ClusterRecord = { ...current, state, stateReason: audit.reason, stateChangedBy: audit.by, stateChangedAt: audit.at };
    return this.commit((revision) => {
      this.clusters.set(name, next);
      return [{ revision, type: 'cluster', key: name, op: 'put', value: structuredClone(next) }];
    });
  }

  async deleteCluster(name: string): Promise<number | undefined> {
    const current = this.clusters.get(name);
    if (!current) return undefined;
    return this.commit((revision) => {
      const changes: Change[] = [];
      for (const record of this.exports.get(name)?.values() ?? []) changes.push({ revision, type: 'export', key: exportKey(record), op: 'delete' });
      this.exports.delete(name);
      this.clusters.delete(name);
      changes.push({ revision, type: 'cluster', key: name, op: 'delete' });
      if (this.bundles.delete(current.trustDomain)) changes.push({ revision, type: 'bundle', key: current.trustDomain, op: 'delete' });
      this.leases.delete(name);
      for (const [field, status] of this.statuses) if (status.cluster === name) this.statuses.delete(field);
      return changes;
    });
  }

  async listExports(cluster?: string): Promise<ExportRecord[]> {
    const maps = cluster === undefined ? [...this.exports.values()] : [this.exports.get(cluster) ?? new Map()];
    return structuredClone(maps.flatMap((m) => [...m.values()]));
  }

  async writeExports(cluster: string, write: ExportsWrite): Promise<number | undefined> {
    if (!this.clusters.has(cluster)) throw new StoreError(ErrorCodes.CLUSTER_NOT_FOUND, `cluster "${cluster}" is not registered`);
    const existing = this.exports.get(cluster) ?? new Map<string, ExportRecord>();
    const deletes = new Set(write.deletes);
    if (write.replace) for (const key of existing.keys()) if (!write.upserts.some((u) => serviceKey(u.namespace, u.name) === key)) deletes.add(key);
    const upserts = write.upserts.filter((u) => JSON.stringify(existing.get(serviceKey(u.namespace, u.name))) !== JSON.stringify(u));
    const realDeletes = [...deletes].filter((key) => existing.has(key) && !write.upserts.some((u) => serviceKey(u.namespace, u.name) === key));
    if (upserts.length === 0 && realDeletes.length === 0) return undefined;
    return this.commit((revision) => {
      const changes: Change[] = [];
      for (const key of realDeletes) {
        const record = existing.get(key) as ExportRecord;
        existing.delete(key);
        changes.push({ revision, type: 'export', key: exportKey(record), op: 'delete' });
      }
      for (const record of upserts) {
        existing.set(serviceKey(record.namespace, record.name), structuredClone(record));
        changes.push({ revision, type: 'export', key: exportKey(record), op: 'put', value: structuredClone(record) });
      }
      this.exports.set(cluster, existing);
      return changes;
    });
  }

  async putBundle(bundle: BundleRecord): Promise<{ revision: number } | { stale: true; current: number }> {
    const current = this.bundles.get(bundle.trustDomain);
    if (current && bundle.sequence <= current.sequence) return { stale: true, current: current.sequence };
    const revision = await this.commit((rev) => {
      this.bundles.set(bundle.trustDomain, { ...bundle });
      return [{ revision: rev, type: 'bundle', key: bundle.trustDomain, op: 'put', value: { ...bundle } }];
    });
    return { revision };
  }

  async listBundles(): Promise<BundleRecord[]> {
    return structuredClone([...this.bundles.values()]);
  }

  async putPolicies(policies: Array<Omit<PolicyRecord, 'revision'>>): Promise<number> {
    return this.commit((revision) =>
      policies.map((policy) => {
        const record: PolicyRecord = { ...structuredClone(policy), revision };
        this.policies.set(policy.key, record);
        return { revision, type: 'policy' as const, key: policy.key, op: 'put' as const, value: structuredClone(record) };
      }),
    );
  }

  async deletePolicy(key: string): Promise<number | undefined> {
    if (!this.policies.has(key)) return undefined;
    return this.commit((revision) => {
      this.policies.delete(key);
      return [{ revision, type: 'policy', key, op: 'delete' }];
    });
  }

  async listPolicies(): Promise<PolicyRecord[]> {
    return structuredClone([...this.policies.values()]);
  }

  async changesSince(revision: number): Promise<Change[] | 'snapshot-required'> {
    if (revision >= this.rev) return [];
    const first = this.log[0];
    if (!first || first.revision > revision + 1) return 'snapshot-required';
    return structuredClone(this.log.filter((change) => change.revision > revision));
  }

  async *watch(fromRevision: number, signal: AbortSignal): AsyncIterable<WatchEvent> {
    let position = fromRevision;
    const epochAtStart = this.epochId;
    while (!signal.aborted && !this.closed) {
      if (this.epochId !== epochAtStart) {
        yield { kind: 'reset', reason: 'epoch-changed', epoch: this.epochId };
        return;
      }
      if (this.rev > position) {
        const changes = await this.changesSince(position);
        if (changes === 'snapshot-required') {
          yield { kind: 'reset', reason: 'snapshot-required' };
          return;
        }
        const byRevision = new Map<number, Change[]>();
        for (const change of changes) byRevision.set(change.revision, [...(byRevision.get(change.revision) ?? []), change]);
        for (const [revision, batch] of [...byRevision].sort((a, b) => a[0] - b[0])) {
          position = revision;
          yield { kind: 'changes', revision, changes: batch };
        }
        continue;
      }
      await new Promise<void>((resolve) => {
        const done = (): void => {
          this.waiters.delete(done);
          signal.removeEventListener('abort', done);
          resolve();
        };
        this.waiters.add(done);
        signal.addEventListener('abort', done, { once: true });
      });
    }
  }

  async putToken(hash: string, record: TokenRecord, retainMs: number): Promise<void> {
    this.tokens.set(hash, { record: { ...record }, retainUntil: this.now() + retainMs });
  }

  async consumeToken(hash: string, now: number, cluster: string): Promise<TokenConsumeResult> {
    const entry = this.tokens.get(hash);
    if (!entry || entry.retainUntil <= this.now()) return { status: 'unknown' };
    if (entry.record.usedAt !== undefined) return { status: 'used', record: { ...entry.record } };
    if (entry.record.expiresAt <= now) return { status: 'expired', record: { ...entry.record } };
    if (entry.record.cluster !== cluster) return { status: 'wrong-cluster', record: { ...entry.record } };
    entry.record.usedAt = now;
    return { status: 'ok', record: { ...entry.record } };
  }

  async renewLease(cluster: string, holder: string, expiresAt: number): Promise<void> {
    this.leases.set(cluster, { holder, expiresAt });
  }

  async ensureLeases(clusters: readonly string[], holder: string, expiresAt: number): Promise<void> {
    for (const cluster of clusters) if (!this.leases.has(cluster)) this.leases.set(cluster, { holder, expiresAt });
  }

  async removeLease(cluster: string): Promise<void> {
    this.leases.delete(cluster);
  }

  async expiredLeases(now: number): Promise<string[]> {
    return [...this.leases].filter(([, lease]) => lease.expiresAt <= now).map(([cluster]) => cluster).sort();
  }

  async acquireLock(name: string, holder: string, ttlMs: number): Promise<number | undefined> {
    const current = this.locks.get(name);
    const now = this.now();
    if (current && current.expiresAt > now && current.holder !== holder) return undefined;
    if (current && current.expiresAt > now && current.holder === holder) {
      current.expiresAt = now + ttlMs;
      return current.token;
    }
    this.fenceCounter += 1;
    this.locks.set(name, { holder, token: this.fenceCounter, expiresAt: now + ttlMs });
    return this.fenceCounter;
  }

  async renewLock(fence: Fence, ttlMs: number): Promise<boolean> {
    const current = this.locks.get(fence.lock);
    if (!current || current.holder !== fence.holder || current.token !== fence.token || current.expiresAt <= this.now()) return false;
    current.expiresAt = this.now() + ttlMs;
    return true;
  }

  async releaseLock(fence: Fence): Promise<void> {
    const current = this.locks.get(fence.lock);
    if (current && current.holder === fence.holder && current.token === fence.token) this.locks.delete(fence.lock);
  }

  async putGatewayStatus(status: GatewayStatusRecord): Promise<void> {
    if (!this.clusters.has(status.cluster)) return;
    this.statuses.set(statusField(status.cluster, status.instance), { ...status });
  }

  async listGatewayStatus(): Promise<GatewayStatusRecord[]> {
    return [...this.statuses.values()].map((s) => ({ ...s }));
  }

  async pruneGatewayStatus(before: number): Promise<number> {
    let removed = 0;
    for (const [field, status] of this.statuses) {
      if (status.lastSeen < before) {
        this.statuses.delete(field);
        removed++;
      }
    }
    return removed;
  }

  async putReplica(record: ReplicaRecord): Promise<void> {
    this.replicas.set(record.id, { ...record });
  }

  async removeReplica(id: string): Promise<void> {
    this.replicas.delete(id);
  }

  async listReplicas(now: number): Promise<ReplicaRecord[]> {
    for (const [id, record] of this.replicas) if (record.expiresAt <= now) this.replicas.delete(id);
    return [...this.replicas.values()].sort((a, b) => a.startedAt - b.startedAt || a.id.localeCompare(b.id)).map((r) => ({ ...r }));
  }

  async appendAudit(entry: AuditEntry): Promise<void> {
    this.audit = [{ ...entry }, ...this.audit].slice(0, 1000);
  }

  async listAudit(limit: number): Promise<AuditEntry[]> {
    return this.audit.slice(0, limit).map((e) => ({ ...e }));
  }

  async restore(input: RestoreInput, fence: Fence): Promise<{ epoch: string; revision: number }> {
    this.checkFence(fence);
    if (this.clusters.size > 0) throw new StoreError(ErrorCodes.STORE_CONFLICT, 'refusing to restore over a store that holds clusters');
    this.epochId = randomUUID();
    this.rev = Math.max(this.rev, input.revision);
    this.log = [];
    for (const c of input.clusters) this.clusters.set(c.name, structuredClone(c));
    for (const e of input.exports) {
      const map = this.exports.get(e.cluster) ?? new Map<string, ExportRecord>();
      map.set(serviceKey(e.namespace, e.name), structuredClone(e));
      this.exports.set(e.cluster, map);
    }
    for (const b of input.bundles) this.bundles.set(b.trustDomain, { ...b });
    for (const p of input.policies) this.policies.set(p.key, structuredClone(p));
    if (input.audit) this.audit = [...this.audit, ...input.audit.map((e) => ({ ...e }))].slice(0, 1000);
    this.wake();
    return { epoch: this.epochId, revision: this.rev };
  }

  /** Test hook: what Redis restarted without persistence looks like. */
  simulateStateLoss(): void {
    this.epochId = undefined;
    this.rev = 0;
    this.clusters.clear();
    this.exports.clear();
    this.bundles.clear();
    this.policies.clear();
    this.log = [];
    this.locks.clear();
    this.leases.clear();
    this.statuses.clear();
    this.tokens.clear();
    this.audit = [];
    this.replicas.clear();
    this.wake();
  }

  private checkFence(fence: Fence | undefined): void {
    if (!fence) return;
    const current = this.locks.get(fence.lock);
    if (!current || current.holder !== fence.holder || current.token !== fence.token) {
      throw new StoreError(ErrorCodes.LOCK_LOST, `lock "${fence.lock}" is no longer held by ${fence.holder} (fencing token ${fence.token})`);
    }
  }

  private async commit(apply: (revision: number) => Change[]): Promise<number> {
    if (this.closed) throw new StoreError(ErrorCodes.STORE_UNAVAILABLE, 'memory store is closed');
    const revision = this.rev + 1;
    const changes = apply(revision);
    this.rev = revision;
    this.log.push(...changes);
    if (this.log.length > this.changeLogLength) {
      const cut = this.log.length - this.changeLogLength;
      const lastDropped = (this.log[cut - 1] as Change).revision;
      // Never keep half a revision: a watcher resuming there would miss the rest of it.
      let start = cut;
      while (start < this.log.length && (this.log[start] as Change).revision === lastDropped) start++;
      this.log = this.log.slice(start);
    }
    this.wake();
    return revision;
  }

  private wake(): void {
    for (const waiter of [...this.waiters]) waiter();
  }
}

function statusField(cluster: string, instance: string): string {
  return `${cluster}\u0000${instance}`;
}
