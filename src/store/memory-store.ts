import { randomUUID } from 'node:crypto';
import { ErrorCodes, StoreError } from '../core/errors.js';
import { exportKey, serviceKey, type BundleRecord, type Change, type ClusterRecord, type ClusterState, type ExportRecord, type PolicyRecord } from '../model/catalog.js';
import { StoreState, type Table, type Transaction } from './store-state.js';
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

/** Audit entries kept, newest first. */
const AUDIT_KEPT = 1000;

interface TokenEntry {
  record: TokenRecord;
  retainUntil: number;
}
interface Lease {
  holder: string;
  expiresAt: number;
}
interface Lock {
  holder: string;
  token: number;
  expiresAt: number;
}

/**
 * The single-process store, and the base of JournalStore. Same contract as RedisStore (the
 * conformance suite runs against all of them); on its own, its state dies with the process.
 *
 * All state lives in the tables below, and every write goes through `mutate()`: a synchronous
 * function that reads and writes tables through its `Transaction`. That funnel is what makes
 * JournalStore durable without code of its own per method: it journals the rows each mutation
 * wrote. A new method gets durability by keeping its state in a table (declared here, with its
 * lifetime) and writing it inside `mutate()`; reads outside a mutation use `table.rows`.
 *
 * What outlives a restart of a durable store is decided per table below. The catalog, the
 * revision, the epoch, the fencing counter, join tokens and the audit log are durable, and so is
 * the change log's window (kept from the changes each record carries), so gateways resume with
 * deltas after a controller restart.
 */
export class MemoryStore implements Store {
  readonly kind: 'memory' | 'journal' = 'memory';
  protected readonly state: StoreState;
  /** Scalars: `epoch`, `revision`, `fence` (last fencing token handed out), `auditSeq`. */
  private readonly meta: Table<string | number>;
  private readonly clusters: Table<ClusterRecord>;
  /** By `cluster/namespace/name` (the change key), grouped by cluster. */
  private readonly exports: Table<ExportRecord>;
  private readonly bundles: Table<BundleRecord>;
  private readonly policies: Table<PolicyRecord>;
  /** Join tokens by hash; kept until their retention passes so a second use reads 'used'. */
  private readonly tokens: Table<TokenEntry>;
  /**
   * Durable, but stale by nature after a restart: a lease records when a gateway was last heard
   * from, and expires unless the gateway reconnects and renews it.
   */
  private readonly leases: Table<Lease>;
  /**
   * Ephemeral: a lock is only as good as its holder's process, and with one controller per data
   * dir the holder is gone after a restart. The fencing counter (`meta.fence`) is durable, so
   * tokens keep increasing across restarts.
   */
  private readonly locks: Table<Lock>;
  /** Durable, stale by nature: `lastSeen` says how old each record is. By `statusField()`. */
  private readonly statuses: Table<GatewayStatusRecord>;
  /** By audit sequence number, oldest first. */
  private readonly audit: Table<AuditEntry>;
  /**
   * Ephemeral: the live controller replicas, each re-announcing itself while it runs; with one
   * controller per data dir, the only replica after a restart is the new one.
   */
  private readonly replicas: Table<ReplicaRecord>;
  private readonly waiters = new Set<() => void>();
  private readonly now: () => number;
  private closed = false;

  constructor(options: MemoryStoreOptions = {}) {
    this.now = options.now ?? Date.now;
    const state = new StoreState(options.changeLogLength ?? 100_000, () => this.wake());
    this.state = state;
    this.meta = state.table('meta', { lifetime: 'durable' });
    this.clusters = state.table('clusters', { lifetime: 'durable', changeType: 'cluster' });
    this.exports = state.table('exports', { lifetime: 'durable', changeType: 'export', groupOf: (key) => key.slice(0, key.indexOf('/')) });
    this.bundles = state.table('bundles', { lifetime: 'durable', changeType: 'bundle' });
    this.policies = state.table('policies', { lifetime: 'durable', changeType: 'policy' });
    this.tokens = state.table('tokens', { lifetime: 'durable' });
    this.leases = state.table('leases', { lifetime: 'durable' });
    this.locks = state.table('locks', { lifetime: 'ephemeral' });
    this.statuses = state.table('statuses', { lifetime: 'durable' });
    this.audit = state.table('audit', { lifetime: 'durable' });
    this.replicas = state.table('replicas', { lifetime: 'ephemeral' });
  }

