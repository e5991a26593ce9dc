import type { IncomingHttpHeaders } from 'node:http2';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { startH2Server, type TestH2Server } from '../../../test/support/http2-raw-peer.js';
import { createSilentLogger } from '../../core/logger.js';
import type { H2ServerStream } from '../../http2/index.js';
import { SpiffeId } from '../../model/spiffe-id.js';
import { CertificateAuthority } from '../../pki/certificate-authority.js';
import { PeerVerifier } from '../../pki/peer-verifier.js';
import { issueSvid } from '../../pki/svid.js';
import { clientConnectionOptions, expectId, MTLS_SERVER_OPTIONS, serverSecureContext } from '../../pki/tls-options.js';
import { TrustBundle } from '../../pki/trust-bundle.js';
import { TrustStore } from '../../pki/trust-store.js';
import type { Outcome } from '../request/outcome.js';
import { RequestState, type Request } from '../request/request.js';
import { PeerPool } from './peer-pool.js';
import { forwardToPeer } from './remote-forwarder.js';

const EAST = 'us-east.acme.internal';
const WEST = 'us-west.acme.internal';
const HOUR = 3_600_000;
const CALLER = `spiffe://${EAST}/ns/shop/sa/web`;

/**
 * The endpoint stage towards a peer gateway: a real pooled HTTP/2-over-mTLS connection (fedgate's
 * HTTP/2 stack on both sides) with certificates from fedgate's own CAs.
 */
describe('forwardToPeer over a PeerPool (real mutual TLS)', () => {
  const eastCa = CertificateAuthority.create({ trustDomain: EAST });
  const westCa = CertificateAuthority.create({ trustDomain: WEST });
  const trust = new TrustStore([TrustBundle.fromPem(EAST, eastCa.certificatePem, 1), TrustBundle.fromPem(WEST, westCa.certificatePem, 1)]);
  const eastSvid = issueSvid(eastCa, SpiffeId.gateway(EAST, 'us-east'), { ttlMs: HOUR });
  const westSvid = issueSvid(westCa, SpiffeId.gateway(WEST, 'us-west'), { ttlMs: HOUR });
  let peer: TestH2Server;
  let handle: (stream: H2ServerStream, headers: IncomingHttpHeaders) => void = () => undefined;
  let dead: Server;
  let deadPort: number;
  const pools: PeerPool[] = [];

  beforeAll(async () => {
    peer = await startH2Server((stream, headers) => {
      stream.on('error', () => undefined);
      handle(stream, headers);
    }, {}, { ...MTLS_SERVER_OPTIONS, ...serverSecureContext(westSvid, trust) });
    // A port that accepts and closes at once: a peer whose gateway is not there.
    dead = createServer((socket) => socket.destroy());
    await new Promise<void>((resolve) => dead.listen(0, '127.0.0.1', resolve));
    deadPort = (dead.address() as AddressInfo).port;
  });
  afterAll(async () => {
    for (const pool of pools) pool.close('test over');
    await peer.close();
    await new Promise((resolve) => dead.close(resolve));
  });

  function pool(port: number, expected = SpiffeId.gateway(WEST, 'us-west'), over: { maxConnections?: number; maxPending?: number } = {}): PeerPool {
    const made = new PeerPool({
      cluster: 'us-west',
      addresses: () => [`127.0.0.1:${port}`],
      tls: () => clientConnectionOptions(eastSvid, trust, new PeerVerifier(trust), expectId(expected)),
      maxConnections: over.maxConnections ?? 2,
      maxPending: over.maxPending ?? 10,
      connectTimeoutMs: 2000,
      log: createSilentLogger(),
    });
    pools.push(made);
    return made;
  }

  function request(method = 'GET'): Request {
    return { direction: 'outbound', method, path: '/pay?x=1', authority: 'payments.shop.svc.clusterset.local:8080', service: { namespace: 'shop', name: 'payments', port: 8080, key: 'shop/payments' }, headers: { 'x-app': 'a' }, body: null, grpc: false, idempotent: true, caller: CALLER, sourceCluster: 'us-east', startedAt: 0 };
  }

  async function read(outcome: Outcome): Promise<{ status: number; headers: IncomingHttpHeaders; body: string }> {
    if (outcome.kind !== 'response') throw new Error(`expected a response, got ${outcome.failure.code}: ${outcome.failure.message}`);
    let body = '';
    for await (const chunk of outcome.response.body) body += (chunk as Buffer).toString();
    return { status: outcome.response.status, headers: outcome.response.headers, body };
  }

  it('sends the request with the caller’s identity over one pooled session and answers at the response headers', async () => {
    const seen: IncomingHttpHeaders[] = [];
    handle = (stream, headers) => {
      seen.push(headers);
      stream.respond({ ':status': 200, 'x-from': 'us-west' });
      stream.end('hello from us-west');
    };
    const p = pool(peer.port);
    const first = await read(await forwardToPeer(request(), new RequestState(), { cluster: 'us-west', redial: false }, p));
    expect(first).toMatchObject({ status: 200, body: 'hello from us-west', headers: { 'x-from': 'us-west' } });
    await read(await forwardToPeer(request(), new RequestState(), { cluster: 'us-west', redial: false }, p));
    expect(p.size).toBe(1);
    expect(seen[0]).toMatchObject({ ':method': 'GET', ':path': '/pay?x=1', ':authority': 'payments.shop.svc.clusterset.local:8080', 'x-fedgate-caller': CALLER, 'x-app': 'a' });
  });

  it('answers connect-failed, retriable, when the peer is not there', async () => {
    const outcome = await forwardToPeer(request(), new RequestState(), { cluster: 'us-west', redial: false }, pool(deadPort));
    expect(outcome).toMatchObject({ kind: 'failure', failure: { code: 'connect-failed', cluster: 'us-west', retriable: true } });
  });

  it('refuses a peer whose certificate is not the gateway it should be', async () => {
    const outcome = await forwardToPeer(request(), new RequestState(), { cluster: 'us-west', redial: false }, pool(peer.port, SpiffeId.gateway(WEST, 'eu-west')));
    expect(outcome).toMatchObject({ kind: 'failure', failure: { code: 'connect-failed', retriable: true } });
  });

  it('a reset before the response headers is upstream-reset, retriable while nothing of the body went', async () => {
    handle = (stream) => stream.close(2);
    const outcome = await forwardToPeer(request(), new RequestState(), { cluster: 'us-west', redial: false }, pool(peer.port));
    expect(outcome).toMatchObject({ kind: 'failure', failure: { code: 'upstream-reset', cluster: 'us-west', retriable: true } });
  });

  it('an attempt given up (per-try timeout) answers at once, without waiting for the peer', async () => {
    let arrived: () => void = () => undefined;
    const atPeer = new Promise<void>((resolve) => (arrived = resolve));
    handle = () => arrived();
    const state = new RequestState();
    const pending = forwardToPeer(request(), state, { cluster: 'us-west', redial: false }, pool(peer.port));
    await atPeer;
    state.abortAttempt('timeout');
    expect(await pending).toMatchObject({ kind: 'failure', failure: { code: 'timeout', message: 'attempt abandoned', retriable: false } });
  });

  it('answers why the request ended without opening a stream when it ended before', async () => {
    const state = new RequestState();
    state.end('client-closed');
    const p = pool(peer.port);
    expect(await forwardToPeer(request(), state, { cluster: 'us-west', redial: false }, p)).toMatchObject({ kind: 'failure', failure: { code: 'client-closed' } });
    expect(p.inFlight).toBe(0);
  });
});
