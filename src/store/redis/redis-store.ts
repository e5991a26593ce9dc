import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Redis, type RedisOptions } from 'ioredis';
import { ErrorCodes, errorMessage, StoreError } from '../../core/errors.js';
import type { Logger } from '../../core/logger.js';
import { redactUrl } from '../../core/logger.js';
import { parseHostPort } from '../../config/shape.js';
import { exportKey, serviceKey, type BundleRecord, type Change, type ClusterRecord, type ClusterState, type ExportRecord, type PolicyRecord, type ResourceType } from '../../model/catalog.js';
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
} from '../store.js';
import { ACQUIRE_LOCK, COMMIT, CONSUME_TOKEN, PRUNE_STATUS, PUT_STATUS, RELEASE_LOCK, RENEW_LOCK, RESTORE, SNAPSHOT } from './scripts.js';

/** Connection settings, from federation.yaml `spec.store`. */
export interface RedisStoreOptions {
  url?: string;
  sentinels?: readonly string[];
  sentinelName?: string;
  username?: string;
  password?: string;
  tls?: { caFile?: string; certFile?: string; keyFile?: string; serverName?: string };
  keyPrefix?: string;
  changeLogLength?: number;
  log?: Logger;
  /** How often the watch loop checks that the store still has its epoch. */
  epochCheckMs?: number;
}

const MAX_SEQUENCE = '18446744073709551615';

type CommitCheck =
  | { t: 'absent' | 'present'; k: number; f: string }
  | { t: 'fence'; k: number; v: string }
  | { t: 'seq'; k: number; f: string; n: number }
  | { t: 'state'; k: number; f: string; v: string }
  | { t: 'unique'; k: number; field: string; v: string };

type CommitOp =
  | { t: 'hset'; k: number; f: string; v: string; ct?: ResourceType; ck?: string; skipSame?: boolean; stamp?: boolean }
  | { t: 'hdel'; k: number; f: string; ct?: ResourceType; ck?: string }
  | { t: 'hclear'; k: number; ct: ResourceType; cp: string }
  | { t: 'zrem' | 'hdelplain'; k: number; f: string }
  | { t: 'hdelprefix'; k: number; p: string };

type CommitReply = ['OK', number] | ['NOOP'] | ['EPOCH', string] | ['EXISTS', string] | ['MISSING'] | ['FENCE'] | ['STALE', string] | ['SAME'];

/**
 * The production store. Layout (all keys under one hash tag, `{fedgate}` by default):
 * `epoch`, `revision`, `changes` (stream, entry IDs `<revision>-<n>`), `clusters`, `bundles`,
 * `policies` (hashes), `exports:<cluster>` (hash per cluster), `token:<sha256>`, `leases` (sorted
 * set by expiry) + `lease-holders`, `lock:<name>` + `fence`, `status` (hash, one field per gateway
 * instance: `<cluster>\0<instance>`), `audit` (capped list).
 */
export class RedisStore implements Store {
  readonly kind = 'redis' as const;
  private readonly redis: Redis;
  private readonly prefix: string;
  private readonly changeLogLength: number;
  private epochId: string | undefined;
  private readonly blockingClients = new Set<Redis>();

  constructor(private readonly options: RedisStoreOptions) {
    this.prefix = `{${options.keyPrefix ?? 'fedgate'}}`;
    this.changeLogLength = options.changeLogLength ?? 100_000;
    this.redis = this.createClient();
    this.redis.on('error', (error) => options.log?.debug({ err: errorMessage(error) }, 'redis connection error'));
    // A connection that dropped may come back to a server that restarted empty (or to a promoted
    // replica): the generation moves on the drop already, so nothing trusts the store between the
    // drop and the next check of its epoch.
    this.redis.on('close', () => {
      this.connections += 1;
    });
    this.redis.on('ready', () => {
      this.connections += 1;
    });
    this.redis.defineCommand('fgCommit', { lua: COMMIT });
    this.redis.defineCommand('fgSnapshot', { lua: SNAPSHOT });
    this.redis.defineCommand('fgConsumeToken', { numberOfKeys: 1, lua: CONSUME_TOKEN });
    this.redis.defineCommand('fgAcquireLock', { numberOfKeys: 2, lua: ACQUIRE_LOCK });
    this.redis.defineCommand('fgRenewLock', { numberOfKeys: 1, lua: RENEW_LOCK });
    this.redis.defineCommand('fgReleaseLock', { numberOfKeys: 1, lua: RELEASE_LOCK });
    this.redis.defineCommand('fgRestore', { lua: RESTORE });
    this.redis.defineCommand('fgPutStatus', { numberOfKeys: 2, lua: PUT_STATUS });
    this.redis.defineCommand('fgPruneStatus', { numberOfKeys: 1, lua: PRUNE_STATUS });
  }