  /** A memory store has no connection that could be re-established. */
  get connectionGeneration(): number {
    return 0;
  }

  get connectionUp(): boolean {
    return !this.closed;
  }

  async open(): Promise<{ epoch: string; created: boolean }> {
    this.closed = false;
    const current = this.meta.rows.get('epoch') as string | undefined;
    if (current) return { epoch: current, created: false };
    let created = false;
    const epoch = await this.mutate((tx) => {
      created = false;
      const existing = tx.get(this.meta, 'epoch') as string | undefined;
      if (existing) return existing;
      created = true;
      const fresh = randomUUID();
      tx.put(this.meta, 'epoch', fresh);
      return fresh;
    });
    return { epoch, created };
  }

  async close(): Promise<void> {
    this.closed = true;
    this.wake();
  }

  async ping(): Promise<void> {
    if (this.closed) throw new StoreError(ErrorCodes.STORE_UNAVAILABLE, `${this.kind} store is closed`);
  }

  async epoch(): Promise<string | undefined> {
    return this.meta.rows.get('epoch') as string | undefined;
  }

  async revision(): Promise<number> {
    return this.currentRevision();
  }

  async snapshot(): Promise<StoreSnapshot> {
    return structuredClone({
      epoch: (this.meta.rows.get('epoch') as string | undefined) ?? '',
      revision: this.currentRevision(),
      clusters: [...this.clusters.rows.values()],
      exports: [...this.exports.rows.values()],
      bundles: [...this.bundles.rows.values()],
      policies: [...this.policies.rows.values()],
    });
  }

  async getCluster(name: string): Promise<ClusterRecord | undefined> {
    return structuredClone(this.clusters.rows.get(name));
  }

  async createCluster(record: ClusterRecord, bundle: BundleRecord): Promise<number> {
    return this.mutate((tx) => {
      const existing = tx.get(this.clusters, record.name);
      if (existing) {
        throw new StoreError(ErrorCodes.CLUSTER_EXISTS, `cluster "${record.name}" already exists (trust domain ${existing.trustDomain}, joined ${new Date(existing.joinedAt).toISOString()})`);
      }
      const owner = tx.entries(this.clusters).find(([, c]) => c.trustDomain === record.trustDomain)?.[1];
      if (owner) throw new StoreError(ErrorCodes.CLUSTER_EXISTS, `trust domain "${record.trustDomain}" already belongs to cluster "${owner.name}"`);
      return this.stamp(tx, (revision) => {
        const changes: Change[] = [{ revision, type: 'cluster', key: record.name, op: 'put', value: structuredClone(record) }];
        const current = tx.get(this.bundles, bundle.trustDomain);
        if (!current || bundle.sequence > current.sequence) changes.push({ revision, type: 'bundle', key: bundle.trustDomain, op: 'put', value: { ...bundle } });
        return changes;
      });
    });
  }

  async putCluster(record: ClusterRecord, fence?: Fence): Promise<number> {
    return this.mutate((tx) => {
      this.checkFence(tx, fence);
      return this.stamp(tx, (revision) => [{ revision, type: 'cluster', key: record.name, op: 'put', value: structuredClone(record) }]);
    });
  }

  async setClusterState(name: string, state: ClusterState, audit: { by: string; reason: string; at: number }, fence?: Fence): Promise<number | undefined> {
    return this.mutate((tx) => {
      this.checkFence(tx, fence);
      const current = tx.get(this.clusters, name);
      if (!current || current.state === state) return undefined;
      const next: ClusterRecord = { ...structuredClone(current), state, stateReason: audit.reason, stateChangedBy: audit.by, stateChangedAt: audit.at };
      return this.stamp(tx, (revision) => [{ revision, type: 'cluster', key: name, op: 'put', value: next }]);
    });
  }

  async deleteCluster(name: string): Promise<number | undefined> {
    return this.mutate((tx) => {
      const current = tx.get(this.clusters, name);
      if (!current) return undefined;
      const revision = this.stamp(tx, (revision) => {
        const changes: Change[] = tx.entries(this.exports, name).map(([key]) => ({ revision, type: 'export', key, op: 'delete' }));
        changes.push({ revision, type: 'cluster', key: name, op: 'delete' });
        if (tx.has(this.bundles, current.trustDomain)) changes.push({ revision, type: 'bundle', key: current.trustDomain, op: 'delete' });
        return changes;
      });
      tx.delete(this.leases, name);
      for (const [field, status] of tx.entries(this.statuses)) if (status.cluster === name) tx.delete(this.statuses, field);
      return revision;
    });
  }

