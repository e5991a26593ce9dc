/**
 * Every protocol through two real gateway processes (eu-west → mTLS HTTP/2 → us-east) to real
 * backends: HTTP/1.1, HTTP/2 cleartext, gRPC (all four call kinds, deadlines, status, trailers)
 * and TCP with half-close.
 */
import { jest } from '@jest/globals';
import { createHash, randomBytes } from 'node:crypto';
import { Agent } from 'node:http';
import { connect as h2connect } from 'node:http2';
import { connect as netConnect } from 'node:net';
import { startHttpBackend, startTcpEchoBackend } from '../../src/demo/sample-backends.js';
import { echoClient, grpcForEcho, startEchoServer, type EchoClient, type EchoMessage } from '../../src/proto/echo-service.js';
import { LocalFederation } from '../support/federation.js';
import { h2c, http1 } from '../support/http-client.js';
import { freePorts } from '../support/ports.js';

jest.setTimeout(60_000);

let federation: LocalFederation;
const closers: Array<() => Promise<void>> = [];
let grpc: EchoClient;

beforeAll(async () => {
  const [httpPort, h2Port, grpcPort, tcpPort] = (await freePorts(4)) as [number, number, number, number];
  const backends = [
    await startHttpBackend('us-east', '127.0.0.1', httpPort),
    await startHttpBackend('us-east', '127.0.0.1', h2Port, { h2c: true }),
    await startEchoServer('us-east', `127.0.0.1:${grpcPort}`),
    await startTcpEchoBackend('127.0.0.1', tcpPort),
  ];
  closers.push(...backends.map((b) => () => b.close()));
  federation = await LocalFederation.create([
    {
      name: 'us-east',
      region: 'us-east-1',
      zone: 'a',
      exports: [
        { service: 'payments', ports: [{ name: 'http', port: 8080, targetPort: httpPort, protocol: 'http' }] },
        { service: 'web2', ports: [{ name: 'h2', port: 8443, targetPort: h2Port, protocol: 'http2' }] },
        { service: 'greeter', ports: [{ name: 'grpc', port: 9090, targetPort: grpcPort, protocol: 'grpc' }] },
        { service: 'echo', ports: [{ name: 'tcp', port: 7000, targetPort: tcpPort, protocol: 'tcp' }] },
      ],
    },
    { name: 'eu-west', region: 'eu-west-1', zone: 'a', tcpImports: [{ service: 'echo.default', port: 7000 }] },
  ]);
  await federation.startAll();
  grpc = echoClient(federation.outbound('eu-west'), 'greeter.default.svc.clusterset.local:9090');
});

afterAll(async () => {
  grpc?.close();
  await federation?.stop();
  for (const close of closers) await close();
});

const PAYMENTS = 'payments.default.svc.clusterset.local:8080';

describe('HTTP/1.1', () => {
  it('GET crosses clusters with the caller identity set by the gateway', async () => {
    const result = await http1(federation.outbound('eu-west'), PAYMENTS, { path: '/orders?id=7' });
    expect(result.status).toBe(200);
    expect(result.headers['x-fedgate-upstream-cluster']).toBe('us-east');
    expect(JSON.parse(result.body)).toMatchObject({ servedBy: 'us-east', method: 'GET', path: '/orders?id=7', caller: 'spiffe://eu-west.test.internal/fedgate/gateway/eu-west', authority: PAYMENTS });
  });

  it('streams a 1 MB POST body without buffering it whole, and it arrives intact', async () => {
    const payload = randomBytes(1024 * 1024);
    async function* chunks(): AsyncIterable<Buffer> {
      for (let offset = 0; offset < payload.length; offset += 64 * 1024) yield payload.subarray(offset, offset + 64 * 1024);
    }
    const result = await http1(federation.outbound('eu-west'), PAYMENTS, { method: 'POST', path: '/upload', body: chunks(), headers: { 'content-type': 'application/octet-stream' } });
    const echoed = JSON.parse(result.body) as { bodyBytes: number; bodySha256: string };
    expect(result.status).toBe(200);
    expect(echoed.bodyBytes).toBe(payload.length);
    expect(echoed.bodySha256).toBe(createHash('sha256').update(payload).digest('hex'));
  });

  it('answers Expect: 100-continue itself and forwards the body without the expectation', async () => {
    const result = await http1(federation.outbound('eu-west'), PAYMENTS, { method: 'POST', path: '/continue', body: (async function* () { yield Buffer.alloc(4096, 7); })(), headers: { expect: '100-continue', 'content-length': '4096' } });
    expect(result.status).toBe(200);
    expect(JSON.parse(result.body)).toMatchObject({ method: 'POST', bodyBytes: 4096 });
  });

  it('passes a chunked request body and keeps connections alive', async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const sockets = new Set<unknown>();
    agent.on('free', (socket) => sockets.add(socket));
    try {
      for (let i = 0; i < 5; i++) {
        const result = await http1(federation.outbound('eu-west'), PAYMENTS, { method: 'PUT', path: `/k/${i}`, body: (async function* () { yield Buffer.from('a'); yield Buffer.from('bc'); })(), agent });
        expect(JSON.parse(result.body)).toMatchObject({ method: 'PUT', bodyBytes: 3 });
      }
      expect(sockets.size).toBe(1);
    } finally {
      agent.destroy();
    }
  });

  it('passes upstream status codes and refuses names that are not clusterset services', async () => {
    expect((await http1(federation.outbound('eu-west'), PAYMENTS, { path: '/?status=418' })).status).toBe(418);
    const unknown = await http1(federation.outbound('eu-west'), 'nope.default.svc.clusterset.local:80');
    expect(unknown.status).toBe(404);
    expect(unknown.headers['x-fedgate-reason']).toBe('no-route');
    const bad = await http1(federation.outbound('eu-west'), 'www.example.com');
    expect(bad.status).toBe(404);
    expect(bad.body).toContain('is not a clusterset service name');
  });
});