  /** A description safe to log (no password). */
  describe(): string {
    if (this.options.sentinels?.length) return `redis sentinel "${this.options.sentinelName}" via ${this.options.sentinels.join(',')}`;
    return redactUrl(this.options.url ?? 'redis://127.0.0.1:6379');
  }

  private createClient(): Redis {
    const o = this.options;
    const base: RedisOptions = {
      lazyConnect: true,
      // Fail fast while disconnected: readiness must reflect an unreachable store, and callers
      // retry with back-off rather than piling commands up in an offline queue.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 1,
      connectTimeout: 2000,
      retryStrategy: (times) => Math.min(50 * 2 ** Math.min(times, 6), 2000),
      username: o.username,
      password: o.password,
    };
    if (o.tls) {
      base.tls = {
        ca: o.tls.caFile ? readFileSync(o.tls.caFile) : undefined,
        cert: o.tls.certFile ? readFileSync(o.tls.certFile) : undefined,
        key: o.tls.keyFile ? readFileSync(o.tls.keyFile) : undefined,
        servername: o.tls.serverName,
      };
    }
    if (o.sentinels && o.sentinels.length > 0) {
      return new Redis({
        ...base,
        sentinels: o.sentinels.map((address) => {
          const parsed = parseHostPort(address);
          if (!parsed) throw new StoreError(ErrorCodes.CONFIG_INVALID, `sentinel address "${address}" is not host:port`);
          return parsed;
        }),
        name: o.sentinelName ?? 'mymaster',
        sentinelUsername: o.username,
        sentinelPassword: o.password,
        failoverDetector: true,
      });
    }
    return o.url ? new Redis(o.url, base) : new Redis(base);
  }

  private connections = 0;

  /** Moves on every connection drop and every (re-)connect; see Store.connectionGeneration. */
  get connectionGeneration(): number {
    return this.connections;
  }

  get connectionUp(): boolean {
    return this.redis.status === 'ready';
  }

  private key(name: string): string {
    return `${this.prefix}:${name}`;
  }

  private exportsKey(cluster: string): string {
    return this.key(`exports:${cluster}`);
  }

  private async call<T>(what: string, run: () => Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (error) {
      if (error instanceof StoreError) throw error;
      throw new StoreError(ErrorCodes.STORE_UNAVAILABLE, `redis ${what} failed: ${errorMessage(error)}`, { cause: error });
    }
  }

  async open(): Promise<{ epoch: string; created: boolean }> {
    if (this.redis.status === 'wait' || this.redis.status === 'end') {
      await this.call('connect', () => this.redis.connect());
    }
    const candidate = randomUUID();
    const set = await this.call('open', () => this.redis.set(this.key('epoch'), candidate, 'NX'));
    this.epochId = set === 'OK' ? candidate : ((await this.call('open', () => this.redis.get(this.key('epoch')))) ?? candidate);
    return { epoch: this.epochId, created: set === 'OK' };
  }

  async close(): Promise<void> {
    for (const client of this.blockingClients) client.disconnect();
    this.blockingClients.clear();
    this.redis.disconnect();
  }

  async ping(): Promise<void> {
    await this.call('ping', () => this.redis.ping());
  }

  async epoch(): Promise<string | undefined> {
    return (await this.call('epoch', () => this.redis.get(this.key('epoch')))) ?? undefined;
  }

