/**
 * Issue 28, findings 4, 5 and 7, replayed against real gateway processes with raw sockets (no
 * client library that would normalize a path, drop a header or pool a connection for us):
 * - 4: an AuthorizationPolicy on `/admin/*` holds for every other spelling of that path, an
 *   encoded slash is refused, and the backend receives the normalized path;
 * - 5: idle connections beyond a listener's cap, or beyond one peer cluster's cap, are evicted
 *   and counted instead of taking the process's descriptors, so legitimate requests get through;
 * - 7: a request with two Host headers is a 400 and reaches no backend.
 */
import { jest } from '@jest/globals';
import { createServer, type Server } from 'node:http';
import { connect as h2connect, type ClientHttp2Session } from 'node:http2';
import { connect as netConnect, type Socket } from 'node:net';
import { join } from 'node:path';
import { SpiffeId } from '../../src/model/spiffe-id.js';
import { PeerVerifier } from '../../src/pki/peer-verifier.js';
import { PkiDirectory } from '../../src/pki/pki-directory.js';
import { issueSvid } from '../../src/pki/svid.js';
import { clientConnectionOptions } from '../../src/pki/tls-options.js';
import { TrustStore } from '../../src/pki/trust-store.js';
import { eventually } from '../support/control-plane.js';
import { LocalFederation } from '../support/federation.js';
import { http1 } from '../support/http-client.js';
import { freePorts } from '../support/ports.js';
import { httpGet } from '../support/processes.js';

jest.setTimeout(90_000);

const PAYMENTS = 'payments.default.svc.clusterset.local:8080';
const DENY_POLICY = 'AuthorizationPolicy/default/payments-deny-admin';
/** spec.gateway.limits.maxConnections of both gateways: the smallest the schema accepts. */
const MAX_CONNECTIONS = 16;
/** spec.gateway.limits.maxConnectionsPerPeer of both gateways. */
const MAX_PER_PEER = 4;

let federation: LocalFederation;
let backend: Server;
/** Request targets as the backend received them, in order. */
const received: string[] = [];

beforeAll(async () => {
  const [port] = (await freePorts(1)) as [number];
  backend = createServer((req, res) => {
    received.push(req.url ?? '');
    res.end('ok');
  });
  await new Promise<void>((resolve) => backend.listen(port, '127.0.0.1', resolve));
  // Handshakes get far longer than the test runs, so the only thing that closes an anonymous
  // connection to the inbound listener is the connection cap.
  const limits = { maxConnections: MAX_CONNECTIONS, maxConnectionsPerPeer: MAX_PER_PEER, handshakeTimeout: '120s' };
  federation = await LocalFederation.create(
    [
      { name: 'east', region: 'us-east-1', zone: 'a', limits },
      { name: 'west', region: 'us-west-2', zone: 'a', limits, exports: [{ service: 'payments', ports: [{ name: 'http', port: 8080, targetPort: port, protocol: 'http' }] }] },
    ],
    {
      policies: {
        'deny-admin.yaml': ['apiVersion: fedgate.io/v1alpha1', 'kind: AuthorizationPolicy', 'metadata: {name: payments-deny-admin, namespace: default}', 'spec:', '  service: payments', '  action: DENY', '  rules:', '    - to: [{paths: ["/admin/*"]}]', ''].join('\n'),
      },
    },
  );
  await federation.startAll();
  // east has learned west's export and reaches it.
  await eventually(async () => (await http1(federation.outbound('east'), PAYMENTS)).status === 200, 'east reaches payments in west');
});

afterAll(async () => {
  await federation?.stop();
  await new Promise((resolve) => backend?.close(resolve));
});

interface RawResponse {
  status: number;
  /** Header names lower-cased; the last value wins. */
  headers: Record<string, string>;
}

