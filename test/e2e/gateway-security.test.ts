/**
 * The gateway's guard rails with real processes: identity headers, what the inbound listener
 * serves (exports only, consumers only, gateways of member clusters only), oversized headers and
 * slowloris clients.
 */
import { jest } from '@jest/globals';
import { join } from 'node:path';
import { connect as h2connect, type IncomingHttpHeaders } from 'node:http2';
import { connect as netConnect } from 'node:net';
import { startHttpBackend } from '../../src/demo/sample-backends.js';
import { SpiffeId } from '../../src/model/spiffe-id.js';
import { CertificateAuthority } from '../../src/pki/certificate-authority.js';
import { PeerVerifier } from '../../src/pki/peer-verifier.js';
import { PkiDirectory } from '../../src/pki/pki-directory.js';
import { issueSvid, type Svid } from '../../src/pki/svid.js';
import { clientConnectionOptions } from '../../src/pki/tls-options.js';
import { TrustStore } from '../../src/pki/trust-store.js';
import { LocalFederation } from '../support/federation.js';
import { http1 } from '../support/http-client.js';
import { freePorts } from '../support/ports.js';

jest.setTimeout(60_000);

let federation: LocalFederation;
let backend: { close(): Promise<void> };
let trust: TrustStore;

beforeAll(async () => {
  const [port] = (await freePorts(1)) as [number];
  backend = await startHttpBackend('us-east', '127.0.0.1', port);
  federation = await LocalFederation.create([
    {
      name: 'us-east',
      region: 'us-east-1',
      zone: 'a',
      limits: { headersTimeout: '1s', maxHeaderBytes: 8192 },
      exports: [
        { service: 'payments', ports: [{ name: 'http', port: 8080, targetPort: port, protocol: 'http' }] },
        { service: 'ledger', ports: [{ name: 'http', port: 8080, targetPort: port, protocol: 'http' }], consumers: ['us-west'] },
      ],
    },
    { name: 'eu-west', region: 'eu-west-1', zone: 'a', limits: { headersTimeout: '1s', maxHeaderBytes: 8192 } },
    { name: 'us-west', region: 'us-west-2', zone: 'a' },
  ]);
  await federation.startAll();
  trust = new TrustStore(['us-east', 'eu-west', 'us-west'].map((name) => new PkiDirectory(join(federation.dir, 'pki', name)).bundle()));
});

afterAll(async () => {
  await federation?.stop();
  await backend?.close();
});

function caOf(cluster: string): CertificateAuthority {
  return new PkiDirectory(join(federation.dir, 'pki', cluster)).ca();
}

/** A request straight to us-east's inbound listener, presenting `svid`. */
function toInbound(svid: Svid, authority: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: IncomingHttpHeaders; body: string }> {
  const port = federation.cluster('us-east').ports.inbound;
  return new Promise((resolve, reject) => {
    const session = h2connect(`https://127.0.0.1:${port}`, { ...clientConnectionOptions(svid, trust, new PeerVerifier(trust)), servername: 'fedgate' });
    session.on('error', reject);
    const stream = session.request({ ':method': 'GET', ':path': '/', ':authority': authority, ...headers });
    let responseHeaders: IncomingHttpHeaders = {};
    const chunks: Buffer[] = [];
    stream.on('response', (h) => {
      responseHeaders = h;
    });
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('error', reject);
    stream.on('close', () => {
      session.close();
      if (responseHeaders[':status'] === undefined) reject(new Error(`no response (stream closed, code ${stream.rstCode})`));
      else resolve({ status: Number(responseHeaders[':status']), headers: responseHeaders, body: Buffer.concat(chunks).toString() });
    });
    stream.end();
  });
}

describe('identity', () => {
  it('strips a caller identity a local client tries to set', async () => {
    const result = await http1(federation.outbound('eu-west'), 'payments.default.svc.clusterset.local:8080', { headers: { 'x-fedgate-caller': 'spiffe://us-east.test.internal/ns/default/sa/admin' } });
    expect(JSON.parse(result.body).caller).toBe('spiffe://eu-west.test.internal/fedgate/gateway/eu-west');
  });

  it('lets a gateway assert identities of its own trust domain only', async () => {
    const gateway = issueSvid(caOf('eu-west'), SpiffeId.gateway('eu-west.test.internal', 'eu-west'), { ttlMs: 600_000 });
    const own = await toInbound(gateway, 'payments.default.svc.clusterset.local:8080', { 'x-fedgate-caller': 'spiffe://eu-west.test.internal/ns/shop/sa/web' });
    expect(JSON.parse(own.body).caller).toBe('spiffe://eu-west.test.internal/ns/shop/sa/web');
    const foreign = await toInbound(gateway, 'payments.default.svc.clusterset.local:8080', { 'x-fedgate-caller': 'spiffe://us-east.test.internal/ns/shop/sa/web' });
    expect(foreign.status).toBe(403);
    expect(foreign.headers['x-fedgate-reason']).toBe('identity-rejected');
  });
});