  async revision(): Promise<number> {
    return Number((await this.call('revision', () => this.redis.get(this.key('revision')))) ?? 0);
  }

  /** The epoch writes are checked against: the one this store opened or restored. */
  private get expectedEpoch(): string {
    if (!this.epochId) throw new StoreError(ErrorCodes.STORE_UNAVAILABLE, 'store not opened');
    return this.epochId;
  }

  private async commit(dataKeys: string[], checks: CommitCheck[], ops: CommitOp[]): Promise<CommitReply> {
    const keys = [this.key('epoch'), this.key('revision'), this.key('changes'), ...dataKeys];
    const reply = (await this.call('write', () =>
      (this.redis as unknown as { fgCommit: (n: number, ...args: Array<string | number>) => Promise<unknown[]> }).fgCommit(
        keys.length,
        ...keys,
        this.expectedEpoch,
        this.changeLogLength,
        JSON.stringify({ checks, ops }),
      ),
    )) as unknown[];
    const tag = String(reply[0]);
    if (tag === 'EPOCH') {
      throw new StoreError(ErrorCodes.STORE_EPOCH_CHANGED, `store epoch changed (expected ${this.epochId}, found ${String(reply[1]) || 'none'}): Redis lost its state or was replaced`);
    }
    if (tag === 'OK') return ['OK', Number(reply[1])];
    return [tag, ...(reply.slice(1) as string[])] as CommitReply;
  }

  async snapshot(): Promise<StoreSnapshot> {
    for (let attempt = 0; attempt < 10; attempt++) {
      const names = ((await this.call('snapshot', () => this.redis.hkeys(this.key('clusters')))) as string[]).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
      const keys = [this.key('epoch'), this.key('revision'), this.key('clusters'), this.key('bundles'), this.key('policies'), ...names.map((n) => this.exportsKey(n))];
      const reply = (await this.call('snapshot', () =>
        (this.redis as unknown as { fgSnapshot: (n: number, ...args: string[]) => Promise<unknown[]> }).fgSnapshot(keys.length, ...keys, ...names),
      )) as unknown[];
      if (reply[0] === 'RETRY') continue;
      const parse = <T>(values: unknown): T[] => (values as string[]).map((v) => JSON.parse(v) as T);
      return {
        epoch: String(reply[1]),
        revision: Number(reply[2]),
        clusters: parse<ClusterRecord>(reply[3]),
        bundles: parse<BundleRecord>(reply[4]),
        policies: parse<PolicyRecord>(reply[5]),
        exports: parse<ExportRecord>(reply[6]),
      };
    }
    throw new StoreError(ErrorCodes.STORE_UNAVAILABLE, 'could not read a consistent snapshot: the cluster set kept changing');
  }

  async getCluster(name: string): Promise<ClusterRecord | undefined> {
    const value = await this.call('read', () => this.redis.hget(this.key('clusters'), name));
    return value ? (JSON.parse(value) as ClusterRecord) : undefined;
  }

  async createCluster(record: ClusterRecord, bundle: BundleRecord): Promise<number> {
    const reply = await this.commit(
      [this.key('clusters'), this.key('bundles')],
      [
        { t: 'absent', k: 4, f: record.name },
        { t: 'unique', k: 4, field: 'trustDomain', v: record.trustDomain },
      ],
      [
        { t: 'hset', k: 4, f: record.name, v: JSON.stringify(record), ct: 'cluster', ck: record.name },
        { t: 'hset', k: 5, f: bundle.trustDomain, v: JSON.stringify(bundle), ct: 'bundle', ck: bundle.trustDomain },
      ],
    );
    if (reply[0] === 'EXISTS') {
      const existing = JSON.parse(reply[1]) as ClusterRecord;
      if (existing.name === record.name) {
        throw new StoreError(ErrorCodes.CLUSTER_EXISTS, `cluster "${record.name}" already exists (trust domain ${existing.trustDomain}, joined ${new Date(existing.joinedAt).toISOString()})`);
      }
      throw new StoreError(ErrorCodes.CLUSTER_EXISTS, `trust domain "${record.trustDomain}" already belongs to cluster "${existing.name}"`);
    }
    return this.revisionOf(reply, 'create cluster');
  }