  async listExports(cluster?: string): Promise<ExportRecord[]> {
    return structuredClone(cluster === undefined ? [...this.exports.rows.values()] : this.exports.group(cluster));
  }

  async writeExports(cluster: string, write: ExportsWrite): Promise<number | undefined> {
    return this.mutate((tx) => {
      if (!tx.has(this.clusters, cluster)) throw new StoreError(ErrorCodes.CLUSTER_NOT_FOUND, `cluster "${cluster}" is not registered`);
      // Point lookups: a write of one export to a cluster of 10,000 must not walk the other 9,999.
      const rowKey = (service: string): string => `${cluster}/${service}`;
      const upsertKeys = new Set(write.upserts.map((u) => serviceKey(u.namespace, u.name)));
      const deletes = new Set(write.deletes);
      if (write.replace) {
        for (const [key] of tx.entries(this.exports, cluster)) {
          const service = key.slice(cluster.length + 1);
          if (!upsertKeys.has(service)) deletes.add(service);
        }
      }
      const upserts = write.upserts.filter((u) => JSON.stringify(tx.get(this.exports, exportKey(u))) !== JSON.stringify(u));
      const removed = [...deletes].filter((service) => !upsertKeys.has(service)).map((service) => tx.get(this.exports, rowKey(service))).filter((record) => record !== undefined);
      if (upserts.length === 0 && removed.length === 0) return undefined;
      return this.stamp(tx, (revision) => [
        ...removed.map((record): Change => ({ revision, type: 'export', key: exportKey(record), op: 'delete' })),
        ...upserts.map((record): Change => ({ revision, type: 'export', key: exportKey(record), op: 'put', value: structuredClone(record) })),
      ]);
    });
  }

  async putBundle(bundle: BundleRecord): Promise<{ revision: number } | { stale: true; current: number }> {
    return this.mutate((tx) => {
      const current = tx.get(this.bundles, bundle.trustDomain);
      if (current && bundle.sequence <= current.sequence) return { stale: true as const, current: current.sequence };
      return { revision: this.stamp(tx, (revision) => [{ revision, type: 'bundle', key: bundle.trustDomain, op: 'put', value: { ...bundle } }]) };
    });
  }

  async listBundles(): Promise<BundleRecord[]> {
    return structuredClone([...this.bundles.rows.values()]);
  }

  async putPolicies(policies: Array<Omit<PolicyRecord, 'revision'>>): Promise<number> {
    return this.mutate((tx) =>
      this.stamp(tx, (revision) => policies.map((policy): Change => ({ revision, type: 'policy', key: policy.key, op: 'put', value: { ...structuredClone(policy), revision } }))),
    );
  }

  async deletePolicy(key: string): Promise<number | undefined> {
    return this.mutate((tx) => {
      if (!tx.has(this.policies, key)) return undefined;
      return this.stamp(tx, (revision) => [{ revision, type: 'policy', key, op: 'delete' }]);
    });
  }

  async listPolicies(): Promise<PolicyRecord[]> {
    return structuredClone([...this.policies.rows.values()]);
  }

  async changesSince(revision: number): Promise<Change[] | 'snapshot-required'> {
    if (revision >= this.currentRevision()) return [];
    const first = this.state.changeLog.first();
    if (!first || first.revision > revision + 1) return 'snapshot-required';
    return structuredClone(this.state.changeLog.since(revision));
  }