describe('HTTP/2 cleartext (prior knowledge)', () => {
  it('reaches an HTTP/1.1 backend and an HTTP/2 backend', async () => {
    const toH1 = await h2c(federation.outbound('eu-west'), PAYMENTS, '/via-h2c');
    expect(toH1.status).toBe(200);
    expect(JSON.parse(toH1.body)).toMatchObject({ servedBy: 'us-east', path: '/via-h2c', protocol: '1.1' });
    const toH2 = await h2c(federation.outbound('eu-west'), 'web2.default.svc.clusterset.local:8443', '/h2');
    expect(toH2.status).toBe(200);
    expect(JSON.parse(toH2.body)).toMatchObject({ path: '/h2', protocol: '2.0' });
  });

  it('multiplexes many streams on one client connection', async () => {
    const session = h2connect(`http://${federation.outbound('eu-west')}`);
    try {
      const results = await Promise.all(Array.from({ length: 50 }, (_, i) => h2c(federation.outbound('eu-west'), PAYMENTS, `/m/${i}`, session)));
      expect(results.every((r) => r.status === 200)).toBe(true);
    } finally {
      session.close();
    }
  });
});

describe('gRPC', () => {
  const metadata = (): InstanceType<typeof grpcForEcho.Metadata> => new grpcForEcho.Metadata();

  it('unary', async () => {
    const reply = await new Promise<EchoMessage | undefined>((resolve, reject) => grpc.unary({ text: 'hello' }, metadata(), { deadline: Date.now() + 5000 }, (e, r) => (e ? reject(e) : resolve(r))));
    expect(reply).toEqual({ text: 'hello', servedBy: 'us-east', count: 1 });
  });

  it('passes status codes and messages through the trailers', async () => {
    const error = await new Promise<InstanceType<typeof Error> & { code?: number; details?: string }>((resolve) => grpc.unary({ text: 'x', failWith: 5 }, metadata(), { deadline: Date.now() + 5000 }, (e) => resolve(e as never)));
    expect(error.code).toBe(5);
    expect(error.details).toBe('failed on purpose by us-east');
  });

  it('enforces deadlines end to end', async () => {
    const started = Date.now();
    const error = await new Promise<{ code?: number }>((resolve) => grpc.unary({ text: 'slow', delayMs: 3000 }, metadata(), { deadline: Date.now() + 300 }, (e) => resolve(e as never)));
    expect(error.code).toBe(4);
    expect(Date.now() - started).toBeLessThan(2500);
  });

  it('server streaming', async () => {
    const call = grpc.serverStream({ text: 'tick', count: 5 }, metadata(), { deadline: Date.now() + 5000 });
    const received: string[] = [];
    for await (const message of call as AsyncIterable<EchoMessage>) received.push(message.text);
    expect(received).toEqual(['tick #0', 'tick #1', 'tick #2', 'tick #3', 'tick #4']);
  });

  it('client streaming', async () => {
    const reply = await new Promise<EchoMessage | undefined>((resolve, reject) => {
      const call = grpc.clientStream(metadata(), { deadline: Date.now() + 5000 }, (e, r) => (e ? reject(e) : resolve(r)));
      for (const text of ['a', 'b', 'c', 'd']) call.write({ text });
      call.end();
    });
    expect(reply).toMatchObject({ text: 'a,b,c,d', count: 4, servedBy: 'us-east' });
  });

  it('bidirectional streaming, message by message', async () => {
    const call = grpc.bidi(metadata(), { deadline: Date.now() + 5000 });
    const replies: string[] = [];
    const iterator = (call as AsyncIterable<EchoMessage>)[Symbol.asyncIterator]();
    for (const text of ['one', 'two', 'three']) {
      call.write({ text });
      const next = await iterator.next();
      replies.push((next.value as EchoMessage).text);
    }
    call.end();
    expect(await iterator.next()).toMatchObject({ done: true });
    expect(replies).toEqual(['ONE', 'TWO', 'THREE']);
  });

  it('cancellation reaches across the gateways', async () => {
    const call = grpc.serverStream({ text: 'forever', count: 1000, delayMs: 50 }, metadata(), { deadline: Date.now() + 10_000 });
    const first = await new Promise<EchoMessage>((resolve) => call.once('data', resolve));
    expect(first.text).toBe('forever #0');
    const ended = new Promise<{ code?: number }>((resolve) => call.once('error', resolve));
    call.cancel();
    expect((await ended).code).toBe(1);
  });
});