  async putCluster(record: ClusterRecord, fence?: Fence): Promise<number> {
    const keys = [this.key('clusters')];
    const checks: CommitCheck[] = [];
    if (fence) {
      keys.push(this.key(`lock:${fence.lock}`));
      checks.push({ t: 'fence', k: 5, v: `${fence.holder}|${fence.token}` });
    }
    const reply = await this.commit(keys, checks, [{ t: 'hset', k: 4, f: record.name, v: JSON.stringify(record), ct: 'cluster', ck: record.name }]);
    return this.revisionOf(reply, 'put cluster', fence);
  }

  async setClusterState(name: string, state: ClusterState, audit: { by: string; reason: string; at: number }, fence?: Fence): Promise<number | undefined> {
    const current = await this.getCluster(name);
    if (!current || current.state === state) return undefined;
    const next: ClusterRecord = { ...current, state, stateReason: audit.reason, stateChangedBy: audit.by, stateChangedAt: audit.at };
    const keys = [this.key('clusters')];
    const checks: CommitCheck[] = [{ t: 'state', k: 4, f: name, v: state }];
    if (fence) {
      keys.push(this.key(`lock:${fence.lock}`));
      checks.push({ t: 'fence', k: 5, v: `${fence.holder}|${fence.token}` });
    }
    const reply = await this.commit(keys, checks, [{ t: 'hset', k: 4, f: name, v: JSON.stringify(next), ct: 'cluster', ck: name }]);
    if (reply[0] === 'SAME' || reply[0] === 'MISSING') return undefined;
    return this.revisionOf(reply, 'set cluster state', fence);
  }

  async deleteCluster(name: string): Promise<number | undefined> {
    const current = await this.getCluster(name);
    if (!current) return undefined;
    const reply = await this.commit(
      [this.key('clusters'), this.key('bundles'), this.exportsKey(name), this.key('leases'), this.key('lease-holders'), this.key('status')],
      [{ t: 'present', k: 4, f: name }],
      [
        { t: 'hclear', k: 6, ct: 'export', cp: `${name}/` },
        { t: 'hdel', k: 4, f: name, ct: 'cluster', ck: name },
        { t: 'hdel', k: 5, f: current.trustDomain, ct: 'bundle', ck: current.trustDomain },
        { t: 'zrem', k: 7, f: name },
        { t: 'hdelplain', k: 8, f: name },
        { t: 'hdelprefix', k: 9, p: statusField(name, '') },
        // A status written before statuses were kept per instance is keyed by the cluster alone.
        { t: 'hdelplain', k: 9, f: name },
      ],
    );
    if (reply[0] === 'MISSING') return undefined;
    return this.revisionOf(reply, 'delete cluster');
  }

  async listExports(cluster?: string): Promise<ExportRecord[]> {
    const clusters = cluster === undefined ? await this.call('read', () => this.redis.hkeys(this.key('clusters'))) : [cluster];
    const out: ExportRecord[] = [];
    for (const name of clusters) {
      const values = await this.call('read', () => this.redis.hvals(this.exportsKey(name)));
      out.push(...values.map((v) => JSON.parse(v) as ExportRecord));
    }
    return out;
  }