/** Writes `head` as it is on a fresh TCP connection and reads the response until the server closes. */
function rawHttp1(port: number, head: string): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const socket = netConnect({ host: '127.0.0.1', port }, () => socket.write(head));
    const chunks: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', reject);
    socket.on('close', () => {
      const text = Buffer.concat(chunks).toString('latin1');
      const [statusLine = '', ...lines] = text.slice(0, text.indexOf('\r\n\r\n')).split('\r\n');
      const status = /^HTTP\/1\.1 (\d{3}) /.exec(statusLine);
      if (!status) {
        reject(new Error(`no HTTP response to ${JSON.stringify(head.split('\r\n')[0])}: ${JSON.stringify(text.slice(0, 200))}`));
        return;
      }
      const headers: Record<string, string> = {};
      for (const line of lines) {
        const colon = line.indexOf(':');
        headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
      }
      resolve({ status: Number(status[1]), headers });
    });
  });
}

function get(port: number, target: string, extraHeaders = ''): Promise<RawResponse> {
  return rawHttp1(port, `GET ${target} HTTP/1.1\r\nHost: ${PAYMENTS}\r\n${extraHeaders}Connection: close\r\n\r\n`);
}

function outboundPort(cluster: string): number {
  return federation.cluster(cluster).ports.outbound;
}