describe('observability', () => {
  it('exports request, health and failover metrics and the applied snapshot', async () => {
    const { httpGet } = await import('../support/processes.js');
    await http1(federation.outbound('eu-west'), PAYMENTS);
    const metrics = (await httpGet(`http://127.0.0.1:${federation.cluster('eu-west').ports.admin}/metrics`)).body;
    /** The value of the sample of `name` that has all of `labels` (in any order). */
    const sample = (text: string, name: string, labels: Record<string, string>): number | undefined => {
      for (const line of text.split('\n')) {
        if (!line.startsWith(`${name}{`)) continue;
        if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) return Number(line.split(' ').pop());
      }
      return undefined;
    };
    expect(sample(metrics, 'fedgate_requests_total', { source_cluster: 'eu-west', destination_cluster: 'us-east', service: 'default/payments', code: '200', direction: 'outbound' })).toBeGreaterThan(0);
    expect(sample(metrics, 'fedgate_request_duration_seconds_bucket', { service: 'default/payments', le: '+Inf' })).toBeGreaterThan(0);
    expect(sample(metrics, 'fedgate_upstream_healthy', { destination_cluster: 'us-east' })).toBe(1);
    expect(metrics).toContain('# TYPE fedgate_failovers_total counter');
    expect(metrics).toContain('# TYPE fedgate_failover_seconds histogram');
    const inbound = (await httpGet(`http://127.0.0.1:${federation.cluster('us-east').ports.admin}/metrics`)).body;
    expect(sample(inbound, 'fedgate_requests_total', { source_cluster: 'eu-west', destination_cluster: 'us-east', service: 'default/payments', code: '200', direction: 'inbound' })).toBeGreaterThan(0);
    const config = JSON.parse((await httpGet(`http://127.0.0.1:${federation.cluster('eu-west').ports.admin}/config`)).body) as { catalog: { revision: number; services: Array<{ service: string }> } };
    expect(config.catalog.revision).toBe(1);
    expect(config.catalog.services.map((s) => s.service).sort()).toEqual(['default/echo', 'default/greeter', 'default/payments', 'default/web2']);
    expect((await httpGet(`http://127.0.0.1:${federation.cluster('eu-west').ports.admin}/readyz`)).status).toBe(200);
  });
});

describe('TCP', () => {
  it('tunnels bytes both ways and passes a half-close through', async () => {
    const port = federation.cluster('eu-west').ports.tcp[0] as number;
    const socket = netConnect({ host: '127.0.0.1', port, allowHalfOpen: true });
    const received: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => received.push(chunk));
    await new Promise((resolve) => socket.once('connect', resolve));
    socket.write('ping ');
    await new Promise((resolve) => setTimeout(resolve, 200));
    socket.write('pong');
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(Buffer.concat(received).toString()).toBe('ping pong');
    // Half-close: we stop sending; the server still answers, then closes its side.
    socket.end();
    await new Promise((resolve) => socket.once('end', resolve));
    expect(Buffer.concat(received).toString()).toBe('ping pongbye 9');
    socket.destroy();
  });
});