  async writeExports(cluster: string, write: ExportsWrite): Promise<number | undefined> {
    const ops: CommitOp[] = [];
    const upsertKeys = new Set(write.upserts.map((u) => serviceKey(u.namespace, u.name)));
    if (write.replace) {
      const existing = await this.call('read', () => this.redis.hkeys(this.exportsKey(cluster)));
      for (const field of existing) if (!upsertKeys.has(field)) ops.push({ t: 'hdel', k: 5, f: field, ct: 'export', ck: `${cluster}/${field}` });
    }
    for (const field of write.deletes) if (!upsertKeys.has(field)) ops.push({ t: 'hdel', k: 5, f: field, ct: 'export', ck: `${cluster}/${field}` });
    for (const record of write.upserts) {
      ops.push({ t: 'hset', k: 5, f: serviceKey(record.namespace, record.name), v: JSON.stringify(record), ct: 'export', ck: exportKey(record), skipSame: true });
    }
    if (ops.length === 0) return undefined;
    const reply = await this.commit([this.key('clusters'), this.exportsKey(cluster)], [{ t: 'present', k: 4, f: cluster }], ops);
    if (reply[0] === 'MISSING') throw new StoreError(ErrorCodes.CLUSTER_NOT_FOUND, `cluster "${cluster}" is not registered`);
    if (reply[0] === 'NOOP') return undefined;
    return this.revisionOf(reply, 'write exports');
  }

  async putBundle(bundle: BundleRecord): Promise<{ revision: number } | { stale: true; current: number }> {
    const reply = await this.commit(
      [this.key('bundles')],
      [{ t: 'seq', k: 4, f: bundle.trustDomain, n: bundle.sequence }],
      [{ t: 'hset', k: 4, f: bundle.trustDomain, v: JSON.stringify(bundle), ct: 'bundle', ck: bundle.trustDomain }],
    );
    if (reply[0] === 'STALE') return { stale: true, current: Number(reply[1]) };
    return { revision: this.revisionOf(reply, 'put bundle') };
  }

  async listBundles(): Promise<BundleRecord[]> {
    return (await this.call('read', () => this.redis.hvals(this.key('bundles')))).map((v) => JSON.parse(v) as BundleRecord);
  }

  async putPolicies(policies: Array<Omit<PolicyRecord, 'revision'>>): Promise<number> {
    const reply = await this.commit(
      [this.key('policies')],
      [],
      policies.map((p) => ({ t: 'hset' as const, k: 4, f: p.key, v: JSON.stringify({ revision: '@REVISION@', ...p }), ct: 'policy' as const, ck: p.key, stamp: true })),
    );
    return this.revisionOf(reply, 'put policies');
  }

  async deletePolicy(key: string): Promise<number | undefined> {
    const reply = await this.commit([this.key('policies')], [{ t: 'present', k: 4, f: key }], [{ t: 'hdel', k: 4, f: key, ct: 'policy', ck: key }]);
    if (reply[0] === 'MISSING' || reply[0] === 'NOOP') return undefined;
    return this.revisionOf(reply, 'delete policy');
  }

  async listPolicies(): Promise<PolicyRecord[]> {
    return (await this.call('read', () => this.redis.hvals(this.key('policies')))).map((v) => JSON.parse(v) as PolicyRecord);
  }

  private revisionOf(reply: CommitReply, what: string, fence?: Fence): number {
    if (reply[0] === 'OK') return reply[1];
    if (reply[0] === 'FENCE') throw new StoreError(ErrorCodes.LOCK_LOST, `${what}: lock "${fence?.lock}" is no longer held by ${fence?.holder} (fencing token ${fence?.token})`);
    if (reply[0] === 'NOOP') return Number.NaN;
    throw new StoreError(ErrorCodes.STORE_CONFLICT, `${what}: precondition failed (${reply[0]})`);
  }

  async changesSince(revision: number): Promise<Change[] | 'snapshot-required'> {
    const current = await this.revision();
    if (revision >= current) return [];
    const first = await this.call('read', () => this.redis.xrange(this.key('changes'), '-', '+', 'COUNT', 1));
    const firstComplete = firstCompleteRevision(first as Array<[string, string[]]>);
    if (firstComplete === undefined || firstComplete > revision + 1) return 'snapshot-required';
    const entries = (await this.call('read', () => this.redis.xrange(this.key('changes'), `${revision + 1}-0`, '+'))) as Array<[string, string[]]>;
    return entries.map(parseEntry);
  }

