import type { BundleRecord, Change, ClusterRecord, ClusterState, ExportRecord, PolicyRecord } from '../model/catalog.js';

/** Everything the catalog holds, read at one revision. */
export interface StoreSnapshot {
  epoch: string;
  revision: number;
  clusters: ClusterRecord[];
  exports: ExportRecord[];
  bundles: BundleRecord[];
  policies: PolicyRecord[];
}

/** What `watch` yields: the changes of complete revisions, or the news that deltas cannot continue. */
export type WatchEvent =
  | { kind: 'changes'; revision: number; changes: Change[] }
  /**
   * `snapshot-required`: the change log no longer reaches the requested revision.
   * `epoch-changed`: the store lost its state (e.g. Redis restarted without persistence) or was
   * replaced; everything held from the old epoch must be re-checked.
   */
  | { kind: 'reset'; reason: 'snapshot-required' | 'epoch-changed'; epoch?: string };

export interface TokenRecord {
  cluster: string;
  /** ms since epoch */
  expiresAt: number;
  createdBy: string;
  createdAt: number;
  usedAt?: number;
}

export type TokenConsumeResult =
  | { status: 'ok'; record: TokenRecord }
  | { status: 'expired'; record: TokenRecord }
  | { status: 'used'; record: TokenRecord }
  /** Valid, but created for another cluster: left unused, so a typo in the name does not burn it. */
  | { status: 'wrong-cluster'; record: TokenRecord }
  | { status: 'unknown' };

/**
 * Runtime state of one gateway instance (one gateway process of a cluster) as the controller
 * replicas see it; not part of the catalog. Stored one per cluster + instance.
 */
export interface GatewayStatusRecord {
  cluster: string;
  /** Hello.instance; '' for a gateway that predates instances. */
  instance: string;
  connected: boolean;
  /** The controller replica holding (or that last held) the instance's stream. */
  replica: string;
  /** ms since epoch; the replica holding the stream refreshes it while the stream is open. */
  lastSeen: number;
  appliedRevision: number;
  appliedPolicyRevision: number;
  lastNack: string;
  lastNackRevision: number;
  exports: number;
  connectedAt: number;
  /** The gateway's software version (Hello.version). */
  version: string;
}

/** A controller replica announcing where gateways can reach it; refreshed while it runs. */
export interface ReplicaRecord {
  id: string;
  /** The API address gateways dial (advertised). */
  apiAddress: string;
  startedAt: number;
  /** ms since epoch; an entry not refreshed by then is a replica that died. */
  expiresAt: number;
  /** Where it runs: a replica on the same host can tell at once whether an entry's process died. */
  host?: string;
  pid?: number;
}

export interface AuditEntry {
  at: number;
  actor: string;
  action: string;
  target: string;
  detail: string;
}

/** A fencing token: writes made under a lock carry it, and the store refuses them once the lock moved on. */
export interface Fence {
  lock: string;
  holder: string;
  token: number;
}

export interface ExportsWrite {
  upserts: ExportRecord[];
  /** `namespace/name` of exports to remove. */
  deletes: string[];
  /** Replace the cluster's whole export set with `upserts`. */
  replace: boolean;
}

/** Everything written back after the store lost its state. */
export interface RestoreInput {
  revision: number;
  clusters: ClusterRecord[];
  exports: ExportRecord[];
  bundles: BundleRecord[];
  policies: PolicyRecord[];
  /**
   * The audit log as the restoring replica last read it (drill history included), newest first as
   * `listAudit` returns it; appended after whatever was logged since the loss.
   */
  audit?: AuditEntry[];
}

/**
 * The federation's state. Every write stamps a new federation-wide revision and appends its
 * changes to the change log in the same atomic step, so nothing can be written without being seen.
 * Implementations: MemoryStore (single process, state dies with it: tests), JournalStore (single
 * process, journaled to a data dir: the controller's default) and RedisStore; all pass
 * test/contract/store.
 */
export interface Store {
  readonly kind: 'memory' | 'journal' | 'redis';
  /** Connects and creates the epoch if the store is new; reports whether it was. */
  open(): Promise<{ epoch: string; created: boolean }>;
  close(): Promise<void>;
  /** Throws StoreError(STORE_UNAVAILABLE) when the store cannot be reached. */
  ping(): Promise<void>;
  /**
   * Increases whenever the connection to the store dropped or was established again: whatever it
   * holds may have changed under it (a server that restarted empty), until its epoch is checked.
   */
  readonly connectionGeneration: number;
  /** False while the connection to the store is down (known without a round trip). */
  readonly connectionUp: boolean;
  /** The current epoch, undefined when the store has lost (or never had) its state. */
  epoch(): Promise<string | undefined>;
  revision(): Promise<number>;
  snapshot(): Promise<StoreSnapshot>;

