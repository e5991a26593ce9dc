import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Duplex, type Readable } from 'node:stream';
import { createSilentLogger } from '../../core/logger.js';
import type { LocalExport } from '../../discovery/provider.js';
import type { Outcome } from '../request/outcome.js';
import { RequestState, type Request } from '../request/request.js';
import { LocalForwarder } from './local-forwarder.js';

function request(method: string, body: Readable | null): Request {
  return {
    direction: 'inbound',
    method,
    path: '/echo',
    authority: 'api.default.svc.clusterset.local:8080',
    service: { namespace: 'default', name: 'api', port: 8080, key: 'default/api' },
    headers: { 'x-request': 'yes' },
    body,
    grpc: false,
    idempotent: method === 'GET',
    caller: 'spiffe://eu-west.example/ns/default/sa/client',
    sourceCluster: 'eu-west',
    startedAt: Date.now(),
  };
}

function exportAt(port: number): LocalExport {
  return { namespace: 'default', name: 'api', ports: [{ name: 'http', port: 8080, targetPort: port, protocol: 'http' }], endpoints: [{ address: '127.0.0.1', ready: true }], consumers: [], createdAt: 0 };
}

async function read(outcome: Outcome): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
  if (outcome.kind !== 'response') throw new Error(`expected a response, got ${outcome.failure.code}: ${outcome.failure.message}`);
  const chunks: Buffer[] = [];
  for await (const chunk of outcome.response.body) chunks.push(chunk as Buffer);
  return { status: outcome.response.status, headers: outcome.response.headers, body: Buffer.concat(chunks).toString() };
}

describe('LocalForwarder (HTTP/1.1 on undici)', () => {
  let server: Server;
  let port: number;
  const forwarder = new LocalForwarder(createSilentLogger(), 100);

  beforeAll(async () => {
    server = createServer((req, res) => {
      let size = 0;
      req.on('data', (c: Buffer) => (size += c.length));
      req.on('end', () => {
        res.setHeader('set-cookie', ['a=1', 'b=2']);
        res.writeHead(201, { 'x-got': `${req.method} ${req.headers.host} ${req.headers['x-fedgate-caller']} ${req.headers['x-request']} ${size}` });
        res.end('done');
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });

  afterAll(async () => {
    forwarder.close();
    await new Promise((resolve) => server.close(resolve));
  });

  it('forwards method, authority, caller and headers, and passes status, repeated headers and body back', async () => {
    const result = await read(await forwarder.forward(request('GET', null), new RequestState(), exportAt(port), exportAt(port).ports[0] as never, 'us-east'));
    expect(result.status).toBe(201);
    expect(result.headers['x-got']).toBe('GET api.default.svc.clusterset.local:8080 spiffe://eu-west.example/ns/default/sa/client yes 0');
    expect(result.headers['set-cookie']).toEqual(['a=1', 'b=2']);
    expect(result.body).toBe('done');
  });

  it("sends a request body without destroying the client's stream, which still carries the response", async () => {
    // Like an inbound HTTP/2 stream: the request side ends, the response side stays open.
    const clientStream = new Duplex({ read() {}, write: (_chunk, _encoding, done) => done() });
    const outcome = forwarder.forward(request('POST', clientStream), new RequestState(), exportAt(port), exportAt(port).ports[0] as never, 'us-east');
    clientStream.push(Buffer.alloc(3000, 1));
    clientStream.push(null);
    const result = await read(await outcome);
    expect(result.headers['x-got']).toMatch(/ 3000$/);
    expect(clientStream.destroyed).toBe(false);
    expect(clientStream.write('response')).toBe(true);
  });

  it('reports a refused connection as a connect failure, safe to retry elsewhere', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const deadPort = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    const outcome = await forwarder.forward(request('GET', null), new RequestState(), exportAt(deadPort), exportAt(deadPort).ports[0] as never, 'us-east');
    expect(outcome.kind === 'failure' && outcome.failure).toMatchObject({ code: 'connect-failed', retriable: true });
  });

  it('closes the pools of endpoints that stopped serving', async () => {
    await read(await forwarder.forward(request('GET', null), new RequestState(), exportAt(port), exportAt(port).ports[0] as never, 'us-east'));
    expect(forwarder.pooledEndpoints).toBeGreaterThan(0);
    // Two sweeps (100 ms apart here): the first marks the pool idle, the second closes it. Polled,
    // not slept, so a loaded machine only makes it slower.
    const deadline = Date.now() + 10_000;
    while (forwarder.pooledEndpoints > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
    expect(forwarder.pooledEndpoints).toBe(0);
  });
});