  async *watch(fromRevision: number, signal: AbortSignal): AsyncIterable<WatchEvent> {
    const epochAtStart = this.epochId;
    const missed = await this.changesSince(fromRevision);
    if (missed === 'snapshot-required') {
      yield { kind: 'reset', reason: 'snapshot-required' };
      return;
    }
    let position = fromRevision;
    for (const batch of groupByRevision(missed)) {
      position = batch.revision;
      yield batch;
    }
    // Blocking reads get their own connection: XREAD BLOCK would stall every other command.
    const reader = this.redis.duplicate();
    reader.on('error', () => undefined);
    this.blockingClients.add(reader);
    const abort = (): void => reader.disconnect();
    signal.addEventListener('abort', abort, { once: true });
    let lastId = `${position}-${MAX_SEQUENCE}`;
    const pending = new Map<number, Change[]>();
    let lastEpochCheck = Date.now();
    try {
      if (reader.status === 'wait') await this.call('watch', () => reader.connect());
      while (!signal.aborted) {
        if (Date.now() - lastEpochCheck >= (this.options.epochCheckMs ?? 1000)) {
          lastEpochCheck = Date.now();
          const epoch = await this.epoch();
          if (epoch !== epochAtStart) {
            yield { kind: 'reset', reason: 'epoch-changed', epoch };
            return;
          }
        }
        let reply: Array<[string, Array<[string, string[]]>]> | null;
        try {
          reply = (await this.call('watch', () => reader.xread('COUNT', 1000, 'BLOCK', this.options.epochCheckMs ?? 1000, 'STREAMS', this.key('changes'), lastId))) as typeof reply;
        } catch (error) {
          // Aborting disconnects the reader, which fails the pending XREAD: that is the normal end.
          if (signal.aborted) return;
          throw error;
        }
        if (!reply) continue;
        for (const [id, fields] of reply[0]?.[1] ?? []) {
          lastId = id;
          const change = parseEntry([id, fields]);
          const total = Number(fieldOf(fields, 'n'));
          const batch = pending.get(change.revision) ?? [];
          batch.push(change);
          pending.set(change.revision, batch);
          if (batch.length === total) {
            pending.delete(change.revision);
            if (change.revision > position) {
              position = change.revision;
              yield { kind: 'changes', revision: change.revision, changes: batch };
            }
          }
        }
      }
    } finally {
      signal.removeEventListener('abort', abort);
      this.blockingClients.delete(reader);
      reader.disconnect();
    }
  }

  async putToken(hash: string, record: TokenRecord, retainMs: number): Promise<void> {
    const key = this.key(`token:${hash}`);
    await this.call('token', () => this.redis.multi().hset(key, 'r', JSON.stringify(record), 'e', String(record.expiresAt)).pexpire(key, retainMs).exec());
  }

  async consumeToken(hash: string, now: number, cluster: string): Promise<TokenConsumeResult> {
    const reply = (await this.call('token', () =>
      (this.redis as unknown as { fgConsumeToken: (...args: Array<string | number>) => Promise<string[]> }).fgConsumeToken(this.key(`token:${hash}`), now, cluster),
    )) as string[];
    const status = reply[0] as TokenConsumeResult['status'];
    if (status === 'unknown') return { status };
    const record = JSON.parse(reply[1] as string) as TokenRecord;
    if (status === 'used') record.usedAt = Number(reply[2]);
    if (status === 'ok') record.usedAt = now;
    return { status, record };
  }

  async renewLease(cluster: string, holder: string, expiresAt: number): Promise<void> {
    await this.call('lease', () => this.redis.multi().zadd(this.key('leases'), expiresAt, cluster).hset(this.key('lease-holders'), cluster, holder).exec());
  }

  async ensureLeases(clusters: readonly string[], holder: string, expiresAt: number): Promise<void> {
    if (clusters.length === 0) return;
    const members = clusters.flatMap((cluster) => [expiresAt, cluster]);
    const batch = this.redis.multi().zadd(this.key('leases'), 'NX', ...members);
    for (const cluster of clusters) batch.hsetnx(this.key('lease-holders'), cluster, holder);
    await this.call('lease', () => batch.exec());
  }