/** The value of one series of fedgate_limit_refusals_total on a gateway's admin /metrics (0 when absent). */
async function limitRefusals(cluster: string, listener: string, limit: string): Promise<number> {
  const metrics = (await httpGet(`${federation.adminUrl(cluster)}/metrics`)).body;
  for (const line of metrics.split('\n')) {
    if (!line.startsWith('fedgate_limit_refusals_total{')) continue;
    if (line.includes(`listener="${listener}"`) && line.includes(`limit="${limit}"`)) return Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return 0;
}

/** A socket we opened, and whether the gateway has closed it. */
interface HeldSocket {
  socket: Socket;
  closed: boolean;
}

/** Opens a TCP connection and resolves once the connect completed; `closed` follows the socket. */
function hold(port: number, onConnect?: (socket: Socket) => void): Promise<HeldSocket> {
  return new Promise((resolve, reject) => {
    const socket = netConnect({ host: '127.0.0.1', port });
    const held: HeldSocket = { socket, closed: false };
    socket.on('error', () => undefined);
    socket.once('close', () => {
      held.closed = true;
    });
    socket.once('connect', () => {
      if (onConnect) onConnect(socket);
      else resolve(held);
    });
    if (onConnect) socket.once('data', () => resolve(held));
    socket.once('close', () => reject(new Error('the gateway closed a connection before it was established')));
  });
}

const H2_PREFACE = Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1'), Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0])]);

describe('gateway hardening against the attacks of issue 28', () => {
  it('finding 4: authorization and forwarding see the normalized path; no spelling of /admin/* gets past a DENY', async () => {
    // east reaches payments across clusters (DENY enforced by west's inbound listener); west
    // reaches its own export (enforced by its outbound request path).
    for (const cluster of ['east', 'west']) {
      const port = outboundPort(cluster);
      const spellings = ['/admin/x', '/./admin/x', '//admin/x', '/%61dmin/x', '/public/../admin/x', '/%2e/admin/x', '/public/%2E%2E/admin/x', '/../admin/x', `http://${PAYMENTS}/admin/x`];
      for (const target of spellings) {
        const response = await get(port, target);
        expect({ cluster, target, status: response.status, policy: response.headers['x-fedgate-policy'] }).toEqual({ cluster, target, status: 403, policy: DENY_POLICY });
      }
      // HTTP/2 cleartext: the :path goes on the wire exactly as given.
      const session = h2connect(`http://${federation.outbound(cluster)}`);
      try {
        for (const path of ['/./admin/x', '//admin/x']) {
          const status = await new Promise<number>((resolve, reject) => {
            const stream = session.request({ ':method': 'GET', ':path': path, ':authority': PAYMENTS });
            stream.on('response', (headers) => resolve(Number(headers[':status'])));
            stream.on('error', reject);
            stream.resume();
            stream.end();
          });
          expect({ cluster, path, status }).toEqual({ cluster, path, status: 403 });
        }
      } finally {
        session.close();
      }
      // An encoded slash or backslash means one segment here and two at an upstream that decodes it.
      for (const target of ['/admin%2Fx', '/public%2f..%2fadmin/x', '/public/a%5Cb']) {
        const response = await get(port, target);
        expect({ cluster, target, status: response.status, reason: response.headers['x-fedgate-reason'] }).toEqual({ cluster, target, status: 400, reason: 'bad-request' });
      }
    }
    expect(received.filter((target) => target.toLowerCase().includes('admin'))).toEqual([]);

    // What is allowed reaches the backend in the normalized form the rules were checked against;
    // the query string is left as it was.
    for (const cluster of ['east', 'west']) {
      const before = received.length;
      const response = await get(outboundPort(cluster), `/public/./a//b/../c/%7E${cluster}/%3a?q=%2F..`);
      expect(response.status).toBe(200);
      expect(received.slice(before)).toEqual([`/public/a/c/~${cluster}/%3A?q=%2F..`]);
    }
  });

  it('finding 7: a request with two Host headers is refused with 400 and reaches no backend', async () => {
    const before = received.length;
    const twoHosts = [
      `Host: ${PAYMENTS}\r\nHost: elsewhere.default.svc.clusterset.local:8080\r\n`,
      // The same value twice, and a different case of the name, are still two Host fields.
      `Host: ${PAYMENTS}\r\nhost: ${PAYMENTS}\r\n`,
    ];
    for (const hosts of twoHosts) {
      const response = await rawHttp1(outboundPort('east'), `GET /finding-7 HTTP/1.1\r\n${hosts}Connection: close\r\n\r\n`);
      expect({ hosts, status: response.status, reason: response.headers['x-fedgate-reason'] }).toEqual({ hosts, status: 400, reason: 'bad-request' });
    }
    // The gateway answers only after the backend did when it forwards, so nothing can still be on its way.
    expect(received.slice(before)).toEqual([]);
    // One Host, same request: served.
    expect((await get(outboundPort('east'), '/finding-7')).status).toBe(200);
    expect(received.slice(before)).toEqual(['/finding-7']);
  });

  it('finding 5: idle connections beyond maxConnections are evicted and counted, and a legitimate request is still served', async () => {
    const held: HeldSocket[] = [];
    try {
      // Outbound listener: h2c clients that send the preface and a SETTINGS frame, then nothing.
      // Each is opened once the previous one has its session (the gateway's SETTINGS arrived), so
      // they are idle in the order they were opened.
      const outbound = outboundPort('east');
      const evictedBefore = await limitRefusals('east', 'outbound', 'idle-evicted');
      const idle = MAX_CONNECTIONS + 8;
      for (let i = 0; i < idle; i++) held.push(await hold(outbound, (socket) => socket.write(H2_PREFACE)));
      // The listener holds at most MAX_CONNECTIONS: the oldest ones made room, exactly them.
      await eventually(() => held.filter((h) => h.closed).length === idle - MAX_CONNECTIONS, `${idle - MAX_CONNECTIONS} idle h2c connections evicted`);
      expect(held.map((h) => h.closed)).toEqual(held.map((_, i) => i < idle - MAX_CONNECTIONS));

      const legitimate = await http1(federation.outbound('east'), PAYMENTS, { path: '/finding-5' });
      expect(legitimate.status).toBe(200);
      // Its connection took the place of the idlest remaining one.
      await eventually(() => held.filter((h) => h.closed).length === idle - MAX_CONNECTIONS + 1, 'one more idle connection evicted for the legitimate one');
      expect(held.map((h) => h.closed)).toEqual(held.map((_, i) => i <= idle - MAX_CONNECTIONS));
      expect((await limitRefusals('east', 'outbound', 'idle-evicted')) - evictedBefore).toBe(idle - MAX_CONNECTIONS + 1);
      expect(await limitRefusals('east', 'outbound', 'connections')).toBe(0);
      for (const h of held) h.socket.destroy();
      held.length = 0;

      // Inbound listener: TCP connections that never start their TLS handshake. They count from
      // the accept and are the first to make room; east's verified gateway connections are not.
      const inbound = federation.cluster('west').ports.inbound;
      const inboundBefore = await limitRefusals('west', 'inbound', 'idle-evicted');
      const anonymous = MAX_CONNECTIONS * 2;
      for (let i = 0; i < anonymous; i++) held.push(await hold(inbound));
      await eventually(() => held.filter((h) => h.closed).length >= anonymous - MAX_CONNECTIONS, `at least ${anonymous - MAX_CONNECTIONS} anonymous inbound connections evicted`);
      const crossCluster = await http1(federation.outbound('east'), PAYMENTS, { path: '/finding-5-inbound' });
      expect(crossCluster.status).toBe(200);
      expect(received).toContain('/finding-5-inbound');
      // Every anonymous connection the gateway closed was an eviction, counted as such.
      await eventually(async () => (await limitRefusals('west', 'inbound', 'idle-evicted')) - inboundBefore === held.filter((h) => h.closed).length, 'inbound evictions counted');
      expect(held.filter((h) => !h.closed).length).toBeLessThanOrEqual(MAX_CONNECTIONS);
      for (const h of held) h.socket.destroy();
      held.length = 0;

      // maxConnectionsPerPeer: whoever holds east's gateway key opens more connections than east
      // may hold on west's inbound listener. East's idlest connections make room (GOAWAY NO_ERROR),
      // and east's own gateway still gets its requests through.
      const trust = new TrustStore(['east', 'west'].map((name) => new PkiDirectory(join(federation.dir, 'pki', name)).bundle()));
      const svid = issueSvid(new PkiDirectory(join(federation.dir, 'pki', 'east')).ca(), SpiffeId.gateway('east.test.internal', 'east'), { ttlMs: 600_000 });
      const perPeerBefore = await limitRefusals('west', 'inbound', 'per-peer-idle-evicted');
      const sessions: Array<{ session: ClientHttp2Session; closed: boolean; goaway?: number }> = [];
      try {
        const opened = MAX_PER_PEER + 3;
        for (let i = 0; i < opened; i++) {
          const session = h2connect(`https://127.0.0.1:${inbound}`, { ...clientConnectionOptions(svid, trust, new PeerVerifier(trust)), servername: 'fedgate' });
          const entry: { session: ClientHttp2Session; closed: boolean; goaway?: number } = { session, closed: false };
          session.on('error', () => undefined);
          session.once('goaway', (code: number) => {
            entry.goaway = code;
          });
          session.once('close', () => {
            entry.closed = true;
          });
          sessions.push(entry);
          // The gateway's SETTINGS arrive once it verified the peer and admitted the connection.
          await new Promise<void>((resolve, reject) => {
            session.once('remoteSettings', () => resolve());
            session.once('close', () => reject(new Error('the gateway closed a verified connection before its SETTINGS')));
          });
        }
        await eventually(() => sessions.filter((s) => s.closed).length >= opened - MAX_PER_PEER, `at least ${opened - MAX_PER_PEER} of east's idle connections evicted`);
        const evicted = sessions.filter((s) => s.closed);
        expect(evicted.map((s) => s.goaway)).toEqual(evicted.map(() => 0));
        // At most MAX_PER_PEER of them are left (fewer when east's own pool connection was busier).
        expect(sessions.filter((s) => !s.closed).length).toBeLessThanOrEqual(MAX_PER_PEER);
        const fromEast = await http1(federation.outbound('east'), PAYMENTS, { path: '/finding-5-per-peer' });
        expect(fromEast.status).toBe(200);
        expect((await limitRefusals('west', 'inbound', 'per-peer-idle-evicted')) - perPeerBefore).toBeGreaterThanOrEqual(evicted.length);
      } finally {
        for (const s of sessions) s.session.destroy();
      }
    } finally {
      for (const h of held) h.socket.destroy();
    }
  });
});
