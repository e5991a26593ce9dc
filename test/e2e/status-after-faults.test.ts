/**
 * The federation's own account after faults (issue 24): `fedgate status` converges within a round
 * trip after a controller restart, a leader failover, Redis restarting empty and a gateway
 * restart, and never shows an instance connected that is not; a gateway killed and restarted at
 * once under load takes its traffic back within two health-check intervals without a failed call.
 * Everything is a real process: controllers, gateways, redis-server.
 */
import { jest } from '@jest/globals';
import { statusView, type FederationStatusView } from '../../src/cli/status.js';
import { startHttpBackend } from '../../src/demo/sample-backends.js';
import { startEchoServer } from '../../src/proto/echo-service.js';
import { eventually } from '../support/control-plane.js';
import { LocalFederation, type ClusterSpecYaml } from '../support/federation.js';
import { freePorts } from '../support/ports.js';
import { join } from 'node:path';
import { httpGet, runFedgate } from '../support/processes.js';
import { RedisProcess, redisCommand } from '../support/redis-server.js';

jest.setTimeout(120_000);

const CONVERGENCE_LIMIT_MS = 3000;

const POLICY = `apiVersion: fedgate.io/v1alpha1
kind: TrafficPolicy
metadata: { name: payments, namespace: default }
spec:
  timeout: 5s
`;

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined);
});

async function backends(names: string[]): Promise<Map<string, { http: number; grpc: number }>> {
  const ports = await freePorts(names.length * 2);
  const result = new Map<string, { http: number; grpc: number }>();
  for (const [i, name] of names.entries()) {
    const http = await startHttpBackend(name, '127.0.0.1', ports[i * 2] as number);
    const grpc = await startEchoServer(name, `127.0.0.1:${ports[i * 2 + 1] as number}`);
    cleanups.push(() => http.close(), () => grpc.close());
    result.set(name, { http: http.port, grpc: grpc.port });
  }
  return result;
}

function cluster(name: string, region: string, zone: string, ports?: { http: number; grpc: number }): ClusterSpecYaml {
  return {
    name,
    region,
    zone,
    exports: ports
      ? [
          {
            service: 'payments',
            ports: [
              { name: 'http', port: 8080, targetPort: ports.http, protocol: 'http' },
              { name: 'grpc', port: 9090, targetPort: ports.grpc, protocol: 'grpc' },
            ],
          },
        ]
      : [],
  };
}

async function createFederation(clusters: ClusterSpecYaml[], controller: { storeUrl?: string; leaseTtl?: string; replicas?: number }): Promise<LocalFederation> {
  const federation = await LocalFederation.create(clusters, { controller, policies: { 'payments.yaml': POLICY } });
  cleanups.push(() => federation.stop());
  await federation.startAll();
  return federation;
}

async function status(federation: LocalFederation, replica = 0): Promise<FederationStatusView> {
  return statusView(await federation.admin(replica).call.status({}));
}

/** The instance id of every gateway process that is running now, by cluster. */
async function liveInstances(federation: LocalFederation): Promise<Map<string, string>> {
  const live = new Map<string, string>();
  for (const [name, handle] of federation.clusters) {
    if (!handle.process?.running) continue;
    const config = JSON.parse((await httpGet(`${federation.adminUrl(name)}/config`)).body) as { instance: string };
    live.set(name, config.instance);
  }
  return live;
}

/** Every cluster has a live instance that applied the current catalog and policy revisions. */
function converged(view: FederationStatusView, live: Map<string, string>): boolean {
  if (view.policyRevision === 0) return false;
  return [...live].every(([name, instance]) => {
    const c = view.clusters.find((x) => x.name === name);
    const i = c?.instances.find((x) => x.instance === instance);
    return c !== undefined && c.connected && c.catalog.behind === 0 && c.policies.behind === 0 && !c.policies.refused && i?.connected === true && i.catalog === view.revision;
  });
}

/** Instances status shows as connected that are not running: what status must never claim. */
function lies(view: FederationStatusView, live: Map<string, string>): string[] {
  return view.clusters.flatMap((c) => c.instances.filter((i) => i.connected && live.get(c.name) !== i.instance).map((i) => `${c.name}/${i.instance}`));
}

