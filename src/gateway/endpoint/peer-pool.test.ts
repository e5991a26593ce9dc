import { createServer, type AddressInfo, type Server } from 'node:net';
import { startH2Server, type TestH2Server } from '../../../test/support/http2-raw-peer.js';
import { ManualClock } from '../../core/clock.js';
import { createSilentLogger } from '../../core/logger.js';
import { SpiffeId } from '../../model/spiffe-id.js';
import { CertificateAuthority } from '../../pki/certificate-authority.js';
import { PeerVerifier } from '../../pki/peer-verifier.js';
import { issueSvid } from '../../pki/svid.js';
import { clientConnectionOptions, expectId, MTLS_SERVER_OPTIONS, serverSecureContext } from '../../pki/tls-options.js';
import { TrustBundle } from '../../pki/trust-bundle.js';
import { TrustStore } from '../../pki/trust-store.js';
import { PeerPool, type PeerSession, type PoolError } from './peer-pool.js';

const EAST = 'us-east.acme.internal';
const WEST = 'us-west.acme.internal';
const HOUR = 3_600_000;

/** A pool of HTTP/2-over-mTLS sessions to a real peer (fedgate's HTTP/2 server, certificates from fedgate's CAs). */
describe('PeerPool', () => {
  const eastCa = CertificateAuthority.create({ trustDomain: EAST });
  const westCa = CertificateAuthority.create({ trustDomain: WEST });
  const trust = new TrustStore([TrustBundle.fromPem(EAST, eastCa.certificatePem, 1), TrustBundle.fromPem(WEST, westCa.certificatePem, 1)]);
  const eastSvid = issueSvid(eastCa, SpiffeId.gateway(EAST, 'us-east'), { ttlMs: HOUR });
  const westSvid = issueSvid(westCa, SpiffeId.gateway(WEST, 'us-west'), { ttlMs: HOUR });
  let peer: TestH2Server;
  let dead: Server;
  let deadPort: number;
  const pools: PeerPool[] = [];

  beforeAll(async () => {
    // Streams are left open: the tests hold them to fill the pool.
    peer = await startH2Server((stream) => stream.on('error', () => undefined), { maxConcurrentStreams: 2 }, { ...MTLS_SERVER_OPTIONS, ...serverSecureContext(westSvid, trust) });
    dead = createServer((socket) => socket.destroy());
    await new Promise<void>((resolve) => dead.listen(0, '127.0.0.1', resolve));
    deadPort = (dead.address() as AddressInfo).port;
  });
  afterAll(async () => {
    for (const pool of pools) pool.close('test over');
    await peer.close();
    await new Promise((resolve) => dead.close(resolve));
  });

  function pool(addresses: string[], over: { maxConnections?: number; maxPending?: number; clock?: ManualClock } = {}): PeerPool {
    const made = new PeerPool({
      cluster: 'us-west',
      addresses: () => addresses,
      tls: () => clientConnectionOptions(eastSvid, trust, new PeerVerifier(trust), expectId(SpiffeId.gateway(WEST, 'us-west'))),
      maxConnections: over.maxConnections ?? 1,
      maxPending: over.maxPending ?? 1,
      connectTimeoutMs: 2000,
      log: createSilentLogger(),
      ...(over.clock ? { clock: over.clock } : {}),
    });
    pools.push(made);
    return made;
  }

  async function refusal(acquired: PeerSession | Promise<PeerSession>): Promise<string> {
    try {
      await acquired;
    } catch (error) {
      return `${(error as PoolError).code}: ${(error as Error).message}`;
    }
    return 'acquired';
  }

  it('multiplexes up to the peer’s stream limit, then queues up to maxPending, then refuses with overflow', async () => {
    const p = pool([`127.0.0.1:${peer.port}`], { maxConnections: 1, maxPending: 1 });
    const first = await p.acquire();
    const second = await p.acquire();
    expect(second.session).toBe(first.session);
    expect(p.inFlight).toBe(2);
    const waiting = p.acquire();
    expect(await refusal(p.acquire())).toBe('overflow: 1 requests already wait for a stream to us-west (max pending)');
    p.release(first);
    expect((await waiting).session).toBe(first.session);
    expect(p.size).toBe(1);
  });

  it('answers a PING over its session', async () => {
    const p = pool([`127.0.0.1:${peer.port}`]);
    expect(typeof (await p.ping(2000))).toBe('number');
    expect(p.size).toBe(1);
  });

  it('after a failed connect, fails fast while its back-off runs, dials again after it or when asked to redial', async () => {
    const clock = new ManualClock(1_000_000);
    const p = pool([`127.0.0.1:${deadPort}`], { clock });
    expect(await refusal(p.acquire())).toMatch(/^connect-failed: cannot connect to the gateway of us-west at 127\.0\.0\.1:\d+: /);
    expect(await refusal(p.acquire())).toMatch(/^connect-failed: us-west unreachable \(.*\); next attempt in 50ms$/);
    clock.advance(20);
    expect(await refusal(p.acquire())).toMatch(/next attempt in 30ms$/);
    // A retry that came back here for want of another cluster dials for real.
    expect(await refusal(p.acquire(true))).toMatch(/^connect-failed: cannot connect/);
    // The back-off grows with each failure in a row.
    expect(await refusal(p.acquire())).toMatch(/next attempt in 100ms$/);
    clock.advance(100);
    expect(await refusal(p.acquire())).toMatch(/^connect-failed: cannot connect/);
  });

  it('tries the next advertised address after a failed one', async () => {
    const clock = new ManualClock(0);
    const p = pool([`127.0.0.1:${deadPort}`, `127.0.0.1:${peer.port}`], { clock });
    expect(await refusal(p.acquire())).toMatch(/^connect-failed: cannot connect/);
    clock.advance(1000);
    const session = await p.acquire();
    expect(p.size).toBe(1);
    p.release(session);
  });

  it('refuses at once without an address, and once closed', async () => {
    expect(await refusal(pool([]).acquire())).toBe('connect-failed: cluster us-west advertises no gateway address');
    const p = pool([`127.0.0.1:${peer.port}`]);
    p.close('left the federation');
    expect(await refusal(p.acquire())).toBe('connect-failed: cluster us-west left the federation');
  });
});