  async removeLease(cluster: string): Promise<void> {
    await this.call('lease', () => this.redis.multi().zrem(this.key('leases'), cluster).hdel(this.key('lease-holders'), cluster).exec());
  }

  async expiredLeases(now: number): Promise<string[]> {
    return (await this.call('lease', () => this.redis.zrangebyscore(this.key('leases'), '-inf', now))).sort();
  }

  async acquireLock(name: string, holder: string, ttlMs: number): Promise<number | undefined> {
    const token = await this.call('lock', () =>
      (this.redis as unknown as { fgAcquireLock: (...args: Array<string | number>) => Promise<number | null> }).fgAcquireLock(this.key(`lock:${name}`), this.key('fence'), holder, ttlMs),
    );
    return token === null || token === undefined ? undefined : Number(token);
  }

  async renewLock(fence: Fence, ttlMs: number): Promise<boolean> {
    const renewed = await this.call('lock', () =>
      (this.redis as unknown as { fgRenewLock: (...args: Array<string | number>) => Promise<number> }).fgRenewLock(this.key(`lock:${fence.lock}`), `${fence.holder}|${fence.token}`, ttlMs),
    );
    return renewed === 1;
  }

  async releaseLock(fence: Fence): Promise<void> {
    await this.call('lock', () =>
      (this.redis as unknown as { fgReleaseLock: (...args: string[]) => Promise<number> }).fgReleaseLock(this.key(`lock:${fence.lock}`), `${fence.holder}|${fence.token}`),
    );
  }

  async putGatewayStatus(status: GatewayStatusRecord): Promise<void> {
    await this.call('status', () =>
      (this.redis as unknown as { fgPutStatus: (...args: string[]) => Promise<number> }).fgPutStatus(
        this.key('clusters'),
        this.key('status'),
        status.cluster,
        statusField(status.cluster, status.instance),
        JSON.stringify(status),
      ),
    );
  }

  async listGatewayStatus(): Promise<GatewayStatusRecord[]> {
    const values = await this.call('status', () => this.redis.hvals(this.key('status')));
    // Records written before statuses were kept per instance lack `instance` and `version`.
    return values.map((v) => ({ instance: '', version: '', ...(JSON.parse(v) as Partial<GatewayStatusRecord>) }) as GatewayStatusRecord);
  }

  async pruneGatewayStatus(before: number): Promise<number> {
    return Number(
      await this.call('status', () => (this.redis as unknown as { fgPruneStatus: (...args: Array<string | number>) => Promise<number> }).fgPruneStatus(this.key('status'), before)),
    );
  }

  async putReplica(record: ReplicaRecord): Promise<void> {
    await this.call('replicas', () => this.redis.hset(this.key('replicas'), record.id, JSON.stringify(record)));
  }

  async removeReplica(id: string): Promise<void> {
    await this.call('replicas', () => this.redis.hdel(this.key('replicas'), id));
  }

  async listReplicas(now: number): Promise<ReplicaRecord[]> {
    const entries = await this.call('replicas', () => this.redis.hgetall(this.key('replicas')));
    const live: ReplicaRecord[] = [];
    const expired: string[] = [];
    for (const [id, value] of Object.entries(entries)) {
      const record = JSON.parse(value) as ReplicaRecord;
      if (record.expiresAt <= now) expired.push(id);
      else live.push(record);
    }
    // Dropping expired entries here is only housekeeping: a replica that comes back re-announces.
    if (expired.length > 0) await this.call('replicas', () => this.redis.hdel(this.key('replicas'), ...expired)).catch(() => undefined);
    return live.sort((a, b) => a.startedAt - b.startedAt || a.id.localeCompare(b.id));
  }

  async appendAudit(entry: AuditEntry): Promise<void> {
    await this.call('audit', () => this.redis.multi().lpush(this.key('audit'), JSON.stringify(entry)).ltrim(this.key('audit'), 0, 999).exec());
  }

  async listAudit(limit: number): Promise<AuditEntry[]> {
    return (await this.call('audit', () => this.redis.lrange(this.key('audit'), 0, limit - 1))).map((v) => JSON.parse(v) as AuditEntry);
  }

