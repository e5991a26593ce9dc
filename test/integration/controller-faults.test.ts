/**
 * The controller as a real process against a real redis-server, failed on purpose: the controller
 * SIGKILLed mid-stream, Redis restarted empty, Redis down, a Sentinel failover. The gateway side
 * is the real sync client, in this process.
 */
import { jest } from '@jest/globals';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connectAdmin, readAdminCredentials, type AdminConnection } from '../../src/cli/controller-api.js';
import type { CatalogData } from '../../src/gateway/control/catalog-replica.js';
import { eventually, exportSpec, joinSimulatedGateway, writeFederationYaml, type SimulatedGateway } from '../support/control-plane.js';
import { freePorts } from '../support/ports.js';
import { FedgateProcess, httpGet, waitForHttp } from '../support/processes.js';
import { RedisProcess, SentinelSetup } from '../support/redis-server.js';

jest.setTimeout(60_000);

interface Replica {
  process: FedgateProcess;
  api: string;
  admin: string;
  configFile: string;
}

let dir: string;
const processes: FedgateProcess[] = [];
const gateways: SimulatedGateway[] = [];
const admins: AdminConnection[] = [];
const backends: Array<{ stop(): Promise<void> }> = [];

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'fedgate-faults-'));
});
afterEach(async () => {
  for (const g of gateways.splice(0)) g.stop();
  for (const a of admins.splice(0)) a.close();
  await Promise.all(processes.splice(0).map((p) => p.stop()));
  await Promise.all(backends.splice(0).map((b) => b.stop()));
  rmSync(dir, { recursive: true, force: true });
});

async function startReplica(name: string, store: { url?: string; sentinels?: string[] }, leaseTtl = '15s', ports?: number[]): Promise<Replica> {
  const [api, join_, admin] = (ports ?? (await freePorts(3))) as [number, number, number];
  const configFile = writeFederationYaml({ dir, name, pkiDir: join(dir, 'controller-pki'), ports: { api, join: join_, admin }, store, leaseTtl });
  const process = FedgateProcess.start(name, ['controller', '--config', configFile]);
  processes.push(process);
  await waitForHttp(`http://127.0.0.1:${admin}/readyz`, 200, 20_000, process);
  return { process, api: `127.0.0.1:${api}`, admin: `127.0.0.1:${admin}`, configFile };
}

function adminOf(replica: Replica): AdminConnection {
  const connection = connectAdmin(replica.api, readAdminCredentials(join(dir, 'controller-pki', 'admin')));
  admins.push(connection);
  return connection;
}

function policy(name: string, timeout = '1s') {
  return { key: '', kind: '', namespace: '', name: '', json: JSON.stringify({ apiVersion: 'fedgate.io/v1alpha1', kind: 'TrafficPolicy', metadata: { name, namespace: 'default' }, spec: { timeout } }), revision: 0 };
}

