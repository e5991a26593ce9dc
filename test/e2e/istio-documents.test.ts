/**
 * The Istio documents of federation-config/istio-examples/, as published in Istio's docs and
 * samples, through a real controller and three real gateways: they validate and apply as written
 * (a VirtualService alone once its DestinationRule is stored; out-of-range values clamped with a
 * warning the operator sees), and what they say is what the traffic does: the 90/10 split, the
 * header route, the abort percentage and the delay, and authorization per caller with
 * `cluster.local` principals matching the workload in every member cluster.
 */
import { jest } from '@jest/globals';
import { Agent } from 'node:http';
import { join } from 'node:path';
import { startHttpBackend } from '../../src/demo/sample-backends.js';
import { eventually } from '../support/control-plane.js';
import { LocalFederation } from '../support/federation.js';
import { http1, type HttpResult } from '../support/http-client.js';
import { freePorts } from '../support/ports.js';
import { httpGet, runFedgate } from '../support/processes.js';

jest.setTimeout(180_000);

const EXAMPLES = join('federation-config', 'istio-examples');
const example = (file: string): string => join(EXAMPLES, file);
const svc = (name: string): string => `${name}.default.svc.clusterset.local:8080`;

/**
 * `total` requests from `concurrency` callers, each sending its next request when the last one is
 * answered: a busy machine makes the run slower, never makes requests time out.
 */
async function closedLoop(total: number, concurrency: number, send: (agent: Agent) => Promise<HttpResult>): Promise<HttpResult[]> {
  const agent = new Agent({ keepAlive: true, maxSockets: concurrency });
  const results: HttpResult[] = [];
  let next = 0;
  try {
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (next < total) {
          next++;
          results.push(await send(agent));
        }
      }),
    );
  } finally {
    agent.destroy();
  }
  return results;
}

/** The cluster that answered: the gateway's header, or the sample backend's own word. */
function servedBy(r: HttpResult): string | undefined {
  const header = r.headers['x-fedgate-upstream-cluster'] as string | undefined;
  if (header || r.status !== 200) return header;
  return (JSON.parse(r.body) as { servedBy?: string }).servedBy;
}

/** |observed - expected| in percentage points, over n requests, within 4.5 standard deviations. */
function tolerance(expectedPercent: number, n: number): number {
  const p = expectedPercent / 100;
  return 4.5 * Math.sqrt((p * (1 - p)) / n) * 100;
}

