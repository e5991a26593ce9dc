/**
 * The Store contract. Every implementation runs this same suite; a behaviour that only one of them
 * has is a bug in the contract or in that implementation.
 */
import { randomUUID } from 'node:crypto';
import { appendFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ErrorCodes } from '../../src/core/errors.js';
import { createRootLogger } from '../../src/core/logger.js';
import type { Change } from '../../src/model/catalog.js';
import { encodeFrame, readFrames } from '../../src/store/journal/journal-format.js';
import { JOURNAL_FILE, JournalStore, SNAPSHOT_FILE, type JournalStoreOptions } from '../../src/store/journal/journal-store.js';
import { MemoryStore } from '../../src/store/memory-store.js';
import { RedisStore } from '../../src/store/redis/redis-store.js';
import type { Store, WatchEvent } from '../../src/store/store.js';
import { bundleRecord, clusterRecord, exportRecord } from '../support/catalog-fixtures.js';
import { RedisProcess, redisCommand } from '../support/redis-server.js';

interface StoreFactory {
  name: string;
  create(options?: { changeLogLength?: number }): Promise<Store>;
  /** Make the backing store lose everything, as a Redis restart without persistence does. */
  loseState(store: Store): Promise<void>;
  /**
   * The same state through a new store object, opened, as after a controller restart (the old one
   * is closed). MemoryStore cannot restart: it returns the store it was given.
   */
  reopen(store: Store): Promise<Store>;
}

let redis: RedisProcess;
const opened: Store[] = [];
const dataDirs: string[] = [];
/** How to make another object on the same backing state, per store: what a restarted controller does. */
const remake = new WeakMap<Store, () => Store>();

/** A store whose next instance (after `reopen`) is made the same way, on the same state. */
function track<S extends Store>(make: () => S): S {
  const store = make();
  remake.set(store, () => track(make));
  opened.push(store);
  return store;
}

async function reopenDurable(store: Store): Promise<Store> {
  await store.close();
  const next = (remake.get(store) as () => Store)();
  await next.open();
  return next;
}

function journalFactory(name: string, extra: Partial<JournalStoreOptions>): StoreFactory {
  return {
    name,
    async create(options = {}) {
      const dataDir = mkdtempSync(join(tmpdir(), 'fedgate-journal-'));
      dataDirs.push(dataDir);
      return track(() => new JournalStore({ dataDir, ...extra, ...options }));
    },
    async loseState(store) {
      await (store as JournalStore).simulateStateLoss();
    },
    reopen: reopenDurable,
  };
}

beforeAll(async () => {
  redis = await RedisProcess.start();
});
afterAll(async () => {
  await Promise.all(opened.map((s) => s.close()));
  await redis.stop();
  for (const dir of dataDirs) rmSync(dir, { recursive: true, force: true });
});

const factories: StoreFactory[] = [
  {
    name: 'MemoryStore',
    async create(options = {}) {
      const store = new MemoryStore(options);
      opened.push(store);
      return store;
    },
    async loseState(store) {
      await (store as MemoryStore).simulateStateLoss();
    },
    async reopen(store) {
      return store;
    },
  },
  {
    name: 'RedisStore',
    async create(options = {}) {
      // A key prefix per test keeps tests apart inside one redis-server.
      const keyPrefix = `t-${randomUUID().slice(0, 8)}`;
      return track(() => new RedisStore({ url: redis.url, keyPrefix, epochCheckMs: 100, ...options }));
    },
    async loseState() {
      await redisCommand(redis.port, 'FLUSHALL');
    },
    reopen: reopenDurable,
  },
  journalFactory('JournalStore', {}),
  // Rewrites its journal as a snapshot every few records: every step also crosses a compaction.
  journalFactory('JournalStore, compacting every 2 KiB', { compactAfterBytes: 2048 }),
];

async function collect(iterable: AsyncIterable<WatchEvent>, count: number, timeoutMs = 5000): Promise<WatchEvent[]> {
  const out: WatchEvent[] = [];
  const deadline = Date.now() + timeoutMs;
  for await (const event of iterable) {
    out.push(event);
    if (out.length >= count || Date.now() > deadline) break;
  }
  return out;
}

async function expectCode(promise: Promise<unknown>, code: string, message?: string | RegExp): Promise<void> {
  await expect(promise).rejects.toMatchObject({ code });
  if (message) await expect(promise).rejects.toThrow(message);
}

/*
 * `restart()` reopens the store on the same state, as a controller restart does (a no-op for
 * MemoryStore): every step after one reads what the previous process wrote.
 */
