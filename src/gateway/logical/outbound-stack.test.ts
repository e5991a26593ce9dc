import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Registry } from '../../admin/metrics.js';
import { gatewayDefaultsShape, type GatewayDefaults } from '../../config/federation-config.js';
import { createSilentLogger } from '../../core/logger.js';
import type { LocalExport } from '../../discovery/provider.js';
import { compilePolicySet } from '../../policy/compile.js';
import { PolicyIndex } from '../../policy/resolve.js';
import { LocalForwarder } from '../endpoint/local-forwarder.js';
import type { GatewayIdentity } from '../gateway-identity.js';
import type { Outcome } from '../request/outcome.js';
import { GatewayMetrics } from '../request/request-metrics.js';
import { RequestState, type Request } from '../request/request.js';
import { PoolRegistry } from '../registry/pool-registry.js';
import { RoutingTable } from '../routing/routing-table.js';
import { ControlViewPublisher, type ControlView } from '../view/control-view.js';
import type { OutboundExchange } from './outbound-exchange.js';
import { outboundStack } from './outbound-stack.js';

const defaults = gatewayDefaultsShape.defaultFactory?.() as GatewayDefaults;
const CALLER = 'spiffe://us-east.acme.internal/ns/shop/sa/web';

/**
 * The whole outbound stack for services this cluster exports itself: the logical stages, the
 * balance stage, authorization and the local forwarder, against a real HTTP server on port 0.
 * (Attempts to peer clusters need a gateway identity and a peer; the end-to-end suites cover them.)
 */
describe('outboundStack (served by this cluster)', () => {
  let server: Server;
  let port: number;
  let hits = 0;
  const forwarder = new LocalForwarder(createSilentLogger(), 60_000);
  const observed: Array<[string, string]> = [];
  let metrics: GatewayMetrics;
  let handler: ReturnType<typeof outboundStack>;
  let routing: RoutingTable;
  let views: ControlViewPublisher;

  beforeAll(async () => {
    server = createServer((req, res) => {
      hits += 1;
      res.writeHead(req.url === '/broken' ? 503 : 200, { 'x-path': String(req.url) });
      res.end('ok');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });

  beforeEach(() => {
    hits = 0;
    observed.length = 0;
    metrics = new GatewayMetrics(new Registry());
    routing = new RoutingTable();
    views = new ControlViewPublisher({ cluster: 'us-east', region: 'us-east-1', zone: 'a', trustDomain: 'us-east.acme.internal', labels: {} }, { federation: 'acme', defaults, localExports: { exports: new Map(), source: 'test' }, catalog: { epoch: 'e', revision: 1, policyRevision: 0, clusters: new Map(), services: new Map(), bundles: new Map(), policies: new Map() } });
    handler = outboundStack({
      localCluster: 'us-east',
      routing,
      // No peer cluster is in these catalogs: no pool is ever made, so no identity is needed.
      pools: new PoolRegistry({ identity: {} as GatewayIdentity, view: () => views.current, connectTimeoutMs: 100, log: createSilentLogger() }),
      forwarder,
      observe: (_exchange, cluster, outcome) => observed.push([cluster, outcome.kind === 'response' ? String(outcome.response.status) : outcome.failure.code]),
      metrics,
      log: createSilentLogger(),
    });
  });

  afterAll(async () => {
    forwarder.close();
    await new Promise((resolve) => server.close(resolve));
  });

  function viewOf(exported: Partial<LocalExport> = {}, ...documents: Array<Record<string, unknown>>): ControlView {
    const result = compilePolicySet(documents.map((document, i) => ({ document, source: `p${i}.yaml` })));
    expect(result.issues).toEqual([]);
    const payments: LocalExport = { namespace: 'shop', name: 'payments', ports: [{ name: 'http', port: 8080, targetPort: port, protocol: 'http' }], endpoints: [{ address: '127.0.0.1', ready: true }], consumers: [], createdAt: 0, ...exported };
    return views.update({ localExports: { exports: new Map([['shop/payments', payments]]), source: 'test' }, policies: new PolicyIndex(result.set) });
  }

  function exchange(view: ControlView, path = '/pay', method = 'GET'): OutboundExchange {
    const route = routing.resolve(view, 'shop', 'payments', 8080);
    if (!('targets' in route)) throw new Error(route.message);
    const request: Request = { direction: 'outbound', method, path, authority: route.authority, service: { namespace: 'shop', name: 'payments', port: 8080, key: 'shop/payments' }, headers: {}, body: null, grpc: false, idempotent: method === 'GET', caller: CALLER, sourceCluster: 'us-east', startedAt: 0 };
    return { view, request, route, rule: undefined, state: new RequestState() };
  }

  async function statusOf(outcome: Outcome): Promise<number | string> {
    if (outcome.kind === 'failure') return outcome.failure.code;
    outcome.response.body.resume();
    await new Promise((resolve) => outcome.response.body.once('end', resolve));
    return outcome.response.status;
  }

  const doc = (kind: string, spec: Record<string, unknown>): Record<string, unknown> => ({ apiVersion: 'fedgate.io/v1alpha1', kind, metadata: { name: 'payments', namespace: 'shop' }, spec: { service: 'payments', ...spec } });

  it('serves a request from this cluster’s own endpoints and reports the attempt', async () => {
    const ex = exchange(viewOf());
    expect(await statusOf(await handler(ex))).toBe(200);
    expect(hits).toBe(1);
    expect(observed).toEqual([['us-east', '200']]);
    expect([...ex.state.tried]).toEqual(['us-east']);
  });

  it('authorizes requests it serves itself, as the inbound side would', async () => {
    const view = viewOf({}, doc('AuthorizationPolicy', { action: 'DENY', rules: [{ to: [{ methods: ['DELETE'] }] }] }));
    expect(await statusOf(await handler(exchange(view, '/pay', 'DELETE')))).toBe('denied');
    expect(hits).toBe(0);
  });

  it('retries a 503 on the only cluster there is, within the attempts of the policy', async () => {
    const view = viewOf({}, doc('TrafficPolicy', { retries: { attempts: 3, retryOn: ['5xx'] } }));
    const ex = exchange(view, '/broken');
    expect(await statusOf(await handler(ex))).toBe(503);
    expect(hits).toBe(4);
    expect(ex.state.attempts).toBe(4);
    expect((await metrics.retries.get()).values).toEqual([{ value: 3, labels: { service: 'shop/payments', reason: 'status-503' } }]);
  });

  it('aborts by fault injection before anything is forwarded', async () => {
    const view = viewOf({}, doc('FaultPolicy', { faults: [{ abort: { httpStatus: 418, percentage: 100 } }] }));
    const outcome = await handler(exchange(view));
    expect(outcome).toMatchObject({ kind: 'failure', failure: { code: 'fault-abort', status: 418 } });
    expect(hits).toBe(0);
    expect(observed).toEqual([]);
  });

  it('answers no-healthy-upstream when the local export lacks the port, as no route would reach it', async () => {
    const view = viewOf();
    const ex = exchange(view);
    const withoutPort = { ...ex, route: { ...ex.route, localPort: undefined } };
    expect(await statusOf(await handler(withoutPort))).toBe('no-healthy-upstream');
  });
});