describe('Istio documents from the public docs, end to end', () => {
  let federation: LocalFederation;
  const backends: Array<{ close(): Promise<void> }> = [];

  const fedgate = (args: string[]): ReturnType<typeof runFedgate> => runFedgate([...args, '--federation-config', federation.dir]);
  const apply = (files: string[]): ReturnType<typeof runFedgate> => fedgate(['policy', 'apply', ...files.flatMap((f) => ['-f', example(f)]), ...federation.cliTarget()]);

  async function policiesInForce(revision: number): Promise<void> {
    for (const cluster of ['east', 'west', 'canary']) {
      await eventually(async () => (JSON.parse((await httpGet(`${federation.adminUrl(cluster)}/config`)).body) as { policies: { appliedRevision: number } }).policies.appliedRevision >= revision, `${cluster} applies policy revision ${revision}`, 20_000);
    }
  }

  beforeAll(async () => {
    const ports = (await freePorts(6)) as number[];
    const port = (i: number): number => ports[i] as number;
    backends.push(
      await startHttpBackend('east', '127.0.0.1', port(0)),
      await startHttpBackend('west', '127.0.0.1', port(1)),
      await startHttpBackend('canary', '127.0.0.1', port(2)),
      await startHttpBackend('west', '127.0.0.1', port(3)),
    );
    const http = (service: string, target: number) => ({ service, ports: [{ name: 'http', port: 8080, targetPort: target, protocol: 'http' as const }] });
    // Local callers by source address: 127.0.0.2 is default/orders-service in east and in canary, 127.0.0.3 default/inventory in east.
    const orders = { address: '127.0.0.2', namespace: 'default', serviceAccount: 'orders-service' };
    federation = await LocalFederation.create(
      [
        { name: 'east', region: 'us-east', zone: 'a', labels: { version: 'v1' }, exports: [http('reviews', port(0)), http('ratings', port(0))], callers: [orders, { address: '127.0.0.3', namespace: 'default', serviceAccount: 'inventory' }] },
        { name: 'west', region: 'us-west', zone: 'a', labels: { version: 'v1' }, exports: [http('reviews', port(1)), http('ratings', port(1)), http('payments', port(3)), http('httpbin', port(3))] },
        { name: 'canary', region: 'us-west', zone: 'b', labels: { version: 'v2' }, exports: [http('reviews', port(2))], callers: [orders] },
      ],
      { controller: {} },
    );
    await federation.startAll();
    for (const cluster of ['east', 'canary']) {
      await eventually(async () => (JSON.parse((await httpGet(`${federation.adminUrl(cluster)}/config`)).body) as { catalog: { services: unknown[] } }).catalog.services.length === 4 || undefined, `${cluster} sees every service`, 20_000);
    }
  });

  afterAll(async () => {
    await federation?.stop();
    for (const b of backends) await b.close();
  });

  it('the seven documents validate as written; the clamped value is a warning naming the value used', async () => {
    const result = await fedgate(['policy', 'validate', '-f', EXAMPLES]);
    expect(result).toEqual({
      code: 0,
      stderr: `warning: ${example('reviews-destination-rule.yaml')}:13: spec.trafficPolicy.connectionPool.tcp.maxConnections: 100 is above fedgate's maximum 64; using 64\n`,
      stdout: '7 documents in 7 files: 0 errors, 1 warnings — valid\n',
    });
  });

  it('a VirtualService alone: a warning locally, refused by the controller while its DestinationRule is not stored, applied once it is', async () => {
    const local = await fedgate(['policy', 'validate', '-f', example('reviews-virtual-service.yaml')]);
    expect(local.code).toBe(0);
    expect(local.stderr).toContain(`warning: ${example('reviews-virtual-service.yaml')}:19: spec.http[0].route[0].destination.subset: subset "v2" is not defined by a DestinationRule for reviews.default in these documents; the controller looks for it among its stored DestinationRules when you apply`);

    const early = await apply(['reviews-virtual-service.yaml']);
    expect(early.code).toBe(1);
    expect(early.stderr).toContain('spec.http[0].route[0].destination.subset: subset "v2" is not defined by a DestinationRule for reviews.default, neither in the documents applied nor among those stored');

    const rules = await apply(['reviews-destination-rule.yaml', 'ratings-destination-rule.yaml', 'httpbin-destination-rule.yaml']);
    expect(rules.code).toBe(0);
    // The controller's warning, with the line the local check knows.
    expect(rules.stderr).toBe(`warning: ${example('reviews-destination-rule.yaml')}:13: spec.trafficPolicy.connectionPool.tcp.maxConnections: 100 is above fedgate's maximum 64; using 64\n`);

    const alone = await apply(['reviews-virtual-service.yaml']);
    expect({ code: alone.code, stderr: alone.stderr }).toEqual({ code: 0, stderr: '' });
    const rest = await apply(['ratings-virtual-service.yaml', 'payments-authorization-policy.yaml', 'payments-deny-authorization-policy.yaml']);
    expect({ code: rest.code, stderr: rest.stderr }).toEqual({ code: 0, stderr: '' });
    await policiesInForce(Number(/policy revision (\d+)/.exec(rest.stdout)?.[1]));
    const list = await fedgate(['policy', 'list', '-o', 'json', ...federation.cliTarget()]);
    expect((JSON.parse(list.stdout) as { policies: Array<{ key: string }> }).policies.map((p) => p.key).sort()).toEqual([
      'AuthorizationPolicy/default/payments-deny-admin',
      'AuthorizationPolicy/default/payments-viewer',
      'DestinationRule/default/httpbin',
      'DestinationRule/default/ratings',
      'DestinationRule/default/reviews',
      'VirtualService/default/ratings',
      'VirtualService/default/reviews',
    ]);
  });

  it('reviews: 90/10 between subsets v1 and v2 over 4,000 requests, within 2 points', async () => {
    // 4,000 rather than 2,000: ±2 points is then 4.2 standard deviations, not 3.
    const results = await closedLoop(4000, 16, (agent) => http1(federation.outbound('east'), svc('reviews'), { agent }));
    expect(results.filter((r) => r.status !== 200).map((r) => `${r.status} ${String(r.headers['x-fedgate-reason'])}`)).toEqual([]);
    const v2Count = results.filter((r) => servedBy(r) === 'canary').length;
    const v1Count = results.filter((r) => servedBy(r) === 'east' || servedBy(r) === 'west').length;
    const v2 = (v2Count / results.length) * 100;
    const v1 = (v1Count / results.length) * 100;
    console.log(`reviews split over ${results.length} requests: v1 ${v1.toFixed(1)} %, v2 ${v2.toFixed(1)} % (document: 90/10; 4.5σ = ${tolerance(10, results.length).toFixed(2)} points)`);
    // Counts, not percentages: the float percentages need not add up to exactly 100.
    expect(v1Count + v2Count).toBe(results.length);
    expect(Math.abs(v2 - 10)).toBeLessThanOrEqual(2);
  });

  it('reviews: the end-user: jason header always goes to v2', async () => {
    const results = await Promise.all(Array.from({ length: 40 }, () => http1(federation.outbound('east'), svc('reviews'), { headers: { 'end-user': 'jason' } })));
    expect(results.map((r) => (JSON.parse(r.body) as { servedBy: string }).servedBy)).toEqual(Array(40).fill('canary'));
  });

  it('ratings: an HTTP 500 abort for one request in ten; a 7 s delay for jason', async () => {
    const results = await closedLoop(2000, 16, (agent) => http1(federation.outbound('east'), svc('ratings'), { agent }));
    const aborted = (results.filter((r) => r.status === 500 && r.headers['x-fedgate-reason'] === 'fault-abort').length / results.length) * 100;
    console.log(`ratings faults over ${results.length} requests: ${aborted.toFixed(1)} % aborted with 500 (document: 10 %; 4.5σ = ${tolerance(10, results.length).toFixed(2)} points)`);
    // Everything else was served by subset v1 (east and west), undelayed.
    expect(results.filter((r) => !(r.status === 500 && r.headers['x-fedgate-reason'] === 'fault-abort') && !(r.status === 200 && ['east', 'west'].includes(servedBy(r) ?? ''))).map((r) => `${r.status} ${servedBy(r)}`)).toEqual([]);
    expect(Math.abs(aborted - 10)).toBeLessThanOrEqual(tolerance(10, results.length));

    const started = Date.now();
    const jason = await Promise.all(Array.from({ length: 3 }, () => http1(federation.outbound('east'), svc('ratings'), { headers: { 'end-user': 'jason' } })));
    const elapsed = Date.now() - started;
    console.log(`ratings for jason: 3 requests answered after ${elapsed} ms (document: 7 s delay)`);
    expect(jason.map((r) => r.status)).toEqual([200, 200, 200]);
    expect(elapsed).toBeGreaterThanOrEqual(7000);
  });

  it('payments: cluster.local/ns/default/sa/orders-service is allowed GET and POST on /api/* from every cluster; others, other methods and /api/admin/* are denied', async () => {
    const call = (cluster: string, localAddress: string, method = 'GET', path = '/api/orders'): Promise<HttpResult> => http1(federation.outbound(cluster), svc('payments'), { localAddress, method, path });
    const cases: Array<[string, Promise<HttpResult>, number, string | undefined]> = [
      ['orders-service in east, GET /api/orders', call('east', '127.0.0.2'), 200, undefined],
      ['orders-service in east, POST /api/orders', call('east', '127.0.0.2', 'POST'), 200, undefined],
      ['orders-service in canary, GET /api/orders', call('canary', '127.0.0.2'), 200, undefined],
      ['orders-service in east, DELETE /api/orders', call('east', '127.0.0.2', 'DELETE'), 403, 'AuthorizationPolicy/default/payments-viewer'],
      ['orders-service in east, GET /orders (not under /api)', call('east', '127.0.0.2', 'GET', '/orders'), 403, 'AuthorizationPolicy/default/payments-viewer'],
      ['orders-service in east, GET /api/admin/users', call('east', '127.0.0.2', 'GET', '/api/admin/users'), 403, 'AuthorizationPolicy/default/payments-deny-admin'],
      ['inventory in east', call('east', '127.0.0.3'), 403, 'AuthorizationPolicy/default/payments-viewer'],
      ['east gateway itself (no caller mapping)', call('east', '127.0.0.1'), 403, 'AuthorizationPolicy/default/payments-viewer'],
      ['canary gateway itself', call('canary', '127.0.0.1'), 403, 'AuthorizationPolicy/default/payments-viewer'],
    ];
    const outcomes = await Promise.all(cases.map(async ([name, result]) => {
      const r = await result;
      return [name, r.status, r.headers['x-fedgate-policy']];
    }));
    expect(outcomes).toEqual(cases.map(([name, , status, policy]) => [name, status, policy]));
  });
});
