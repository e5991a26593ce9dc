/**
 * One policy set, applied once through the controller, in force in three gateways (real processes):
 * traffic split and header canary, retries, circuit breaking, outlier detection, fault injection,
 * authorization across clusters on the caller's workload identity, and a gateway that refuses a
 * set (NACK) shown by `fedgate status` while the others apply it.
 */
import { jest } from '@jest/globals';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as netConnect } from 'node:net';
import { startHttpBackend, startTcpEchoBackend } from '../../src/demo/sample-backends.js';
import { runLoad } from '../../src/drill/load-generator.js';
import type { FederationStatusView } from '../../src/cli/status.js';
import { eventually } from '../support/control-plane.js';
import { LocalFederation } from '../support/federation.js';
import { http1, type HttpResult } from '../support/http-client.js';
import { freePorts } from '../support/ports.js';
import { httpGet, runFedgate } from '../support/processes.js';

jest.setTimeout(120_000);

const svc = (name: string): string => `${name}.shop.svc.clusterset.local:8080`;

const BASE_SET = `
apiVersion: fedgate.io/v1alpha1
kind: RoutePolicy
metadata: {name: reviews-canary, namespace: shop}
spec:
  service: reviews
  routes:
    - name: beta-testers
      match: [{headers: {x-canary: {exact: always}}}]
      destinations: [{labels: {version: v2}}]
    - name: split
      destinations:
        - {labels: {version: v1}, weight: 90}
        - {labels: {version: v2}, weight: 10}
---
apiVersion: fedgate.io/v1alpha1
kind: TrafficPolicy
metadata: {name: flaky, namespace: shop}
spec:
  service: flaky
  retries: {attempts: 0}
---
apiVersion: fedgate.io/v1alpha1
kind: TrafficPolicy
metadata: {name: slow-breaker, namespace: shop}
spec:
  service: slow
  retries: {attempts: 0}
  connectionPool: {maxRequests: 4}
---
apiVersion: fedgate.io/v1alpha1
kind: TrafficPolicy
metadata: {name: ratings-outliers, namespace: shop}
spec:
  service: ratings
  retries: {attempts: 0}
  outlierDetection: {consecutiveErrors: 3, baseEjectionTime: 60s, maxEjectionPercent: 50}
---
apiVersion: fedgate.io/v1alpha1
kind: AuthorizationPolicy
metadata: {name: ledger-allow-web, namespace: shop}
spec:
  service: ledger
  action: ALLOW
  rules:
    - from: [{principals: ["spiffe://east.test.internal/ns/shop/sa/web"]}]
      to: [{methods: [GET]}]
---
apiVersion: fedgate.io/v1alpha1
kind: AuthorizationPolicy
metadata: {name: vault-web-only, namespace: shop}
spec:
  service: vault
  action: ALLOW
  rules:
    - from: [{principals: ["*/sa/web"]}]
---
apiVersion: fedgate.io/v1alpha1
kind: AuthorizationPolicy
metadata: {name: ledger-deny-admin, namespace: shop}
spec:
  service: ledger
  action: DENY
  rules:
    - to: [{paths: ["/admin/*"]}]
`;

const RETRIES = `
apiVersion: fedgate.io/v1alpha1
kind: TrafficPolicy
metadata: {name: flaky, namespace: shop}
spec:
  service: flaky
  retries: {attempts: 3, retryOn: [5xx]}
`;

const FAULTS = `
apiVersion: fedgate.io/v1alpha1
kind: FaultPolicy
metadata: {name: catalog-chaos, namespace: shop}
spec:
  service: catalog
  faults:
    - match: [{headers: {x-chaos: {exact: "on"}}}]
      delay: {fixedDelay: 200ms, percentage: 50}
      abort: {httpStatus: 503, percentage: 25}
`;

interface GatewayConfig {
  policies: { appliedRevision: number; latestRevision: number; inSync: boolean; nack?: { revision: number; reason: string }; documents: Array<{ key: string }> };
}

