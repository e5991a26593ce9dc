import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createTcpServer, type AddressInfo, type Server as TcpServer } from 'node:net';
import { PassThrough } from 'node:stream';
import { Registry } from '../../admin/metrics.js';
import { gatewayDefaultsShape, type GatewayDefaults } from '../../config/federation-config.js';
import { createSilentLogger } from '../../core/logger.js';
import type { LocalExport } from '../../discovery/provider.js';
import { SpiffeId } from '../../model/spiffe-id.js';
import type { H2ServerStream } from '../../http2/index.js';
import { compilePolicySet } from '../../policy/compile.js';
import { PolicyIndex } from '../../policy/resolve.js';
import { LocalForwarder } from '../endpoint/local-forwarder.js';
import type { Outcome } from '../request/outcome.js';
import { GatewayMetrics } from '../request/request-metrics.js';
import { ControlViewPublisher, type ControlView } from '../view/control-view.js';
import { inboundStack } from './inbound-stack.js';
import type { InboundStream } from './inbound-stream.js';

/**
 * The inbound stages composed, ending at real local endpoints: an HTTP server and a TCP echo
 * server on port 0. The peer's stream is a PassThrough standing in for the HTTP/2 stream (the
 * stages read its body and its close, nothing else).
 */
describe('inboundStack', () => {
  let http: Server;
  let echo: TcpServer;
  let httpPort: number;
  let echoPort: number;
  const forwarder = new LocalForwarder(createSilentLogger(), 60_000);
  const metrics = new GatewayMetrics(new Registry());
  const handler = inboundStack({ localCluster: 'us-east', forwarder, metrics, log: createSilentLogger() });
  const peerId = SpiffeId.gateway('us-west.acme.internal', 'us-west');
  const WEB = 'spiffe://us-west.acme.internal/ns/shop/sa/web';
  let view: ControlView;

  beforeAll(async () => {
    http = createHttpServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        res.writeHead(200, { 'x-seen': `${req.method} ${req.url} caller=${req.headers['x-fedgate-caller'] ?? ''} body=${body}` });
        res.end('served by us-east');
      });
    });
    echo = createTcpServer({ allowHalfOpen: true }, (socket) => socket.pipe(socket));
    await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
    await new Promise<void>((resolve) => echo.listen(0, '127.0.0.1', resolve));
    httpPort = (http.address() as AddressInfo).port;
    echoPort = (echo.address() as AddressInfo).port;
    const exports: LocalExport[] = [
      { namespace: 'shop', name: 'payments', ports: [{ name: 'http', port: 8080, targetPort: httpPort, protocol: 'http' }], endpoints: [{ address: '127.0.0.1', ready: true }], consumers: [], createdAt: 0 },
      { namespace: 'shop', name: 'db', ports: [{ name: 'tcp', port: 5432, targetPort: echoPort, protocol: 'tcp' }, { name: 'web', port: 80, targetPort: httpPort, protocol: 'http' }], endpoints: [{ address: '127.0.0.1', ready: true }], consumers: [], createdAt: 0 },
      { namespace: 'shop', name: 'empty', ports: [{ name: 'tcp', port: 5432, targetPort: echoPort, protocol: 'tcp' }], endpoints: [{ address: '127.0.0.1', ready: false }], consumers: [], createdAt: 0 },
      { namespace: 'shop', name: 'gone', ports: [{ name: 'tcp', port: 5432, targetPort: 1, protocol: 'tcp' }], endpoints: [{ address: '127.0.0.1', ready: true }], consumers: [], createdAt: 0 },
    ];
    const policies = compilePolicySet([
      { document: { apiVersion: 'fedgate.io/v1alpha1', kind: 'AuthorizationPolicy', metadata: { name: 'payments-web', namespace: 'shop' }, spec: { service: 'payments', action: 'ALLOW', rules: [{ from: [{ principals: [WEB] }] }] } }, source: 'authz.yaml' },
    ]);
    expect(policies.issues).toEqual([]);
    view = new ControlViewPublisher(
      { cluster: 'us-east', region: 'us-east-1', zone: 'a', trustDomain: 'us-east.acme.internal', labels: {} },
      {
        federation: 'acme',
        defaults: gatewayDefaultsShape.defaultFactory?.() as GatewayDefaults,
        localExports: { exports: new Map(exports.map((e) => [`${e.namespace}/${e.name}`, e])), source: 'test' },
        catalog: { epoch: 'e', revision: 1, policyRevision: 0, clusters: new Map(), services: new Map(), bundles: new Map(), policies: new Map() },
        policies: new PolicyIndex(policies.set),
      },
    ).current;
  });

  afterAll(async () => {
    forwarder.close();
    await new Promise((resolve) => http.close(resolve));
    await new Promise((resolve) => echo.close(resolve));
  });

  /** Like an HTTP/2 stream, it stays open after the request body ended: it closes when the peer resets it. */
  function peerStream(): PassThrough {
    return new PassThrough({ autoDestroy: false });
  }

  function stream(name: string, port: number, opts: { method?: string; path?: string; caller?: string; body?: PassThrough } = {}): InboundStream {
    const body = opts.body ?? peerStream();
    return {
      view,
      peer: { id: peerId, spiffeId: peerId.toString(), cluster: 'us-west', callers: new Map() },
      stream: body as unknown as H2ServerStream,
      headers: opts.caller ? { 'x-fedgate-caller': opts.caller, 'x-request': '1' } : {},
      endStream: opts.body === undefined,
      method: opts.method ?? 'GET',
      path: opts.path ?? (opts.method === 'CONNECT' ? '' : '/pay'),
      grpc: false,
      service: { namespace: 'shop', name, port, key: `shop/${name}` },
    };
  }

  async function text(outcome: Outcome): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
    if (outcome.kind !== 'response') throw new Error(`expected a response, got ${outcome.failure.code}: ${outcome.failure.message}`);
    let body = '';
    for await (const chunk of outcome.response.body) body += (chunk as Buffer).toString();
    return { status: outcome.response.status, headers: outcome.response.headers, body };
  }

  it('serves an allowed caller’s request from a local endpoint, body included, naming the verified caller upstream', async () => {
    const body = peerStream();
    const pending = handler(stream('payments', 8080, { method: 'POST', caller: WEB, body }));
    body.end('amount=5');
    const answer = await text(await pending);
    expect(answer.status).toBe(200);
    expect(answer.body).toBe('served by us-east');
    expect(answer.headers['x-seen']).toBe(`POST /pay caller=${WEB} body=amount=5`);
  });

  it('refuses in stage order: foreign identity, then export, then authorization', async () => {
    expect(await handler(stream('payments', 8080, { caller: 'spiffe://us-east.acme.internal/ns/shop/sa/web' }))).toMatchObject({ failure: { code: 'identity-rejected' } });
    expect(await handler(stream('ledger', 8080, { caller: WEB }))).toMatchObject({ failure: { code: 'service-not-exported' } });
    // The peer gateway itself is not the allowed workload.
    expect(await handler(stream('payments', 8080))).toMatchObject({ failure: { code: 'denied' } });
  });

  it('tunnels a CONNECT to a TCP port: the endpoint’s bytes come back as the body of a 200', async () => {
    const body = peerStream();
    const outcome = await handler(stream('db', 5432, { method: 'CONNECT', body }));
    body.end('ping over the tunnel');
    const answer = await text(outcome);
    expect(answer.status).toBe(200);
    expect(answer.body).toBe('ping over the tunnel');
  });

  it('refuses a CONNECT to a port that is not TCP, or to an export without a ready endpoint, and reports a refused connect', async () => {
    expect(await handler(stream('db', 80, { method: 'CONNECT', body: peerStream() }))).toMatchObject({ failure: { code: 'bad-request', message: 'port 80 of db.shop is http, not tcp' } });
    expect(await handler(stream('empty', 5432, { method: 'CONNECT', body: peerStream() }))).toMatchObject({ failure: { code: 'no-healthy-upstream', message: 'empty.shop has no ready endpoint' } });
    expect(await handler(stream('gone', 5432, { method: 'CONNECT', body: peerStream() }))).toMatchObject({ failure: { code: 'connect-failed', message: expect.stringContaining('127.0.0.1:1: ') } });
  });

  it('a tunnel whose peer went away before the endpoint answered is closed at once', async () => {
    const body = peerStream();
    const pending = handler(stream('db', 5432, { method: 'CONNECT', body }));
    body.destroy();
    expect(await pending).toMatchObject({ failure: { code: 'client-closed' } });
  });
});