  async *watch(fromRevision: number, signal: AbortSignal): AsyncIterable<WatchEvent> {
    let position = fromRevision;
    const epochAtStart = this.meta.rows.get('epoch');
    while (!signal.aborted && !this.closed) {
      const epoch = this.meta.rows.get('epoch') as string | undefined;
      if (epoch !== epochAtStart) {
        yield { kind: 'reset', reason: 'epoch-changed', epoch };
        return;
      }
      if (this.currentRevision() > position) {
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
    await this.mutate((tx) => {
      const now = this.now();
      // Tokens past their retention answer 'unknown' anyway; dropping them keeps the table small.
      for (const [key, entry] of tx.entries(this.tokens)) if (entry.retainUntil <= now) tx.delete(this.tokens, key);
      tx.put(this.tokens, hash, { record: { ...record }, retainUntil: now + retainMs });
    });
  }

  async consumeToken(hash: string, now: number, cluster: string): Promise<TokenConsumeResult> {
    return this.mutate((tx): TokenConsumeResult => {
      const entry = tx.get(this.tokens, hash);
      if (!entry || entry.retainUntil <= this.now()) return { status: 'unknown' };
      if (entry.record.usedAt !== undefined) return { status: 'used', record: { ...entry.record } };
      if (entry.record.expiresAt <= now) return { status: 'expired', record: { ...entry.record } };
      if (entry.record.cluster !== cluster) return { status: 'wrong-cluster', record: { ...entry.record } };
      const used = { ...entry.record, usedAt: now };
      tx.put(this.tokens, hash, { ...entry, record: used });
      return { status: 'ok', record: { ...used } };
    });
  }

  async renewLease(cluster: string, holder: string, expiresAt: number): Promise<void> {
    await this.mutate((tx) => tx.put(this.leases, cluster, { holder, expiresAt }));
  }

  async ensureLeases(clusters: readonly string[], holder: string, expiresAt: number): Promise<void> {
    await this.mutate((tx) => {
      for (const cluster of clusters) if (!tx.has(this.leases, cluster)) tx.put(this.leases, cluster, { holder, expiresAt });
    });
  }

  async removeLease(cluster: string): Promise<void> {
    await this.mutate((tx) => tx.delete(this.leases, cluster));
  }

  async expiredLeases(now: number): Promise<string[]> {
    return [...this.leases.rows].filter(([, lease]) => lease.expiresAt <= now).map(([cluster]) => cluster).sort();
  }

  async acquireLock(name: string, holder: string, ttlMs: number): Promise<number | undefined> {
    return this.mutate((tx) => {
      const current = tx.get(this.locks, name);
      const now = this.now();
      if (current && current.expiresAt > now && current.holder !== holder) return undefined;
      if (current && current.expiresAt > now && current.holder === holder) {
        tx.put(this.locks, name, { ...current, expiresAt: now + ttlMs });
        return current.token;
      }
      const token = ((tx.get(this.meta, 'fence') as number | undefined) ?? 0) + 1;
      tx.put(this.meta, 'fence', token);
      tx.put(this.locks, name, { holder, token, expiresAt: now + ttlMs });
      return token;
    });
  }

  async renewLock(fence: Fence, ttlMs: number): Promise<boolean> {
    return this.mutate((tx) => {
      const current = tx.get(this.locks, fence.lock);
      const now = this.now();
      if (!current || current.holder !== fence.holder || current.token !== fence.token || current.expiresAt <= now) return false;
      tx.put(this.locks, fence.lock, { ...current, expiresAt: now + ttlMs });
      return true;
    });
  }

  async releaseLock(fence: Fence): Promise<void> {
    await this.mutate((tx) => {
      const current = tx.get(this.locks, fence.lock);
      if (current && current.holder === fence.holder && current.token === fence.token) tx.delete(this.locks, fence.lock);
    });
  }

  async putGatewayStatus(status: GatewayStatusRecord): Promise<void> {
    await this.mutate((tx) => {
      if (tx.has(this.clusters, status.cluster)) tx.put(this.statuses, statusField(status.cluster, status.instance), { ...status });
    });
  }

  async listGatewayStatus(): Promise<GatewayStatusRecord[]> {
    return [...this.statuses.rows.values()].map((s) => ({ ...s }));
  }

  async pruneGatewayStatus(before: number): Promise<number> {
    return this.mutate((tx) => {
      let removed = 0;
      for (const [field, status] of tx.entries(this.statuses)) {
        if (status.lastSeen < before && tx.delete(this.statuses, field)) removed++;
      }
      return removed;
    });
  }

  async putReplica(record: ReplicaRecord): Promise<void> {
    await this.mutate((tx) => tx.put(this.replicas, record.id, { ...record }));
  }

  async removeReplica(id: string): Promise<void> {
    await this.mutate((tx) => tx.delete(this.replicas, id));
  }

  async listReplicas(now: number): Promise<ReplicaRecord[]> {
    return this.mutate((tx) => {
      const live: ReplicaRecord[] = [];
      for (const [id, record] of tx.entries(this.replicas)) {
        if (record.expiresAt <= now) tx.delete(this.replicas, id);
        else live.push({ ...record });
      }
      return live.sort((a, b) => a.startedAt - b.startedAt || a.id.localeCompare(b.id));
    });
  }

  async appendAudit(entry: AuditEntry): Promise<void> {
    await this.mutate((tx) => {
      const seq = ((tx.get(this.meta, 'auditSeq') as number | undefined) ?? 0) + 1;
      tx.put(this.meta, 'auditSeq', seq);
      tx.put(this.audit, String(seq), { ...entry });
      tx.delete(this.audit, String(seq - AUDIT_KEPT));
    });
  }

  async listAudit(limit: number): Promise<AuditEntry[]> {
    return [...this.audit.rows.values()].reverse().slice(0, limit).map((e) => ({ ...e }));
  }

  async restore(input: RestoreInput, fence: Fence): Promise<{ epoch: string; revision: number }> {
    return this.mutate((tx) => {
      this.checkFence(tx, fence);
      if (tx.size(this.clusters) > 0) throw new StoreError(ErrorCodes.STORE_CONFLICT, 'refusing to restore over a store that holds clusters');
      const epoch = randomUUID();
      const revision = Math.max((tx.get(this.meta, 'revision') as number | undefined) ?? 0, input.revision);
      tx.put(this.meta, 'epoch', epoch);
      tx.put(this.meta, 'revision', revision);
      tx.resetLog();
      for (const c of input.clusters) tx.put(this.clusters, c.name, structuredClone(c));
      for (const e of input.exports) tx.put(this.exports, exportKey(e), structuredClone(e));
      for (const b of input.bundles) tx.put(this.bundles, b.trustDomain, { ...b });
      for (const p of input.policies) tx.put(this.policies, p.key, structuredClone(p));
      if (input.audit) {
        // The restored entries are older than anything logged since the loss: the log is
        // rewritten oldest first, under new sequence numbers, so it stays in order.
        const since = tx.entries(this.audit);
        const merged = [...[...input.audit].reverse(), ...since.map(([, entry]) => entry)].slice(-AUDIT_KEPT);
        for (const [key] of since) tx.delete(this.audit, key);
        let seq = (tx.get(this.meta, 'auditSeq') as number | undefined) ?? 0;
        for (const entry of merged) tx.put(this.audit, String(++seq), { ...entry });
        tx.put(this.meta, 'auditSeq', seq);
      }
      return { epoch, revision };
    });
  }

  /** Test hook: what Redis restarted without persistence looks like. */
  async simulateStateLoss(): Promise<void> {
    await this.mutate((tx) => {
      tx.delete(this.meta, 'epoch');
      tx.put(this.meta, 'revision', 0);
      for (const table of [this.clusters, this.exports, this.bundles, this.policies, this.locks, this.leases, this.statuses, this.tokens, this.audit, this.replicas] as Array<Table<unknown>>) {
        for (const [key] of tx.entries(table)) tx.delete(table, key);
      }
      tx.resetLog();
    });
  }

  /** The one way state changes: see the class comment. */
  protected async mutate<T>(fn: (tx: Transaction) => T, options: { force?: boolean } = {}): Promise<T> {
    if (this.closed) throw new StoreError(ErrorCodes.STORE_UNAVAILABLE, `${this.kind} store is closed`);
    return this.state.mutate(fn, options);
  }

  private currentRevision(): number {
    return (this.meta.rows.get('revision') as number | undefined) ?? 0;
  }

  /** Stamps the next revision on the changes `build` returns and writes them. */
  private stamp(tx: Transaction, build: (revision: number) => Change[]): number {
    const revision = ((tx.get(this.meta, 'revision') as number | undefined) ?? 0) + 1;
    const changes = build(revision);
    tx.put(this.meta, 'revision', revision);
    for (const change of changes) tx.change(change);
    return revision;
  }

  private checkFence(tx: Transaction, fence: Fence | undefined): void {
    if (!fence) return;
    const current = tx.get(this.locks, fence.lock);
    if (!current || current.holder !== fence.holder || current.token !== fence.token) {
      throw new StoreError(ErrorCodes.LOCK_LOST, `lock "${fence.lock}" is no longer held by ${fence.holder} (fencing token ${fence.token})`);
    }
  }

  private wake(): void {
    for (const waiter of [...this.waiters]) waiter();
  }
}

function statusField(cluster: string, instance: string): string {
  return `${cluster}\u0000${instance}`;
}