describe('policies across three gateways', () => {
  let federation: LocalFederation;
  let scratch: string;
  const backends: Array<{ close(): Promise<void> }> = [];

  async function gatewayConfig(cluster: string): Promise<GatewayConfig> {
    return JSON.parse((await httpGet(`${federation.adminUrl(cluster)}/config`)).body) as GatewayConfig;
  }

  async function apply(name: string, yaml: string): Promise<number> {
    const file = join(scratch, `${name}.yaml`);
    writeFileSync(file, yaml);
    const result = await runFedgate(['policy', 'apply', '-f', file, ...federation.cliTarget()]);
    expect({ code: result.code, stderr: result.stderr }).toEqual({ code: 0, stderr: '' });
    const revision = /policy revision (\d+)/.exec(result.stdout)?.[1];
    return Number(revision);
  }

  async function status(): Promise<FederationStatusView> {
    const result = await runFedgate(['status', '-o', 'json', ...federation.cliTarget()]);
    expect(result.code).toBe(0);
    return JSON.parse(result.stdout) as FederationStatusView;
  }

  async function inForce(clusters: string[], revision: number): Promise<void> {
    for (const cluster of clusters) await eventually(async () => (await gatewayConfig(cluster)).policies.appliedRevision === revision, `${cluster} applies policy revision ${revision}`, 15_000);
  }

  beforeAll(async () => {
    scratch = mkdtempSync(join(tmpdir(), 'fedgate-policies-'));
    const ports = (await freePorts(10)) as number[];
    const port = (i: number): number => ports[i] as number;
    backends.push(await startHttpBackend('east', '127.0.0.1', port(0)));
    backends.push(await startHttpBackend('west', '127.0.0.1', port(1)));
    backends.push(await startHttpBackend('canary', '127.0.0.1', port(2)));
    backends.push(await startHttpBackend('west', '127.0.0.1', port(3), { failEvery: 2 }));
    backends.push(await startHttpBackend('west', '127.0.0.1', port(4)));
    backends.push(await startHttpBackend('canary', '127.0.0.1', port(5), { failEvery: 1 }));
    backends.push(await startHttpBackend('west', '127.0.0.1', port(6)));
    backends.push(await startTcpEchoBackend('127.0.0.1', port(7)));
    const http = (service: string, target: number) => ({ service, namespace: 'shop', ports: [{ name: 'http', port: 8080, targetPort: target, protocol: 'http' as const }] });
    federation = await LocalFederation.create(
      [
        {
          name: 'east',
          region: 'us-east',
          zone: 'a',
          labels: { version: 'v1' },
          exports: [http('reviews', port(0))],
          tcpImports: [{ service: 'vault.shop', port: 7000 }],
          // Local callers by source address: 127.0.0.2 is shop/web, 127.0.0.3 shop/batch; others are the gateway.
          callers: [
            { address: '127.0.0.2', namespace: 'shop', serviceAccount: 'web' },
            { address: '127.0.0.3/32', namespace: 'shop', serviceAccount: 'batch' },
          ],
        },
        {
          name: 'west',
          region: 'us-west',
          zone: 'a',
          labels: { version: 'v1' },
          exports: [http('reviews', port(1)), http('flaky', port(3)), http('slow', port(4)), http('ratings', port(4)), http('ledger', port(6)), http('catalog', port(6)), { service: 'vault', namespace: 'shop', ports: [{ name: 'tcp', port: 7000, targetPort: port(7), protocol: 'tcp' as const }] }],
        },
        {
          name: 'canary',
          region: 'us-west',
          zone: 'b',
          labels: { version: 'v2' },
          exports: [http('reviews', port(2)), http('ratings', port(5))],
          // This cluster's gateway refuses fault injection: a set with a FaultPolicy for it is NACKed.
          policies: { allowFaultInjection: false },
        },
      ],
      { controller: {} },
    );
    await federation.startAll();
    for (const cluster of ['east', 'canary']) {
      await eventually(async () => (JSON.parse((await httpGet(`${federation.adminUrl(cluster)}/config`)).body) as { catalog: { services: unknown[] } }).catalog.services.length === 7 || undefined, `${cluster} sees every service`, 15_000);
    }
  });

  afterAll(async () => {
    await federation?.stop();
    for (const b of backends) await b.close();
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  });

  it('applies one set once and every gateway reports the same policy revision in /config', async () => {
    const revision = await apply('base', BASE_SET);
    await inForce(['east', 'west', 'canary'], revision);
    const configs = await Promise.all(['east', 'west', 'canary'].map(gatewayConfig));
    expect(configs.map((c) => c.policies.appliedRevision)).toEqual([revision, revision, revision]);
    expect(configs.every((c) => c.policies.inSync)).toBe(true);
    expect(configs.map((c) => c.policies.documents.length)).toEqual([7, 7, 7]);
    const view = await eventually(async () => {
      const s = await status();
      return s.policyConvergence.inForce.length === 3 ? s : undefined;
    }, 'status shows the set in force everywhere');
    expect(view.policyConvergence).toEqual({ latest: revision, inForce: ['canary', 'east', 'west'], behind: [], refused: [] });
    // The federation defaults the controller sends are accepted too (they travel as the file wrote them).
    for (const cluster of ['east', 'west', 'canary']) expect(federation.cluster(cluster).process?.logs).not.toContain('federation defaults rejected');
  });

  it('splits 90/10 between version labels over 2,000 requests, within 3 points', async () => {
    const samples = await runLoad({ kind: 'http', address: federation.outbound('east'), authority: svc('reviews') }, { rps: 400, durationMs: 5000 });
    expect(samples).toHaveLength(2000);
    expect(samples.filter((s) => !s.ok)).toEqual([]);
    const canary = samples.filter((s) => s.servedBy === 'canary').length / samples.length;
    const v1 = samples.filter((s) => s.servedBy === 'east' || s.servedBy === 'west').length / samples.length;
    console.log(`split over ${samples.length} requests: v1 ${(v1 * 100).toFixed(1)} %, v2 (canary) ${(canary * 100).toFixed(1)} %`);
    expect(Math.abs(canary * 100 - 10)).toBeLessThanOrEqual(3);
    expect(Math.abs(v1 * 100 - 90)).toBeLessThanOrEqual(3);
  });

  it('routes requests with the canary header to the canary', async () => {
    const results = await Promise.all(Array.from({ length: 50 }, () => http1(federation.outbound('east'), svc('reviews'), { headers: { 'x-canary': 'always' } })));
    expect(results.map((r) => (JSON.parse(r.body) as { servedBy: string }).servedBy)).toEqual(Array(50).fill('canary'));
  });

  it('retries turn a flaky backend’s 503s into successes', async () => {
    const sequentially = async (n: number): Promise<HttpResult[]> => {
      const out: HttpResult[] = [];
      for (let i = 0; i < n; i++) out.push(await http1(federation.outbound('east'), svc('flaky')));
      return out;
    };
    const without = await sequentially(100);
    const failedWithout = without.filter((r) => r.status === 503).length;
    expect(failedWithout).toBeGreaterThanOrEqual(40);
    const revision = await apply('retries', RETRIES);
    await inForce(['east'], revision);
    const withRetries = await sequentially(100);
    console.log(`flaky backend: ${failedWithout}/100 failed without retries, ${withRetries.filter((r) => r.status !== 200).length}/100 with attempts: 3`);
    expect(withRetries.map((r) => r.status)).toEqual(Array(100).fill(200));
    const metrics = (await httpGet(`${federation.adminUrl('east')}/metrics`)).body;
    expect(metrics).toMatch(/fedgate_retries_total\{[^}]*service="shop\/flaky"[^}]*reason="status-503"[^}]*\} [1-9]/);
  });

  it('a circuit breaker sheds load past maxRequests with fast 503s', async () => {
    const order: Array<{ status: number; reason: string | undefined }> = [];
    await Promise.all(
      Array.from({ length: 20 }, () =>
        http1(federation.outbound('east'), svc('slow'), { path: '/?delay=800' }).then((r) => {
          order.push({ status: r.status, reason: r.headers['x-fedgate-reason'] as string | undefined });
        }),
      ),
    );
    expect(order.filter((o) => o.status === 200)).toHaveLength(4);
    expect(order.filter((o) => o.status === 503)).toEqual(Array(16).fill({ status: 503, reason: 'overflow' }));
    // Shed, not queued: every refusal came back before the first admitted request finished.
    expect(order.slice(0, 16).every((o) => o.status === 503)).toBe(true);
  });

  it('outlier detection ejects the failing cluster after the configured 3 errors', async () => {
    const served: Array<{ status: number; cluster: string | undefined }> = [];
    for (let i = 0; i < 60; i++) {
      const r = await http1(federation.outbound('east'), svc('ratings'));
      served.push({ status: r.status, cluster: (r.headers['x-fedgate-upstream-cluster'] as string | undefined) ?? (r.headers['x-served-by'] as string | undefined) });
    }
    const failures = served.filter((s) => s.status !== 200);
    expect(failures).toHaveLength(3);
    expect(failures.every((f) => f.cluster === 'canary')).toBe(true);
    const lastFailure = served.findIndex((s, i) => s.status !== 200 && served.slice(i + 1).every((later) => later.status === 200));
    expect(served.slice(lastFailure + 1).every((s) => s.cluster === 'west')).toBe(true);
    const metrics = (await httpGet(`${federation.adminUrl('east')}/metrics`)).body;
    expect(metrics).toMatch(/fedgate_failovers_total\{[^}]*destination_cluster="canary"[^}]*reason="outlier-ejection"[^}]*\} 1/);
  });

  it('authorization allows the named principal and denies others, across clusters', async () => {
    const call = (localAddress: string, options: { method?: string; path?: string } = {}): Promise<HttpResult> => http1(federation.outbound('east'), svc('ledger'), { localAddress, ...options });
    const web = await call('127.0.0.2');
    expect(web.status).toBe(200);
    expect((JSON.parse(web.body) as { caller: string }).caller).toBe('spiffe://east.test.internal/ns/shop/sa/web');

    const batch = await call('127.0.0.3');
    expect(batch.status).toBe(403);
    expect(batch.headers['x-fedgate-reason']).toBe('denied');
    expect(batch.headers['x-fedgate-policy']).toBe('AuthorizationPolicy/shop/ledger-allow-web');
    expect(batch.body).toContain('spiffe://east.test.internal/ns/shop/sa/batch');

    // No caller mapping: the request carries the east gateway's own identity.
    expect((await call('127.0.0.1')).status).toBe(403);
    // The named principal, but a method the rule does not allow.
    expect((await call('127.0.0.2', { method: 'POST' })).status).toBe(403);
    // DENY comes before ALLOW.
    const admin = await call('127.0.0.2', { path: '/admin/users' });
    expect(admin.status).toBe(403);
    expect(admin.headers['x-fedgate-policy']).toBe('AuthorizationPolicy/shop/ledger-deny-admin');
    // Another cluster's gateway identity is not the principal either.
    expect((await http1(federation.outbound('canary'), svc('ledger'))).status).toBe(403);

    // TCP tunnels are authorized too (as method CONNECT): web gets its echo, the gateway identity nothing.
    const tcp = (localAddress: string): Promise<string> =>
      new Promise((resolve) => {
        const socket = netConnect({ host: '127.0.0.1', port: federation.cluster('east').ports.tcp[0] as number, localAddress, allowHalfOpen: true });
        const received: Buffer[] = [];
        socket.on('data', (chunk: Buffer) => received.push(chunk));
        socket.on('error', () => undefined);
        socket.once('connect', () => socket.end('hello'));
        socket.once('close', () => resolve(Buffer.concat(received).toString()));
      });
    expect(await tcp('127.0.0.2')).toBe('hellobye 5');
    expect(await tcp('127.0.0.1')).toBe('');

    const metrics = (await httpGet(`${federation.adminUrl('west')}/metrics`)).body;
    expect(metrics).toMatch(/fedgate_authz_decisions_total\{[^}]*decision="allow"[^}]*policy="AuthorizationPolicy\/shop\/ledger-allow-web"[^}]*\} 1/);
    expect(metrics).toMatch(/fedgate_authz_decisions_total\{[^}]*decision="deny"[^}]*\} [4-9]/);
  });

  it('a set one gateway cannot apply is NACKed there and shown by fedgate status, while the others apply it; faults hit their percentages', async () => {
    const before = (await gatewayConfig('canary')).policies.appliedRevision;
    const revision = await apply('faults', FAULTS);
    await inForce(['east', 'west'], revision);
    const canary = await eventually(async () => {
      const config = await gatewayConfig('canary');
      return config.policies.nack ? config : undefined;
    }, 'canary refuses the set');
    expect(canary.policies.appliedRevision).toBe(before);
    expect(canary.policies.nack?.revision).toBe(revision);
    expect(canary.policies.nack?.reason).toContain('FaultPolicy/shop/catalog-chaos injects faults on canary, whose gateway refuses fault injection');

    const view = await eventually(async () => {
      const s = await status();
      return s.policyConvergence.refused.length > 0 ? s : undefined;
    }, 'status shows the refusal');
    expect(view.policyConvergence).toEqual({ latest: revision, inForce: ['east', 'west'], behind: ['canary'], refused: ['canary'] });
    const canaryRow = view.clusters.find((c) => c.name === 'canary');
    expect(canaryRow?.policies).toEqual({ applied: before, behind: revision - before, refused: { revision, reason: expect.stringContaining('allowFaultInjection: false') } });
    const table = await runFedgate(['status', ...federation.cliTarget()]);
    expect(table.stdout).toContain(`canary refused policy revision ${revision}: FaultPolicy/shop/catalog-chaos injects faults on canary`);
    expect(table.stdout).toContain(`policies: revision ${revision} in force on 2 of 3 clusters; behind: canary; refused by canary`);

    // The faults, in force on east: 25 % aborted, 50 % delayed by 200 ms, for requests with the header only.
    const samples = await runLoad({ kind: 'http', address: federation.outbound('east'), authority: svc('catalog'), headers: { 'x-chaos': 'on' } }, { rps: 150, durationMs: 4000 });
    const aborted = samples.filter((s) => s.status === '503' && s.error === 'status 503 fault-abort').length / samples.length;
    const delayed = samples.filter((s) => s.latencyMs >= 180).length / samples.length;
    console.log(`faults over ${samples.length} requests: ${(aborted * 100).toFixed(1)} % aborted (policy 25), ${(delayed * 100).toFixed(1)} % delayed ≥ 180 ms (policy 50)`);
    expect(samples.every((s) => s.ok || s.error === 'status 503 fault-abort')).toBe(true);
    expect(Math.abs(aborted * 100 - 25)).toBeLessThanOrEqual(6);
    expect(Math.abs(delayed * 100 - 50)).toBeLessThanOrEqual(7);
    const plain = await runLoad({ kind: 'http', address: federation.outbound('east'), authority: svc('catalog') }, { rps: 100, durationMs: 1000 });
    expect(plain.filter((s) => !s.ok || s.latencyMs >= 180)).toEqual([]);

    // Removing the document the canary refused brings it back in step.
    const deleted = await runFedgate(['policy', 'delete', 'FaultPolicy/shop/catalog-chaos', ...federation.cliTarget()]);
    expect(deleted.code).toBe(0);
    const latest = Number(/revision (\d+)/.exec(deleted.stdout)?.[1]);
    await inForce(['east', 'west', 'canary'], latest);
    expect((await gatewayConfig('canary')).policies.nack).toBeUndefined();
    const after = await eventually(async () => {
      const s = await status();
      return s.policyConvergence.behind.length === 0 ? s : undefined;
    }, 'status shows every cluster in step again');
    expect(after.clusters.every((c) => c.policies.refused === undefined)).toBe(true);
  });
});