  getCluster(name: string): Promise<ClusterRecord | undefined>;
  /** Registers a new cluster and its bundle; StoreError(STORE_CONFLICT) names the owner when the name is taken. */
  createCluster(record: ClusterRecord, bundle: BundleRecord): Promise<number>;
  /** Re-registers a known cluster (a gateway re-sending its identity after a store loss). */
  putCluster(record: ClusterRecord, fence?: Fence): Promise<number>;
  /** Changes a cluster's state; undefined when the cluster does not exist or already had that state. */
  setClusterState(name: string, state: ClusterState, audit: { by: string; reason: string; at: number }, fence?: Fence): Promise<number | undefined>;
  /** Removes a cluster with its exports and its bundle. */
  deleteCluster(name: string): Promise<number | undefined>;

  listExports(cluster?: string): Promise<ExportRecord[]>;
  writeExports(cluster: string, write: ExportsWrite): Promise<number | undefined>;

  /** Stores a bundle only when its sequence is newer; `stale` otherwise. */
  putBundle(bundle: BundleRecord): Promise<{ revision: number } | { stale: true; current: number }>;
  listBundles(): Promise<BundleRecord[]>;

  /** Writes a set of policies at one revision (each record gets that revision). */
  putPolicies(policies: Array<Omit<PolicyRecord, 'revision'>>): Promise<number>;
  deletePolicy(key: string): Promise<number | undefined>;
  listPolicies(): Promise<PolicyRecord[]>;

  /** Changes after `revision`, or 'snapshot-required' when the log no longer reaches back that far. */
  changesSince(revision: number): Promise<Change[] | 'snapshot-required'>;
  /** Complete revisions after `fromRevision`, as they happen, until the signal aborts. */
  watch(fromRevision: number, signal: AbortSignal): AsyncIterable<WatchEvent>;

  putToken(hash: string, record: TokenRecord, retainMs: number): Promise<void>;
  /**
   * Marks a token used, atomically, when it is valid and was created for `cluster`; a second
   * consumer sees 'used', a joiner naming another cluster 'wrong-cluster' (and the token stays).
   */
  consumeToken(hash: string, now: number, cluster: string): Promise<TokenConsumeResult>;

  renewLease(cluster: string, holder: string, expiresAt: number): Promise<void>;
  /** Gives every listed cluster that has no lease one expiring at `expiresAt` (a gateway that never connects still expires). */
  ensureLeases(clusters: readonly string[], holder: string, expiresAt: number): Promise<void>;
  removeLease(cluster: string): Promise<void>;
  expiredLeases(now: number): Promise<string[]>;

  /** Takes a lock; returns its fencing token, or undefined while someone else holds it. */
  acquireLock(name: string, holder: string, ttlMs: number): Promise<number | undefined>;
  renewLock(fence: Fence, ttlMs: number): Promise<boolean>;
  releaseLock(fence: Fence): Promise<void>;

  /**
   * Stores the status of one cluster + instance, replacing the previous one of that pair. Ignored
   * when the cluster is not registered: a stream that closes after its cluster was removed must not
   * bring the cluster's status back.
   */
  putGatewayStatus(status: GatewayStatusRecord): Promise<void>;
  listGatewayStatus(): Promise<GatewayStatusRecord[]>;
  /**
   * Removes the statuses last seen before `before` and returns how many. A connected instance's
   * status is refreshed while its stream is open, so only instances that went away (disconnected,
   * or whose controller replica died) age out. Removing a cluster removes its statuses too.
   */
  pruneGatewayStatus(before: number): Promise<number>;

  /** Announces (or refreshes) a controller replica. */
  putReplica(record: ReplicaRecord): Promise<void>;
  removeReplica(id: string): Promise<void>;
  /** Replicas whose announcement has not expired at `now`, oldest first; expired ones are dropped. */
  listReplicas(now: number): Promise<ReplicaRecord[]>;

  appendAudit(entry: AuditEntry): Promise<void>;
  listAudit(limit: number): Promise<AuditEntry[]>;

  /**
   * Writes back a whole catalog under a new epoch after the store lost its state, continuing the
   * revision numbering from `input.revision`. Only the holder of `fence` may do it.
   */
  restore(input: RestoreInput, fence: Fence): Promise<{ epoch: string; revision: number }>;
}