/**
 * Polls status until it converges; fails on any lie seen on the way. Returns the time it took,
 * from `since` (performance.now() of the event it is measured from).
 */
async function untilConverged(federation: LocalFederation, since: number, replica = 0): Promise<number> {
  const live = await liveInstances(federation);
  const deadline = since + 30_000;
  let last: FederationStatusView | undefined;
  while (performance.now() < deadline) {
    try {
      last = await status(federation, replica);
    } catch {
      last = undefined;
    }
    if (last) {
      expect(lies(last, live)).toEqual([]);
      if (converged(last, live)) return performance.now() - since;
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`status did not converge: ${JSON.stringify(last?.clusters.map((c) => ({ name: c.name, connected: c.connected, catalog: c.catalog, policies: c.policies, instances: c.instances })))}`);
}

async function applyPolicyAndConverge(federation: LocalFederation): Promise<void> {
  const applied = await runFedgate(['policy', 'apply', '-f', join(federation.dir, 'policies'), ...federation.cliTarget()]);
  expect(applied.code).toBe(0);
  await untilConverged(federation, performance.now());
}

describe('status after faults', () => {
  let redis: RedisProcess;

  beforeEach(async () => {
    // appendfsync always: a write Redis acknowledged survives its SIGKILL, as with a managed Redis.
    redis = await RedisProcess.start({ args: ['--appendonly', 'yes', '--appendfsync', 'always'] });
    cleanups.push(() => redis.stop());
  });

  it.each([
    { store: 'Redis with AOF', storeUrl: (): string | undefined => redis.url },
    // No store URL: the controller's default, the embedded store journaled to its data dir.
    { store: 'the embedded journal store', storeUrl: (): string | undefined => undefined },
  ])('converges within 3 s after the controller is SIGKILLed and restarted ($store), and never shows a killed gateway as connected', async ({ store, storeUrl }) => {
    const ports = await backends(['east']);
    const federation = await createFederation([cluster('east', 'r1', 'a', ports.get('east')), cluster('west', 'r2', 'a')], { storeUrl: storeUrl(), leaseTtl: '3s' });
    await applyPolicyAndConverge(federation);

    await federation.controller?.process?.kill('SIGKILL');
    // A gateway that dies while the controller is away: its record says connected, and must not be believed.
    await federation.cluster('west').process?.kill('SIGKILL');
    await federation.startReplica(0);
    const elapsed = await untilConverged(federation, performance.now());
    console.log(`controller restart (${store}): status converged ${elapsed.toFixed(0)} ms after the controller was ready`);
    expect(elapsed).toBeLessThanOrEqual(CONVERGENCE_LIMIT_MS);
    const west = (await status(federation)).clusters.find((c) => c.name === 'west');
    expect(west?.connected).toBe(false);
    expect(west?.instances.map((i) => i.state)).toEqual(['stale']);

    // The gateway comes back: converged again within a round trip of its readiness.
    await federation.start('west');
    const back = await untilConverged(federation, performance.now());
    console.log(`gateway restart after the controller's: status converged ${back.toFixed(0)} ms after the gateway was ready`);
    expect(back).toBeLessThanOrEqual(CONVERGENCE_LIMIT_MS);
  });

  it('converges after a gateway is SIGKILLed and restarted at once, without showing the dead instance as connected', async () => {
    const ports = await backends(['east']);
    const federation = await createFederation([cluster('east', 'r1', 'a', ports.get('east')), cluster('west', 'r2', 'a')], { storeUrl: redis.url, leaseTtl: '3s' });
    await applyPolicyAndConverge(federation);
    const before = (await liveInstances(federation)).get('east');
    await federation.restart('east');
    const elapsed = await untilConverged(federation, performance.now());
    console.log(`gateway SIGKILL + restart: status converged ${elapsed.toFixed(0)} ms after the gateway was ready`);
    expect(elapsed).toBeLessThanOrEqual(CONVERGENCE_LIMIT_MS);
    const east = (await status(federation)).clusters.find((c) => c.name === 'east');
    expect(east?.instances.find((i) => i.instance === before)?.connected).toBe(false);
    const config = JSON.parse((await httpGet(`${federation.adminUrl('east')}/config`)).body) as { controllerConnected: boolean };
    expect(config.controllerConnected).toBe(true);
  });

  it('fails over to the surviving replica when the leader is SIGKILLed, with no load balancer in front', async () => {
    const ports = await backends(['east']);
    const federation = await createFederation([cluster('east', 'r1', 'a', ports.get('east')), cluster('west', 'r2', 'a')], { storeUrl: redis.url, leaseTtl: '3s', replicas: 2 });
    await applyPolicyAndConverge(federation);
    // Every gateway learned both replicas from the one it joined through.
    await eventually(async () => {
      for (const name of ['east', 'west']) {
        const config = JSON.parse((await httpGet(`${federation.adminUrl(name)}/config`)).body) as { controllers: string[] };
        if (config.controllers.length !== 2) return false;
      }
      return true;
    }, 'gateways know both replicas');
    const leaderOf = async (index: number): Promise<boolean> =>
      (JSON.parse((await httpGet(`http://127.0.0.1:${federation.controllerReplicas[index]?.ports.admin}/config`)).body) as { leader: boolean }).leader;
    expect(await leaderOf(0)).toBe(true);

    const killedAt = performance.now();
    await federation.controllerReplicas[0]?.process?.kill('SIGKILL');
    const elapsed = await untilConverged(federation, killedAt, 1);
    await eventually(() => leaderOf(1), 'replica 1 leads');
    const leaderAfter = performance.now() - killedAt;
    console.log(`leader SIGKILL: status converged on the survivor after ${elapsed.toFixed(0)} ms, survivor leads after ${leaderAfter.toFixed(0)} ms (lease TTL 3 s)`);
    expect(elapsed).toBeLessThanOrEqual(3000);
    expect(leaderAfter).toBeLessThanOrEqual(3000);
  });

  it('after Redis restarts empty: not ready until the catalog is back in Redis, then converged, audit log kept', async () => {
    await redis.stop();
    const plain = await RedisProcess.start();
    cleanups.push(() => plain.stop());
    const ports = await backends(['east']);
    const federation = await createFederation([cluster('east', 'r1', 'a', ports.get('east')), cluster('west', 'r2', 'a')], { storeUrl: plain.url, leaseTtl: '3s' });
    await applyPolicyAndConverge(federation);
    const markedAt = Date.now();
    await federation.admin().call.drainCluster({ cluster: 'west', reason: 'audit marker' });
    await federation.admin().call.undrainCluster({ cluster: 'west', reason: 'audit marker' });
    const admin = `http://127.0.0.1:${federation.controller?.ports.admin}`;
    // The controller keeps a copy of the audit log, refreshed with its replica heartbeat.
    await eventually(async () => (JSON.parse((await httpGet(`${admin}/config`)).body) as { auditCopy: { newestAt: number } }).auditCopy.newestAt >= markedAt, 'audit copy holds the drain');

    await plain.restart();
    const restartedAt = performance.now();
    // Whenever the controller says ready, Redis must hold the catalog again.
    let readyAt = 0;
    while (performance.now() - restartedAt < 30_000) {
      const ready = (await httpGet(`${admin}/readyz`).catch(() => ({ status: 0 }))).status === 200;
      if (ready) {
        const clusters = await redisCommand(plain.port, 'HLEN {fedgate}:clusters');
        if (clusters.trim() === ':2') {
          readyAt = performance.now();
          break;
        }
        throw new Error('the controller reported ready while Redis held no catalog');
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    expect(readyAt).toBeGreaterThan(0);
    const elapsed = await untilConverged(federation, readyAt);
    console.log(`redis restarted empty: ready again after ${(readyAt - restartedAt).toFixed(0)} ms, status converged ${elapsed.toFixed(0)} ms later`);
    expect(elapsed).toBeLessThanOrEqual(CONVERGENCE_LIMIT_MS);
    const audit = (await status(federation)).audit;
    expect(audit.some((a) => a.action === 'drain' && a.target === 'west')).toBe(true);
  });
});