describe('inbound listener', () => {
  const gateway = (): Svid => issueSvid(caOf('eu-west'), SpiffeId.gateway('eu-west.test.internal', 'eu-west'), { ttlMs: 600_000 });

  it('refuses a service that is not exported, and never forwards it', async () => {
    const result = await toInbound(gateway(), 'internal-admin.default.svc.clusterset.local:8080');
    expect(result.status).toBe(404);
    expect(result.headers['x-fedgate-reason']).toBe('service-not-exported');
    const wrongPort = await toInbound(gateway(), 'payments.default.svc.clusterset.local:9999');
    expect(wrongPort.headers['x-fedgate-reason']).toBe('port-not-exported');
    const notClusterset = await toInbound(gateway(), '127.0.0.1:22');
    expect(notClusterset.status).toBe(404);
  });

  it('refuses callers outside an export\'s consumers', async () => {
    const result = await toInbound(gateway(), 'ledger.default.svc.clusterset.local:8080');
    expect(result.status).toBe(403);
    expect(result.headers['x-fedgate-reason']).toBe('consumer-not-allowed');
    const allowed = await toInbound(issueSvid(caOf('us-west'), SpiffeId.gateway('us-west.test.internal', 'us-west'), { ttlMs: 600_000 }), 'ledger.default.svc.clusterset.local:8080');
    expect(allowed.status).toBe(200);
  });

  it('refuses a peer with an untrusted CA', async () => {
    const rogue = CertificateAuthority.create({ trustDomain: 'eu-west.test.internal' });
    await expect(toInbound(issueSvid(rogue, SpiffeId.gateway('eu-west.test.internal', 'eu-west'), { ttlMs: 600_000 }), 'payments.default.svc.clusterset.local:8080')).rejects.toThrow();
  });

  it('refuses a certificate of one cluster claiming another cluster', async () => {
    // eu-west's CA is name-constrained to its domain: OpenSSL refuses the forgery in the handshake.
    const { craftLeaf } = await import('../support/crafted-certificates.js');
    const forged = craftLeaf({ caDir: join(federation.dir, 'pki', 'eu-west'), uris: ['spiffe://us-west.test.internal/fedgate/gateway/us-west'] });
    await expect(toInbound({ ...forged, spiffeId: SpiffeId.gateway('us-west.test.internal', 'us-west') } as never, 'payments.default.svc.clusterset.local:8080')).rejects.toThrow();
  });

  it('refuses member identities that are not gateways', async () => {
    const workload = issueSvid(caOf('eu-west'), SpiffeId.workload('eu-west.test.internal', 'default', 'web'), { ttlMs: 600_000 });
    await expect(toInbound(workload, 'payments.default.svc.clusterset.local:8080')).rejects.toThrow();
  });
});

describe('listener protection', () => {
  it('answers 431 to oversized headers', async () => {
    const result = await http1(federation.outbound('eu-west'), 'payments.default.svc.clusterset.local:8080', { headers: { 'x-big': 'a'.repeat(16 * 1024) } });
    expect(result.status).toBe(431);
  });

  it('closes a slowloris connection that never finishes its headers', async () => {
    const [host, port] = federation.outbound('eu-west').split(':') as [string, string];
    const socket = netConnect({ host, port: Number(port) });
    socket.on('error', () => undefined);
    await new Promise((resolve) => socket.once('connect', resolve));
    const started = Date.now();
    socket.write('GET / HTTP/1.1\r\nHost: payments.default.svc.clusterset.local:8080\r\n');
    const drip = setInterval(() => socket.write('X-Slow: 1\r\n'), 200);
    const closed = await new Promise<number>((resolve) => socket.once('close', () => resolve(Date.now() - started)));
    clearInterval(drip);
    console.log(`slowloris connection closed after ${closed} ms`);
    expect(closed).toBeLessThan(10_000);
  });
});