describe('controller faults (real processes, real Redis)', () => {
  it('two replicas share one Redis: a gateway on A sees writes made through B', async () => {
    const redis = await RedisProcess.start();
    backends.push(redis);
    try {
      const a = await startReplica('replica-a', { url: redis.url });
      const b = await startReplica('replica-b', { url: redis.url });
      const east = await joinSimulatedGateway(adminOf(a), dir, 'us-east', { apiAddresses: [a.api], exports: [exportSpec('payments')] });
      const west = await joinSimulatedGateway(adminOf(b), dir, 'us-west', { apiAddresses: [b.api] });
      gateways.push(east, west);
      await eventually(() => west.catalog.data.services.has('default/payments'), 'us-west (on B) sees the export written through A');
      await adminOf(b).call.putPolicies({ policies: [policy('via-b')], sources: ['b.yaml'] });
      await eventually(() => east.catalog.data.policies.has('TrafficPolicy/default/via-b'), 'us-east (on A) sees the policy written through B');
      const status = await adminOf(a).call.status({});
      expect(status.clusters.map((c) => [c.info?.name, c.connected])).toEqual([['us-east', true], ['us-west', true]]);
    } finally {
      backends.splice(backends.indexOf(redis), 1);
      await redis.stop();
    }
  });

  it('a controller SIGKILLed mid-stream: the gateway resumes on another replica, no change lost or applied twice', async () => {
    const redis = await RedisProcess.start();
    backends.push(redis);
    try {
      const a = await startReplica('replica-a', { url: redis.url });
      const b = await startReplica('replica-b', { url: redis.url });
      const east = await joinSimulatedGateway(adminOf(a), dir, 'us-east', { apiAddresses: [a.api, b.api] });
      gateways.push(east);
      await eventually(() => east.catalog.data.clusters.has('us-east'), 'us-east synced');
      const writer = adminOf(b);
      let killed = false;
      for (let i = 0; i < 60; i++) {
        await writer.call.putPolicies({ policies: [policy(`p-${i}`)], sources: [`p-${i}.yaml`] });
        if (i === 20) {
          await a.process.kill('SIGKILL');
          killed = true;
        }
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      expect(killed).toBe(true);
      const final = await writer.call.listPolicies({});
      await eventually(() => east.catalog.data.policyRevision === final.revision && east.catalog.data.policies.size === 60, 'us-east holds all 60 policies');
      const revisions = east.catalog.history.map((h) => h.revision);
      expect(revisions).toEqual([...revisions].sort((x, y) => x - y));
      expect(new Set(revisions).size).toBe(revisions.length);
      // The stream after the kill resumed with a delta (the change log still reached back): one snapshot only, at the start.
      expect(east.catalog.history.filter((h) => h.snapshot)).toHaveLength(1);
      const held = [...east.catalog.data.policies.values()].map((p) => `${p.key}@${p.revision}`).sort();
      expect(held).toEqual(final.policies.map((p) => `${p.key}@${p.revision}`).sort());
    } finally {
      backends.splice(backends.indexOf(redis), 1);
      await redis.stop();
    }
  });

  it('Redis restarted without persistence: epoch detected, catalog rebuilt, no empty snapshot pushed', async () => {
    const redis = await RedisProcess.start();
    backends.push(redis);
    try {
      const a = await startReplica('replica-a', { url: redis.url });
      const admin = adminOf(a);
      const east = await joinSimulatedGateway(admin, dir, 'us-east', { apiAddresses: [a.api], exports: [exportSpec('payments')] });
      const west = await joinSimulatedGateway(admin, dir, 'us-west', { apiAddresses: [a.api], exports: [exportSpec('payments'), exportSpec('orders')] });
      gateways.push(east, west);
      await admin.call.putPolicies({ policies: [policy('payments')], sources: ['p.yaml'] });
      await eventually(() => east.catalog.data.services.size === 2 && east.catalog.data.policies.size === 1, 'us-east has the full catalog');
      const before = east.catalog.data;
      const seen: CatalogData[] = [];
      east.catalog.onChange((data) => seen.push(data));

      await redis.restart();
      await eventually(() => east.catalog.data.epoch !== before.epoch, 'us-east moved to the new epoch', 20_000);
      await waitForHttp(`http://${a.admin}/readyz`, 200, 20_000, a.process);
      for (const data of seen) {
        expect(data.clusters.size).toBe(2);
        expect(data.services.size).toBe(2);
      }
      expect([...east.catalog.data.services.keys()].sort()).toEqual(['default/orders', 'default/payments']);
      expect([...east.catalog.data.policies.keys()]).toEqual(['TrafficPolicy/default/payments']);
      expect(east.catalog.data.revision).toBeGreaterThanOrEqual(before.revision);
      // The rebuilt store holds the catalog again, and new writes work under the new epoch.
      west.exports.set([exportSpec('payments')]);
      await eventually(() => !east.catalog.data.services.has('default/orders'), 'a change after the rebuild propagates');
      expect(a.process.logs).toContain('the store lost its state; rebuilding the catalog');
      expect(a.process.logs).toContain('catalog rebuilt; gateways asked to re-send their exports');
    } finally {
      backends.splice(backends.indexOf(redis), 1);
      await redis.stop();
    }
  });

  it('Redis down: the controller is not ready, gateways keep their state; export changes arrive once Redis is back', async () => {
    const redis = await RedisProcess.start();
    backends.push(redis);
    try {
      const a = await startReplica('replica-a', { url: redis.url });
      const admin = adminOf(a);
      const east = await joinSimulatedGateway(admin, dir, 'us-east', { apiAddresses: [a.api], exports: [exportSpec('payments')] });
      const west = await joinSimulatedGateway(admin, dir, 'us-west', { apiAddresses: [a.api] });
      gateways.push(east, west);
      await eventually(() => west.catalog.data.services.has('default/payments'), 'payments at us-west');
      const held = west.catalog.data;

      await redis.kill();
      await waitForHttp(`http://${a.admin}/readyz`, 503, 10_000, a.process);
      expect((await httpGet(`http://${a.admin}/readyz`)).body).toContain('store unreachable');
      east.exports.set([exportSpec('payments'), exportSpec('orders')]);
      await new Promise((resolve) => setTimeout(resolve, 1500));
      expect(west.catalog.data).toBe(held);
      expect(east.client.connected).toBe(true);

      await redis.launch();
      await waitForHttp(`http://${a.admin}/readyz`, 200, 20_000, a.process);
      await eventually(() => west.catalog.data.services.has('default/orders'), 'the export made during the outage arrives', 20_000);
    } finally {
      backends.splice(backends.indexOf(redis), 1);
      await redis.stop();
    }
  });

  it('Sentinel failover: the controller continues on the new master', async () => {
    const sentinel = await SentinelSetup.start();
    backends.push(sentinel);
    try {
      const a = await startReplica('replica-a', { sentinels: [`127.0.0.1:${sentinel.sentinelPort}`] });
      const admin = adminOf(a);
      const east = await joinSimulatedGateway(admin, dir, 'us-east', { apiAddresses: [a.api], exports: [exportSpec('payments')] });
      gateways.push(east);
      await eventually(() => east.catalog.data.services.has('default/payments'), 'payments synced');
      // Let the replica catch up before the master dies, so the failover loses nothing.
      await new Promise((resolve) => setTimeout(resolve, 500));
      const oldMaster = sentinel.master.port;
      await sentinel.master.kill();
      await eventually(async () => (await sentinel.masterPort().catch(() => oldMaster)) === sentinel.replica.port, 'sentinel promoted the replica', 30_000);
      await eventually(
        async () => {
          try {
            await admin.call.putPolicies({ policies: [policy('after-failover')], sources: ['f.yaml'] });
            return true;
          } catch {
            return false;
          }
        },
        'a write through the controller succeeds on the new master',
        30_000,
      );
      await eventually(() => east.catalog.data.policies.has('TrafficPolicy/default/after-failover'), 'the write reaches the gateway');
      expect(east.catalog.data.services.has('default/payments')).toBe(true);
      await waitForHttp(`http://${a.admin}/readyz`, 200, 10_000, a.process);
    } finally {
      backends.splice(backends.indexOf(sentinel), 1);
      await sentinel.stop();
    }
  });

  it('a gateway whose lease expires is marked unreachable, and active again when it returns', async () => {
    const redis = await RedisProcess.start();
    backends.push(redis);
    try {
      const a = await startReplica('replica-a', { url: redis.url }, '3s');
      const b = await startReplica('replica-b', { url: redis.url }, '3s');
      const east = await joinSimulatedGateway(adminOf(a), dir, 'us-east', { apiAddresses: [a.api] });
      const west = await joinSimulatedGateway(adminOf(b), dir, 'us-west', { apiAddresses: [b.api] });
      gateways.push(east);
      await eventually(() => east.catalog.data.clusters.get('us-west')?.state === 'active' && west.client.connected, 'us-west active and syncing');
      west.stop();
      await eventually(() => east.catalog.data.clusters.get('us-west')?.state === 'unreachable', 'us-west unreachable after its lease expired', 15_000);
      expect(east.catalog.data.clusters.get('us-west')?.stateReason).toBe('no gateway heartbeat for 3000ms');
      const back = await import('../../src/core/lifecycle.js');
      const abort = new AbortController();
      void back.runResilient(west.client, abort.signal, { log: (await import('../../src/core/logger.js')).createSilentLogger(), backoff: { initialMs: 50 } });
      await eventually(() => east.catalog.data.clusters.get('us-west')?.state === 'active', 'us-west active again');
      abort.abort();

      // A cluster that joined but whose gateway never connected expires as well.
      const { token } = await adminOf(a).call.createToken({ cluster: 'eu-west', ttlMs: 60_000 });
      const { joinFederation } = await import('../../src/gateway/control/join-client.js');
      const { PkiDirectory } = await import('../../src/pki/pki-directory.js');
      const bundle = PkiDirectory.init(join(dir, 'pki', 'eu-west'), { trustDomain: 'eu-west.acme.internal' }).bundle();
      const info = { name: 'eu-west', region: 'eu', zone: 'eu-a', trustDomain: 'eu-west.acme.internal', gatewayAddresses: ['127.0.0.1:1'], labels: {}, state: '', stateReason: '', stateChangedBy: '', stateChangedAtMs: 0, joinedAtMs: 0 , blackholedServices: []};
      await joinFederation({ token, info, bundle, log: (await import('../../src/core/logger.js')).createSilentLogger() });
      await eventually(() => east.catalog.data.clusters.get('eu-west')?.state === 'unreachable', 'eu-west, never connected, unreachable', 15_000);
    } finally {
      backends.splice(backends.indexOf(redis), 1);
      await redis.stop();
    }
  });
});