  async restore(input: RestoreInput, fence: Fence): Promise<{ epoch: string; revision: number }> {
    const clusters = [...new Set([...input.clusters.map((c) => c.name), ...input.exports.map((e) => e.cluster)])].sort();
    const epoch = randomUUID();
    const keys = [
      this.key('epoch'),
      this.key('revision'),
      this.key('changes'),
      this.key('clusters'),
      this.key('bundles'),
      this.key('policies'),
      this.key(`lock:${fence.lock}`),
      ...clusters.map((c) => this.exportsKey(c)),
    ];
    const data = {
      clusters: input.clusters.map((c) => [c.name, JSON.stringify(c)]),
      bundles: input.bundles.map((b) => [b.trustDomain, JSON.stringify(b)]),
      policies: input.policies.map((p) => [p.key, JSON.stringify(p)]),
      exports: input.exports.map((e) => [clusters.indexOf(e.cluster) + 1, serviceKey(e.namespace, e.name), JSON.stringify(e)]),
    };
    const reply = (await this.call('restore', () =>
      (this.redis as unknown as { fgRestore: (n: number, ...args: Array<string | number>) => Promise<string[]> }).fgRestore(
        keys.length,
        ...keys,
        epoch,
        input.revision,
        `${fence.holder}|${fence.token}`,
        JSON.stringify(data),
      ),
    )) as string[];
    if (reply[0] === 'FENCE') throw new StoreError(ErrorCodes.LOCK_LOST, `restore: lock "${fence.lock}" is no longer held by ${fence.holder}`);
    if (reply[0] === 'EXISTS') throw new StoreError(ErrorCodes.STORE_CONFLICT, 'refusing to restore over a store that holds clusters');
    this.epochId = epoch;
    const audit = input.audit ?? [];
    if (audit.length > 0) {
      // Older than anything logged since the loss, so behind it; the catalog is back either way.
      const key = this.key('audit');
      await this.call('audit', () => this.redis.multi().rpush(key, ...audit.map((e) => JSON.stringify(e))).ltrim(key, 0, 999).exec()).catch(() => undefined);
    }
    return { epoch, revision: Number(reply[1]) };
  }

  /** Adopts the store's current epoch after another replica restored it. */
  async adoptEpoch(): Promise<string | undefined> {
    this.epochId = await this.epoch();
    return this.epochId;
  }
}

/** The `status` hash field of one gateway instance; cluster names are DNS labels, so never hold the separator. */
function statusField(cluster: string, instance: string): string {
  return `${cluster}\u0000${instance}`;
}

function fieldOf(fields: string[], name: string): string {
  for (let i = 0; i < fields.length; i += 2) if (fields[i] === name) return fields[i + 1] as string;
  return '';
}

function parseEntry([id, fields]: [string, string[]]): Change {
  const revision = Number(id.split('-')[0]);
  const op = fieldOf(fields, 'o') as 'put' | 'delete';
  const raw = fieldOf(fields, 'v');
  const change: Change = { revision, type: fieldOf(fields, 't') as ResourceType, key: fieldOf(fields, 'k'), op };
  if (op === 'put' && raw) {
    change.value = JSON.parse(raw) as Change['value'];
  }
  return change;
}

/** The first revision whose entries are all still in the stream (trimming may have cut the head of one). */
function firstCompleteRevision(first: Array<[string, string[]]>): number | undefined {
  const entry = first[0];
  if (!entry) return undefined;
  const [revision, index] = entry[0].split('-').map(Number) as [number, number];
  return index === 0 ? revision : revision + 1;
}

function groupByRevision(changes: Change[]): Array<{ kind: 'changes'; revision: number; changes: Change[] }> {
  const out: Array<{ kind: 'changes'; revision: number; changes: Change[] }> = [];
  for (const change of changes) {
    const last = out[out.length - 1];
    if (last && last.revision === change.revision) last.changes.push(change);
    else out.push({ kind: 'changes', revision: change.revision, changes: [change] });
  }
  return out;
}