describe.each(factories)('Store contract: $name', (factory) => {
  let store: Store;
  const restart = async (): Promise<void> => {
    store = await factory.reopen(store);
  };
  beforeEach(async () => {
    store = await factory.create();
    await store.open();
  });

  it('creates its epoch once and keeps it', async () => {
    const first = await store.epoch();
    expect(first).toMatch(/^[0-9a-f-]{36}$/);
    expect(await store.open()).toEqual({ epoch: first, created: false });
    await restart();
    expect(await store.epoch()).toBe(first);
    expect(await store.open()).toEqual({ epoch: first, created: false });
    expect(await store.revision()).toBe(0);
  });

  it('registers clusters with their bundle at one revision and names the owner of a duplicate', async () => {
    const revision = await store.createCluster(clusterRecord('us-east'), bundleRecord('us-east.acme.internal'));
    expect(revision).toBe(1);
    await restart();
    expect((await store.getCluster('us-east'))?.trustDomain).toBe('us-east.acme.internal');
    expect(await store.changesSince(0)).toEqual([
      { revision: 1, type: 'cluster', key: 'us-east', op: 'put', value: clusterRecord('us-east') },
      { revision: 1, type: 'bundle', key: 'us-east.acme.internal', op: 'put', value: bundleRecord('us-east.acme.internal') },
    ]);
    await expectCode(store.createCluster(clusterRecord('us-east'), bundleRecord('us-east.acme.internal')), ErrorCodes.CLUSTER_EXISTS, /cluster "us-east" already exists/);
    await expectCode(
      store.createCluster(clusterRecord('impostor', { trustDomain: 'us-east.acme.internal' }), bundleRecord('us-east.acme.internal', 2)),
      ErrorCodes.CLUSTER_EXISTS,
      'trust domain "us-east.acme.internal" already belongs to cluster "us-east"',
    );
    expect(await store.revision()).toBe(1);
  });

  it('writes exports as upserts, replacements and deletes, one revision per write, no revision for no-ops', async () => {
    await store.createCluster(clusterRecord('a'), bundleRecord('a.acme.internal'));
    const r2 = await store.writeExports('a', { upserts: [exportRecord('a', 'payments'), exportRecord('a', 'orders')], deletes: [], replace: false });
    expect(r2).toBe(2);
    await restart();
    expect(await store.writeExports('a', { upserts: [exportRecord('a', 'payments')], deletes: [], replace: false })).toBeUndefined();
    const r3 = await store.writeExports('a', { upserts: [exportRecord('a', 'payments', { readyEndpoints: 1 })], deletes: [], replace: true });
    expect(r3).toBe(3);
    await restart();
    const changes = (await store.changesSince(2)) as Change[];
    expect(changes.map((c) => `${c.revision} ${c.op} ${c.key}`).sort()).toEqual(['3 delete a/default/orders', '3 put a/default/payments']);
    expect((await store.listExports('a')).map((e) => `${e.name}:${e.readyEndpoints}`)).toEqual(['payments:1']);
    const r4 = await store.writeExports('a', { upserts: [], deletes: ['default/payments'], replace: false });
    expect(r4).toBe(4);
    await restart();
    expect(await store.listExports()).toEqual([]);
    await expectCode(store.writeExports('ghost', { upserts: [exportRecord('ghost', 'x')], deletes: [], replace: false }), ErrorCodes.CLUSTER_NOT_FOUND);
  });

  it('stores a bundle only when its sequence is newer', async () => {
    expect(await store.putBundle(bundleRecord('td', 5))).toEqual({ revision: 1 });
    await restart();
    expect(await store.putBundle(bundleRecord('td', 5))).toEqual({ stale: true, current: 5 });
    expect(await store.putBundle(bundleRecord('td', 3))).toEqual({ stale: true, current: 5 });
    expect(await store.putBundle(bundleRecord('td', 6))).toEqual({ revision: 2 });
    expect((await store.listBundles()).map((b) => b.sequence)).toEqual([6]);
  });

  it('stamps policies with the revision they were written at', async () => {
    const doc = (name: string) => ({ key: `TrafficPolicy/default/${name}`, kind: 'TrafficPolicy', namespace: 'default', name, document: { spec: { timeout: '1s', note: '@REVISION@' } } });
    expect(await store.putPolicies([doc('a'), doc('b')])).toBe(1);
    expect(await store.putPolicies([doc('b')])).toBe(2);
    await restart();
    const policies = (await store.listPolicies()).sort((x, y) => x.key.localeCompare(y.key));
    expect(policies.map((p) => [p.name, p.revision])).toEqual([['a', 1], ['b', 2]]);
    expect(policies[0]?.document).toEqual({ spec: { timeout: '1s', note: '@REVISION@' } });
    const changes = (await store.changesSince(1)) as Change[];
    expect(changes).toEqual([{ revision: 2, type: 'policy', key: 'TrafficPolicy/default/b', op: 'put', value: { ...doc('b'), revision: 2 } }]);
    expect(await store.deletePolicy('TrafficPolicy/default/a')).toBe(3);
    expect(await store.deletePolicy('TrafficPolicy/default/a')).toBeUndefined();
  });

  it('changes cluster state with an audit trail, and ignores a change to the same state', async () => {
    await store.createCluster(clusterRecord('a'), bundleRecord('a.acme.internal'));
    expect(await store.setClusterState('a', 'draining', { by: 'alice', reason: 'maintenance', at: 42 })).toBe(2);
    await restart();
    expect(await store.setClusterState('a', 'draining', { by: 'alice', reason: 'again', at: 43 })).toBeUndefined();
    expect(await store.setClusterState('ghost', 'draining', { by: 'alice', reason: 'x', at: 43 })).toBeUndefined();
    expect(await store.getCluster('a')).toMatchObject({ state: 'draining', stateChangedBy: 'alice', stateReason: 'maintenance', stateChangedAt: 42 });
    await store.appendAudit({ at: 42, actor: 'alice', action: 'drain', target: 'a', detail: 'maintenance' });
    await restart();
    expect(await store.listAudit(10)).toEqual([{ at: 42, actor: 'alice', action: 'drain', target: 'a', detail: 'maintenance' }]);
  });

  it('removes a cluster with its exports and bundle in one revision', async () => {
    await store.createCluster(clusterRecord('a'), bundleRecord('a.acme.internal'));
    await store.writeExports('a', { upserts: [exportRecord('a', 'payments')], deletes: [], replace: false });
    await store.renewLease('a', 'replica-1', Date.now() + 60_000);
    expect(await store.deleteCluster('a')).toBe(3);
    await restart();
    const changes = (await store.changesSince(2)) as Change[];
    expect(changes.map((c) => `${c.type} ${c.op} ${c.key}`).sort()).toEqual(['bundle delete a.acme.internal', 'cluster delete a', 'export delete a/default/payments']);
    expect(await store.deleteCluster('a')).toBeUndefined();
    const snapshot = await store.snapshot();
    expect([snapshot.clusters, snapshot.exports, snapshot.bundles]).toEqual([[], [], []]);
  });

  it('reads a snapshot of everything at one revision', async () => {
    await store.createCluster(clusterRecord('a'), bundleRecord('a.acme.internal'));
    await store.createCluster(clusterRecord('b'), bundleRecord('b.acme.internal'));
    await store.writeExports('a', { upserts: [exportRecord('a', 'payments')], deletes: [], replace: false });
    await store.writeExports('b', { upserts: [exportRecord('b', 'payments')], deletes: [], replace: false });
    await store.putPolicies([{ key: 'k', kind: 'TrafficPolicy', namespace: 'default', name: 'n', document: {} }]);
    const before = await store.snapshot();
    await restart();
    const snapshot = await store.snapshot();
    expect(snapshot).toEqual(before);
    expect(snapshot.epoch).toBe(await store.epoch());
    expect(snapshot.revision).toBe(5);
    expect(snapshot.clusters.map((c) => c.name).sort()).toEqual(['a', 'b']);
    expect(snapshot.exports.map((e) => e.cluster).sort()).toEqual(['a', 'b']);
    expect(snapshot.bundles).toHaveLength(2);
    expect(snapshot.policies.map((p) => p.revision)).toEqual([5]);
  });

  it('asks for a snapshot once the change log no longer reaches back', async () => {
    let small = await factory.create({ changeLogLength: 100 });
    await small.open();
    await small.createCluster(clusterRecord('a'), bundleRecord('a.acme.internal'));
    for (let i = 0; i < 150; i++) {
      await small.writeExports('a', { upserts: [exportRecord('a', `svc-${i}`)], deletes: [], replace: false });
    }
    small = await factory.reopen(small);
    expect(await small.changesSince(0)).toBe('snapshot-required');
    const recent = (await small.changesSince(140)) as Change[];
    expect(recent.map((c) => c.revision)).toEqual([141, 142, 143, 144, 145, 146, 147, 148, 149, 150, 151]);
    expect(await small.changesSince(151)).toEqual([]);
    const events = await collect(small.watch(0, new AbortController().signal), 1);
    expect(events).toEqual([{ kind: 'reset', reason: 'snapshot-required' }]);
  });

  it('watches complete revisions in order, from the past into the future', async () => {
    await store.createCluster(clusterRecord('a'), bundleRecord('a.acme.internal'));
    await store.writeExports('a', { upserts: [exportRecord('a', 'x'), exportRecord('a', 'y')], deletes: [], replace: false });
    await restart();
    const controller = new AbortController();
    const events: WatchEvent[] = [];
    const watching = (async () => {
      for await (const event of store.watch(1, controller.signal)) {
        events.push(event);
        if (events.length === 3) controller.abort();
      }
    })();
    await new Promise((resolve) => setTimeout(resolve, 100));
    await store.putBundle(bundleRecord('a.acme.internal', 2));
    await store.setClusterState('a', 'draining', { by: 't', reason: 'r', at: 1 });
    await watching;
    expect(events.map((e) => (e.kind === 'changes' ? `${e.revision}:${e.changes.length}` : e.reason))).toEqual(['2:2', '3:1', '4:1']);
  });

  it('stops watching when aborted', async () => {
    const controller = new AbortController();
    const done = collect(store.watch(0, controller.signal), 10, 10_000);
    setTimeout(() => controller.abort(), 50);
    await expect(done).resolves.toEqual([]);
  });

  it('reports an epoch change to watchers when the store loses its state, and refuses writes from the old epoch', async () => {
    await store.createCluster(clusterRecord('a'), bundleRecord('a.acme.internal'));
    const controller = new AbortController();
    const events = collect(store.watch(1, controller.signal), 1);
    await new Promise((resolve) => setTimeout(resolve, 50));
    await factory.loseState(store);
    expect(await events).toEqual([{ kind: 'reset', reason: 'epoch-changed', epoch: undefined }]);
    expect(await store.epoch()).toBeUndefined();
    if (store.kind === 'redis') await expectCode(store.putBundle(bundleRecord('x', 1)), ErrorCodes.STORE_EPOCH_CHANGED);
  });

  it('restores a lost catalog under a new epoch, continuing revisions, only under the lock', async () => {
    await store.createCluster(clusterRecord('a'), bundleRecord('a.acme.internal'));
    await store.writeExports('a', { upserts: [exportRecord('a', 'payments')], deletes: [], replace: false });
    const before = await store.snapshot();
    await factory.loseState(store);
    const token = await store.acquireLock('restore', 'replica-1', 10_000);
    expect(token).toBeDefined();
    await expectCode(store.restore({ ...before }, { lock: 'restore', holder: 'replica-2', token: token as number }), ErrorCodes.LOCK_LOST);
    const restored = await store.restore({ ...before }, { lock: 'restore', holder: 'replica-1', token: token as number });
    expect(restored.epoch).not.toBe(before.epoch);
    expect(restored.revision).toBe(2);
    const after = await store.snapshot();
    expect(after.epoch).toBe(restored.epoch);
    expect(after.exports).toEqual(before.exports);
    expect(after.clusters).toEqual(before.clusters);
    expect(await store.putBundle(bundleRecord('x.acme.internal', 1))).toEqual({ revision: 3 });
    await expectCode(store.restore({ ...before }, { lock: 'restore', holder: 'replica-1', token: token as number }), ErrorCodes.STORE_CONFLICT);
    await restart();
    expect(await store.epoch()).toBe(restored.epoch);
    expect(await store.revision()).toBe(3);
    expect((await store.snapshot()).exports).toEqual(before.exports);
    expect(await store.changesSince(2)).toEqual([{ revision: 3, type: 'bundle', key: 'x.acme.internal', op: 'put', value: bundleRecord('x.acme.internal', 1) }]);
  });

  it('puts the audit log a restore brings back behind what was logged since the loss', async () => {
    await store.createCluster(clusterRecord('a'), bundleRecord('a.acme.internal'));
    const before = await store.snapshot();
    await factory.loseState(store);
    await store.appendAudit({ at: 30, actor: 'bob', action: 'token-create', target: 'b', detail: 'since the loss' });
    const token = (await store.acquireLock('restore', 'replica-1', 10_000)) as number;
    const older = [
      { at: 20, actor: 'alice', action: 'drill-end', target: 'default/payments', detail: 'passed' },
      { at: 10, actor: 'alice', action: 'drill-start', target: 'default/payments', detail: 'kill a' },
    ];
    await store.restore({ ...before, audit: older }, { lock: 'restore', holder: 'replica-1', token });
    await store.appendAudit({ at: 40, actor: 'bob', action: 'drain', target: 'a', detail: 'after the restore' });
    await restart();
    expect((await store.listAudit(10)).map((e) => e.at)).toEqual([40, 30, 20, 10]);
    expect(await store.listAudit(2)).toEqual([
      { at: 40, actor: 'bob', action: 'drain', target: 'a', detail: 'after the restore' },
      { at: 30, actor: 'bob', action: 'token-create', target: 'b', detail: 'since the loss' },
    ]);
  });

  it('lists the controller replicas that keep announcing themselves, oldest first', async () => {
    await store.putReplica({ id: 'r2', apiAddress: '10.0.0.2:15012', startedAt: 2, expiresAt: 5000 });
    await store.putReplica({ id: 'r1', apiAddress: '10.0.0.1:15012', startedAt: 1, expiresAt: 1000 });
    expect((await store.listReplicas(500)).map((r) => r.id)).toEqual(['r1', 'r2']);
    expect(await store.listReplicas(2000)).toEqual([{ id: 'r2', apiAddress: '10.0.0.2:15012', startedAt: 2, expiresAt: 5000 }]);
    await store.putReplica({ id: 'r2', apiAddress: '10.0.0.2:15012', startedAt: 2, expiresAt: 9000 });
    expect((await store.listReplicas(6000)).map((r) => r.id)).toEqual(['r2']);
    await store.removeReplica('r2');
    expect(await store.listReplicas(0)).toEqual([]);
  });

  it('consumes a join token once: ok, then used; expired and unknown tokens are told apart; another cluster\'s name leaves it unused', async () => {
    const now = Date.now();
    await store.putToken('h1', { cluster: 'a', expiresAt: now + 60_000, createdBy: 'alice', createdAt: now }, 120_000);
    await store.putToken('h2', { cluster: 'b', expiresAt: now - 1, createdBy: 'alice', createdAt: now - 10 }, 120_000);
    expect(await store.consumeToken('h1', now, 'z')).toMatchObject({ status: 'wrong-cluster', record: { cluster: 'a' } });
    expect(await store.consumeToken('h1', now, 'a')).toMatchObject({ status: 'ok', record: { cluster: 'a', usedAt: now } });
    await restart();
    expect(await store.consumeToken('h1', now + 5, 'a')).toMatchObject({ status: 'used', record: { cluster: 'a', usedAt: now } });
    expect(await store.consumeToken('h2', now, 'b')).toMatchObject({ status: 'expired', record: { cluster: 'b' } });
    expect(await store.consumeToken('nope', now, 'a')).toEqual({ status: 'unknown' });
  });

  it('tracks leases and lists the expired ones', async () => {
    await store.renewLease('a', 'r1', 1000);
    await store.renewLease('b', 'r1', 5000);
    expect(await store.expiredLeases(2000)).toEqual(['a']);
    await restart();
    await store.renewLease('a', 'r2', 9000);
    expect(await store.expiredLeases(6000)).toEqual(['b']);
    await store.removeLease('b');
    await restart();
    expect(await store.expiredLeases(10_000)).toEqual(['a']);
    await store.ensureLeases(['a', 'c'], 'r3', 20_000);
    expect(await store.expiredLeases(10_000)).toEqual(['a']);
    expect(await store.expiredLeases(20_000)).toEqual(['a', 'c']);
  });

  it('grants a lock to one holder at a time with increasing fencing tokens', async () => {
    const t1 = await store.acquireLock('leader', 'r1', 200);
    expect(t1).toBeGreaterThan(0);
    expect(await store.acquireLock('leader', 'r2', 200)).toBeUndefined();
    expect(await store.acquireLock('leader', 'r1', 200)).toBe(t1);
    expect(await store.renewLock({ lock: 'leader', holder: 'r1', token: t1 as number }, 200)).toBe(true);
    expect(await store.renewLock({ lock: 'leader', holder: 'r2', token: t1 as number }, 200)).toBe(false);
    await new Promise((resolve) => setTimeout(resolve, 300));
    const t2 = await store.acquireLock('leader', 'r2', 10_000);
    expect(t2).toBeGreaterThan(t1 as number);
    await store.createCluster(clusterRecord('a'), bundleRecord('a.acme.internal'));
    // r1 thinks it still leads: its fenced write is refused.
    await expectCode(store.setClusterState('a', 'unreachable', { by: 'r1', reason: 'lease expired', at: 1 }, { lock: 'leader', holder: 'r1', token: t1 as number }), ErrorCodes.LOCK_LOST);
    expect(await store.setClusterState('a', 'unreachable', { by: 'r2', reason: 'lease expired', at: 1 }, { lock: 'leader', holder: 'r2', token: t2 as number })).toBe(2);
    await store.releaseLock({ lock: 'leader', holder: 'r2', token: t2 as number });
    expect(await store.acquireLock('leader', 'r3', 200)).toBeGreaterThan(t2 as number);
  });

  it('keeps gateway runtime status per instance, outside the catalog', async () => {
    await store.createCluster(clusterRecord('a'), bundleRecord('a.acme.internal'));
    const revision = await store.revision();
    const status = { cluster: 'a', instance: 'gw-1', version: '0.1.0', connected: true, replica: 'r1', lastSeen: 5, appliedRevision: 3, appliedPolicyRevision: 2, lastNack: '', lastNackRevision: 0, exports: 4, connectedAt: 1 };
    await store.putGatewayStatus(status);
    await store.putGatewayStatus({ ...status, appliedRevision: 4 });
    await store.putGatewayStatus({ ...status, instance: 'gw-2', lastSeen: 50 });
    await restart();
    const byInstance = (list: Array<{ instance: string }>) => [...list].sort((x, y) => x.instance.localeCompare(y.instance));
    expect(byInstance(await store.listGatewayStatus())).toEqual([{ ...status, appliedRevision: 4 }, { ...status, instance: 'gw-2', lastSeen: 50 }]);
    expect(await store.revision()).toBe(revision);
    // Retention: instances not seen since `before` leave.
    expect(await store.pruneGatewayStatus(10)).toBe(1);
    await restart();
    expect((await store.listGatewayStatus()).map((s) => s.instance)).toEqual(['gw-2']);
    // A status for a cluster that is not a member (removed meanwhile) is not recorded.
    await store.putGatewayStatus({ ...status, cluster: 'ghost' });
    expect((await store.listGatewayStatus()).map((s) => s.cluster)).toEqual(['a']);
    // Removing the cluster removes its statuses.
    await store.deleteCluster('a');
    await restart();
    expect(await store.listGatewayStatus()).toEqual([]);
  });
});

