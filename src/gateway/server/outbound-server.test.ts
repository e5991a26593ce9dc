import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { connect as h2connect } from 'node:http2';
import { connect as netConnect } from 'node:net';
import { PassThrough } from 'node:stream';
import { Registry } from '../../admin/metrics.js';
import { gatewayDefaultsShape, type GatewayDefaults } from '../../config/federation-config.js';
import { createSilentLogger } from '../../core/logger.js';
import type { LocalExport } from '../../discovery/provider.js';
import type { OutboundExchange } from '../logical/outbound-exchange.js';
import { NO_TRAILERS, type Outcome } from '../request/outcome.js';
import { GatewayMetrics } from '../request/request-metrics.js';
import { RoutingTable } from '../routing/routing-table.js';
import { ControlViewPublisher } from '../view/control-view.js';
import { OutboundServer } from './outbound-server.js';

const CALLER = 'spiffe://us-east.acme.internal/ns/shop/sa/web';

/** The server stage of the outbound listener, on a real port, with a fake handler below it that records each exchange. */
describe('OutboundServer', () => {
  const payments: LocalExport = { namespace: 'shop', name: 'payments', ports: [{ name: 'http', port: 8080, targetPort: 80, protocol: 'http' }], endpoints: [{ address: '127.0.0.1', ready: true }], consumers: [], createdAt: 0 };
  const views = new ControlViewPublisher(
    { cluster: 'us-east', region: 'us-east-1', zone: 'a', trustDomain: 'us-east.acme.internal', labels: {} },
    { federation: 'acme', defaults: gatewayDefaultsShape.defaultFactory?.() as GatewayDefaults, localExports: { exports: new Map([['shop/payments', payments]]), source: 'test' }, catalog: { epoch: 'e', revision: 1, policyRevision: 0, clusters: new Map(), services: new Map(), bundles: new Map(), policies: new Map() } },
  );
  const seen: OutboundExchange[] = [];
  let answer: (exchange: OutboundExchange) => Promise<Outcome> = async (exchange) => {
    const body = new PassThrough();
    body.end(`served ${exchange.request.method} ${exchange.request.path}`);
    return { kind: 'response', response: { status: 200, headers: { 'x-app': '1' }, body, trailers: NO_TRAILERS, cluster: 'us-east', discard: () => body.destroy() } };
  };
  const served = answer;
  const metrics = new GatewayMetrics(new Registry());
  const server = new OutboundServer(
    {
      localCluster: 'us-east',
      callerIdentity: () => CALLER,
      routing: new RoutingTable(),
      view: () => views.current,
      handler: (exchange) => {
        seen.push(exchange);
        return answer(exchange);
      },
      metrics,
      log: createSilentLogger(),
    },
    { listen: '127.0.0.1:0', maxConnections: 100, http2: {}, onLimit: () => undefined, headersTimeoutMs: 5000, requestTimeoutMs: 10_000, maxHeaderBytes: 16 * 1024, idleTimeoutMs: 60_000, maxConcurrentStreams: 100 },
  );
  let port: number;

  beforeAll(async () => {
    port = await server.start();
  });
  afterAll(() => server.close());
  beforeEach(() => {
    seen.length = 0;
    answer = served;
  });

  function http1(host: string, path = '/', headers: Record<string, string> = {}): Promise<{ status: number; headers: IncomingHttpHeaders; body: string }> {
    return new Promise((resolve, reject) => {
      const req = httpRequest({ host: '127.0.0.1', port, path, headers: { host, ...headers }, agent: false }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      });
      req.on('error', reject);
      req.end();
    });
  }

  it('routes an HTTP/1.1 request by Host to its clusterset service, with the caller’s identity, a normalized path and cleaned headers', async () => {
    const got = await http1('payments.shop.svc.clusterset.local:8080', '/a/../pay', { 'x-fedgate-caller': 'spiffe://forged/ns/x/sa/y', 'x-app': 'yes' });
    expect(got).toMatchObject({ status: 200, body: 'served GET /pay', headers: { 'x-app': '1', 'x-fedgate-upstream-cluster': 'us-east' } });
    const request = seen[0]?.request;
    expect(request).toMatchObject({ direction: 'outbound', method: 'GET', path: '/pay', authority: 'payments.shop.svc.clusterset.local:8080', caller: CALLER, sourceCluster: 'us-east', body: null, grpc: false, idempotent: true });
    expect(request?.headers['x-fedgate-caller']).toBeUndefined();
    expect(request?.headers['x-app']).toBe('yes');
    expect(seen[0]?.route.key).toBe('shop/payments');
    const counted = (await metrics.requests.get()).values.find((v) => v.labels.service === 'shop/payments' && v.labels.code === '200');
    expect(counted?.value).toBeGreaterThanOrEqual(1);
  });

  it('answers a host that is no clusterset name, or a service nobody exports, with 404 and never calls the stages', async () => {
    expect(await http1('example.org')).toMatchObject({ status: 404, headers: { 'x-fedgate-reason': 'no-route' } });
    expect(await http1('orders.shop.svc.clusterset.local:8080')).toMatchObject({ status: 404, headers: { 'x-fedgate-reason': 'no-route' } });
    expect(await http1('payments.shop.svc.clusterset.local:9999')).toMatchObject({ status: 404, headers: { 'x-fedgate-reason': 'port-not-exported' } });
    expect(seen).toEqual([]);
  });

  it('refuses a request with two Host headers (RFC 9112 §3.2)', async () => {
    const reply = await new Promise<string>((resolve) => {
      const socket = netConnect({ host: '127.0.0.1', port });
      let got = '';
      socket.setEncoding('utf8');
      socket.on('data', (c: string) => {
        got += c;
        if (got.includes('\r\n\r\n')) socket.destroy();
      });
      socket.on('close', () => resolve(got));
      socket.write('GET / HTTP/1.1\r\nHost: payments.shop.svc.clusterset.local:8080\r\nHost: evil.example\r\n\r\n');
    });
    expect(reply).toMatch(/^HTTP\/1\.1 400 /);
    expect(reply).toContain('x-fedgate-reason: bad-request');
    expect(seen).toEqual([]);
  });

  it('answers 502 when a stage fails unexpectedly, and keeps serving', async () => {
    answer = () => Promise.reject(new Error('bug below'));
    expect(await http1('payments.shop.svc.clusterset.local:8080')).toMatchObject({ status: 502, headers: { 'x-fedgate-reason': 'upstream-reset' } });
    answer = served;
    expect((await http1('payments.shop.svc.clusterset.local:8080')).status).toBe(200);
  });

  it('serves HTTP/2 prior knowledge (h2c) on the same port, routed by :authority', async () => {
    const client = h2connect(`http://127.0.0.1:${port}`);
    try {
      const got = await new Promise<{ headers: IncomingHttpHeaders; body: string }>((resolve, reject) => {
        const req = client.request({ ':method': 'GET', ':path': '/h2', ':authority': 'payments.shop.svc.clusterset.local:8080' });
        req.end();
        let headers: IncomingHttpHeaders = {};
        let body = '';
        req.setEncoding('utf8');
        req.on('response', (h) => (headers = h));
        req.on('data', (c: string) => (body += c));
        req.on('end', () => resolve({ headers, body }));
        req.on('error', reject);
      });
      expect(got.headers[':status']).toBe(200);
      expect(got.body).toBe('served GET /h2');
      expect(seen[0]?.request.caller).toBe(CALLER);
    } finally {
      client.close();
    }
  });
});