describe('RedisStore specifics', () => {
  it('is unavailable, not broken, while Redis is down, and recovers', async () => {
    const own = await RedisProcess.start();
    const store = new RedisStore({ url: own.url, keyPrefix: 'down' });
    opened.push(store);
    await store.open();
    await own.kill();
    await expectCode(store.ping(), ErrorCodes.STORE_UNAVAILABLE);
    await own.launch();
    const deadline = Date.now() + 10_000;
    for (;;) {
      try {
        await store.ping();
        break;
      } catch (error) {
        if (Date.now() > deadline) throw error;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
    // Restarted without persistence: the epoch is gone, which is how a controller notices.
    expect(await store.epoch()).toBeUndefined();
    await own.stop();
  });

  it('keeps every key of the federation under one hash tag', async () => {
    const store = new RedisStore({ url: redis.url, keyPrefix: 'tagged' });
    opened.push(store);
    await store.open();
    await store.createCluster(clusterRecord('a'), bundleRecord('a.acme.internal'));
    await store.writeExports('a', { upserts: [exportRecord('a', 'payments')], deletes: [], replace: false });
    await store.putToken('h', { cluster: 'a', expiresAt: Date.now() + 1000, createdBy: 'x', createdAt: 1 }, 10_000);
    await store.acquireLock('leader', 'r1', 10_000);
    await store.renewLease('a', 'r1', 1);
    const keys = (await redisCommand(redis.port, 'KEYS *tagged*')).split('\r\n').filter((line) => line.includes('tagged'));
    expect(keys.length).toBeGreaterThanOrEqual(8);
    for (const key of keys) expect(key.startsWith('{tagged}:')).toBe(true);
  });
});

describe.each(factories.filter((f) => f.name !== 'MemoryStore'))('Durable store: $name', (factory) => {
  it('gives a restarted controller everything back: catalog, revision, epoch, change log, tokens, audit, leases and statuses', async () => {
    let store = await factory.create();
    await store.open();
    const now = Date.now();
    await store.createCluster(clusterRecord('a'), bundleRecord('a.acme.internal'));
    await store.createCluster(clusterRecord('b'), bundleRecord('b.acme.internal'));
    await store.writeExports('a', { upserts: [exportRecord('a', 'payments'), exportRecord('a', 'orders')], deletes: [], replace: false });
    await store.putPolicies([{ key: 'TrafficPolicy/default/p', kind: 'TrafficPolicy', namespace: 'default', name: 'p', document: { spec: { timeout: '1s' } } }]);
    await store.setClusterState('b', 'draining', { by: 'alice', reason: 'maintenance', at: 7 });
    await store.putToken('h', { cluster: 'c', expiresAt: now + 60_000, createdBy: 'alice', createdAt: now }, 120_000);
    await store.appendAudit({ at: 1, actor: 'alice', action: 'drain', target: 'b', detail: 'maintenance' });
    await store.renewLease('a', 'replica-1', now + 15_000);
    await store.putGatewayStatus({ cluster: 'a', instance: 'gw-1', version: '0.1.0', connected: true, replica: 'r1', lastSeen: now, appliedRevision: 4, appliedPolicyRevision: 4, lastNack: '', lastNackRevision: 0, exports: 2, connectedAt: now });
    const fence = await store.acquireLock('leader', 'replica-1', 60_000);
    const before = { snapshot: await store.snapshot(), changes: await store.changesSince(0), audit: await store.listAudit(10), statuses: await store.listGatewayStatus() };

    store = await factory.reopen(store);
    expect(await store.snapshot()).toEqual(before.snapshot);
    expect(await store.changesSince(0)).toEqual(before.changes);
    expect(await store.listAudit(10)).toEqual(before.audit);
    expect(await store.listGatewayStatus()).toEqual(before.statuses);
    expect(await store.expiredLeases(now + 15_000)).toEqual(['a']);
    expect(await store.expiredLeases(now + 14_999)).toEqual([]);
    expect(await store.consumeToken('h', now, 'c')).toMatchObject({ status: 'ok' });
    // Fencing tokens never repeat across a restart, whoever asks.
    expect(await store.acquireLock('other', 'replica-2', 60_000)).toBeGreaterThan(fence as number);
    // A watcher resumes from where a gateway left off.
    const events = await collect(store.watch(3, new AbortController().signal), 2);
    expect(events.map((e) => (e.kind === 'changes' ? e.revision : e.reason))).toEqual([4, 5]);
    await store.close();
  });
});

describe('JournalStore specifics', () => {
  const logged = (): { log: ReturnType<typeof createRootLogger>; lines: Array<{ level: string; msg: string; file?: string }> } => {
    const lines: Array<{ level: string; msg: string; file?: string }> = [];
    return { lines, log: createRootLogger({ level: 'info', destination: { write: (line: string) => void lines.push(JSON.parse(line)) } }) };
  };
  const journalAt = (dir: string): string => join(dir, JOURNAL_FILE);
  const newDir = (): string => {
    const dir = mkdtempSync(join(tmpdir(), 'fedgate-journal-'));
    dataDirs.push(dir);
    return dir;
  };
  /** The records of a journal file as written: sequence number and batch of each. */
  const recordsOf = (dir: string): Array<{ s: number; b: number }> =>
    readFrames(readFileSync(journalAt(dir)))
      .frames.slice(1)
      .map((frame) => JSON.parse(frame.payload.toString('utf8')) as { s: number; b: number });
  async function written(dir: string, exports: number): Promise<void> {
    const store = new JournalStore({ dataDir: dir });
    await store.open();
    await store.createCluster(clusterRecord('a'), bundleRecord('a.acme.internal'));
    for (let i = 0; i < exports; i++) await store.writeExports('a', { upserts: [exportRecord('a', `svc-${i}`)], deletes: [], replace: false });
    await store.close();
  }

  it('judges a lock written on another host by its refreshes: kept is in use, untouched for a minute is stale', async () => {
    const dir = newDir();
    const lock = join(dir, 'controller.lock');
    writeFileSync(lock, `${JSON.stringify({ pid: 4242, host: 'old-pod-7f9c', start: '1' })}\n`);
    await expectCode(
      new JournalStore({ dataDir: dir }).open(),
      ErrorCodes.STORE_UNAVAILABLE,
      `data dir ${dir} is in use by controller pid 4242 on host old-pod-7f9c (taken over once not refreshed for 60 s); the embedded store allows one replica`,
    );
    const twoMinutesAgo = new Date(Date.now() - 120_000);
    utimesSync(lock, twoMinutesAgo, twoMinutesAgo);
    const store = new JournalStore({ dataDir: dir });
    opened.push(store);
    await store.open();
    expect(JSON.parse(readFileSync(lock, 'utf8'))).toMatchObject({ pid: process.pid });
    await store.close();
  });

  it('refuses writes before it is open: they would not be durable', async () => {
    const store = new JournalStore({ dataDir: newDir() });
    opened.push(store);
    await expectCode(store.putBundle(bundleRecord('x', 1)), ErrorCodes.STORE_UNAVAILABLE, /is not open/);
  });

  it('commits concurrent writes together: one fsync for every write that arrived while the previous one ran', async () => {
    const dir = newDir();
    const store = new JournalStore({ dataDir: dir });
    opened.push(store);
    await store.open();
    await store.createCluster(clusterRecord('a'), bundleRecord('a.acme.internal'));
    const revisions = await Promise.all(Array.from({ length: 32 }, (_, i) => store.writeExports('a', { upserts: [exportRecord('a', `svc-${i}`)], deletes: [], replace: false })));
    expect([...revisions].sort((x, y) => (x as number) - (y as number))).toEqual(Array.from({ length: 32 }, (_, i) => i + 2));
    const records = recordsOf(dir);
    expect(records.map((r) => r.s)).toEqual(Array.from({ length: records.length }, (_, i) => i + 1));
    // 32 writes issued at once share far fewer batches (each batch is one write + fsync).
    const batches = new Set(records.slice(2).map((r) => r.b));
    expect(batches.size).toBeLessThan(8);
    await store.close();
  });

  it('journals results, not operations: the epoch, fencing tokens and revisions come back identical; locks and replicas do not survive', async () => {
    const dir = newDir();
    const store = new JournalStore({ dataDir: dir });
    opened.push(store);
    const { epoch } = await store.open();
    const t1 = await store.acquireLock('leader', 'r1', 60_000);
    const t2 = await store.acquireLock('restore', 'r1', 60_000);
    await store.putBundle(bundleRecord('x', 1));
    await store.putReplica({ id: 'r1', apiAddress: '127.0.0.1:15012', startedAt: 1, expiresAt: Date.now() + 60_000 });
    await store.close();
    const again = new JournalStore({ dataDir: dir });
    opened.push(again);
    expect(await again.open()).toEqual({ epoch, created: false });
    expect(await again.revision()).toBe(1);
    // The lock died with its holder's process (one controller per data dir); its token is not handed out again.
    const t3 = await again.acquireLock('leader', 'r2', 60_000);
    expect([t1, t2, t3]).toEqual([1, 2, 3]);
    // Nor does the replica registry: the one replica after a restart announces itself anew.
    expect(await again.listReplicas(0)).toEqual([]);
    await again.close();
  });

  it('cuts a torn last record off with one log line, and keeps everything before it', async () => {
    const dir = newDir();
    await written(dir, 5);
    const intact = statSync(journalAt(dir)).size;
    // The start of a record whose write a crash interrupted.
    // (`written` left records 1–7: the epoch, the cluster, five exports.)
    const torn = encodeFrame(JSON.stringify({ s: 8, b: 8, c: [{ revision: 7, type: 'bundle', key: 'late', op: 'put', value: bundleRecord('late', 1) }] }));
    appendFileSync(journalAt(dir), torn.subarray(0, torn.length - 10));
    const { log, lines } = logged();
    const store = new JournalStore({ dataDir: dir, log });
    opened.push(store);
    await store.open();
    expect(lines.filter((l) => l.level === 'warn')).toEqual([
      expect.objectContaining({ file: journalAt(dir), msg: 'journal ended in a torn record (a write cut short by a crash); cut it off — every acknowledged write before it is intact' }),
    ]);
    expect(statSync(journalAt(dir)).size).toBe(intact);
    expect(await store.revision()).toBe(6);
    expect(await store.listExports('a')).toHaveLength(5);
    expect(await store.putBundle(bundleRecord('late', 1))).toEqual({ revision: 7 });
    await store.close();
    const { log: quiet, lines: none } = logged();
    const again = new JournalStore({ dataDir: dir, log: quiet });
    opened.push(again);
    await again.open();
    expect(none.filter((l) => l.level === 'warn')).toEqual([]);
    expect(await again.revision()).toBe(7);
    await again.close();
  });

  it('treats damage inside the last batch as torn (pages of one write reach the disk in any order), and damage before a later batch as corruption', async () => {
    const record = (s: number, b: number): Buffer => encodeFrame(JSON.stringify({ s, b, c: [{ revision: s - 1, type: 'bundle', key: `td-${s}`, op: 'put', value: bundleRecord(`td-${s}`, 1) }], w: [['meta', 'revision', s - 1]] }));
    const zeroed = (frame: Buffer): Buffer => Buffer.concat([Buffer.alloc(frame.length - 20), frame.subarray(frame.length - 20)]);

    // One batch (records 8–10, batch 8): its middle record never reached the disk, its last one did.
    const torn = newDir();
    await written(torn, 5);
    appendFileSync(journalAt(torn), Buffer.concat([record(8, 8), zeroed(record(9, 8)), record(10, 8)]));
    const store = new JournalStore({ dataDir: torn });
    opened.push(store);
    await store.open();
    expect(await store.revision()).toBe(7);
    expect((await store.listBundles()).map((b) => b.trustDomain).sort()).toEqual(['a.acme.internal', 'td-8']);
    await store.close();

    // The same damage, but a later batch (10) follows: the damaged record had been acknowledged.
    const corrupt = newDir();
    await written(corrupt, 5);
    appendFileSync(journalAt(corrupt), Buffer.concat([record(8, 8), zeroed(record(9, 9)), record(10, 10)]));
    const content = readFileSync(journalAt(corrupt));
    const refused = new JournalStore({ dataDir: corrupt });
    opened.push(refused);
    await expectCode(refused.open(), ErrorCodes.STORE_UNAVAILABLE, `embedded store file ${journalAt(corrupt)} is damaged: impossible frame length 0 at byte`);
    await expect(refused.open()).rejects.toThrow('and records written after it were acknowledged; restore the data dir from a backup');
    // Nothing was cut, and the lock was given back.
    expect(readFileSync(journalAt(corrupt)).equals(content)).toBe(true);
    expect(readdirSync(corrupt)).not.toContain('controller.lock');
  });

  it('refuses a journal of a newer format version, naming the file, and leaves it untouched', async () => {
    const dir = newDir();
    await written(dir, 2);
    const original = readFileSync(journalAt(dir));
    const header = readFrames(original).frames[0] as { end: number };
    const newer = Buffer.concat([encodeFrame(JSON.stringify({ format: 'fedgate-store-journal', version: 2 })), original.subarray(header.end)]);
    writeFileSync(journalAt(dir), newer);
    const store = new JournalStore({ dataDir: dir });
    opened.push(store);
    await expectCode(
      store.open(),
      ErrorCodes.STORE_UNAVAILABLE,
      `embedded store file ${journalAt(dir)} has format version 2, newer than this fedgate reads (1); run the fedgate version that wrote it (or a newer one)`,
    );
    expect(readFileSync(journalAt(dir)).equals(newer)).toBe(true);
    writeFileSync(journalAt(dir), Buffer.concat([encodeFrame(JSON.stringify({ format: 'something-else', version: 1 })), original.subarray(header.end)]));
    await expectCode(store.open(), ErrorCodes.STORE_UNAVAILABLE, `embedded store file ${journalAt(dir)} is not a fedgate-store-journal file`);
  });

  it('refuses a journal whose records do not continue the snapshot (a snapshot removed by hand)', async () => {
    const dir = newDir();
    const store = new JournalStore({ dataDir: dir });
    opened.push(store);
    await store.open();
    await store.createCluster(clusterRecord('a'), bundleRecord('a.acme.internal'));
    await store.compact();
    await store.putBundle(bundleRecord('x', 1));
    await store.close();
    rmSync(join(dir, SNAPSHOT_FILE));
    await expectCode(new JournalStore({ dataDir: dir }).open(), ErrorCodes.STORE_UNAVAILABLE, /follows record 0: records are missing/);
  });

  it('compacts the journal into a snapshot as it grows, so it stays small, and loses nothing', async () => {
    const dir = newDir();
    const store = new JournalStore({ dataDir: dir, compactAfterBytes: 64 * 1024 });
    opened.push(store);
    await store.open();
    await store.createCluster(clusterRecord('a'), bundleRecord('a.acme.internal'));
    for (let round = 0; round < 20; round++) {
      await store.writeExports('a', { upserts: Array.from({ length: 500 }, (_, i) => exportRecord('a', `svc-${i}`, { readyEndpoints: round })), deletes: [], replace: true });
    }
    const before = await store.snapshot();
    await store.close();
    // 20 rewrites of 500 exports (~4 MB of records): the journal never outgrows the snapshot (which
    // also holds the change log's window) by more than the batch that crossed the line.
    const journalBytes = statSync(journalAt(dir)).size;
    expect(journalBytes).toBeLessThan(Math.max(64 * 1024, statSync(join(dir, SNAPSHOT_FILE)).size) + 300 * 1024);
    expect(readdirSync(dir).sort()).toEqual([JOURNAL_FILE, SNAPSHOT_FILE]);
    const again = new JournalStore({ dataDir: dir });
    opened.push(again);
    await again.open();
    expect(await again.snapshot()).toEqual(before);
    expect((await again.listExports('a')).every((e) => e.readyEndpoints === 19)).toBe(true);
    await again.close();
  });
});
