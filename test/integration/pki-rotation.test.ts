import { Agent, createServer, request, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { ManualClock } from '../../src/core/clock.js';
import { SpiffeId } from '../../src/model/spiffe-id.js';
import { PeerVerifier } from '../../src/pki/peer-verifier.js';
import { PkiDirectory } from '../../src/pki/pki-directory.js';
import { bindListener, RotatingSvid } from '../../src/pki/rotation.js';
import { issueSvid, type Svid } from '../../src/pki/svid.js';
import { clientConnectionOptions, MTLS_SERVER_OPTIONS, serverSecureContext } from '../../src/pki/tls-options.js';
import { TrustStore } from '../../src/pki/trust-store.js';

const TD = 'us-east.acme.internal';
const HOUR = 3_600_000;

interface Peer {
  server: Server;
  port: number;
  connections: number;
  close(): Promise<void>;
}

async function startServer(svid: RotatingSvid, trust: TrustStore): Promise<Peer> {
  const verifier = new PeerVerifier(trust);
  const server = createServer({ ...MTLS_SERVER_OPTIONS, ...serverSecureContext(svid.current, trust) }, (req, res) => {
    try {
      const id = verifier.verifySocket(req.socket as TLSSocket);
      res.end(`${id.toString()} served by ${(req.socket as TLSSocket).getCertificate() && svid.current.certificate.serialNumber}`);
    } catch (error) {
      res.statusCode = 403;
      res.end((error as Error).message);
    }
  });
  const peer: Peer = { server, port: 0, connections: 0, close: () => new Promise((resolve) => server.close(() => resolve())) };
  server.on('secureConnection', () => {
    peer.connections += 1;
  });
  bindListener(server, svid, trust);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  peer.port = (server.address() as AddressInfo).port;
  return peer;
}

function get(port: number, svid: Svid, trust: TrustStore, agent: Agent | false): Promise<{ status: number; serverSerial: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port, path: '/', agent, ...clientConnectionOptions(svid, trust, new PeerVerifier(trust)) },
      (res) => {
        const serial = (res.socket as TLSSocket).getPeerX509Certificate()?.serialNumber ?? '';
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode ?? 0, serverSerial: serial }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

/** Requests in a loop until stopped: fresh connections (new handshakes) and one kept-alive connection. */
function trafficLoop(port: number, clientSvid: () => Svid, trust: TrustStore, keepAlive: Agent) {
  const stats = { ok: 0, failed: 0, errors: [] as string[], serverSerials: new Set<string>() };
  let running = true;
  const worker = async (useKeepAlive: boolean): Promise<void> => {
    while (running) {
      try {
        const result = await get(port, clientSvid(), trust, useKeepAlive ? keepAlive : false);
        if (result.status === 200) {
          stats.ok += 1;
          stats.serverSerials.add(result.serverSerial);
        } else {
          stats.failed += 1;
          stats.errors.push(`status ${result.status}`);
        }
      } catch (error) {
        stats.failed += 1;
        stats.errors.push((error as Error).message);
      }
    }
  };
  const done = Promise.all([worker(false), worker(false), worker(true)]);
  return {
    stats,
    stop: async () => {
      running = false;
      await done;
      return stats;
    },
  };
}

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Waits until `count` more requests of the loop have finished (or 10 s pass). */
async function requestsComplete(loop: ReturnType<typeof trafficLoop>, count: number): Promise<void> {
  const target = loop.stats.ok + loop.stats.failed + count;
  const deadline = Date.now() + 10_000;
  while (loop.stats.ok + loop.stats.failed < target && Date.now() < deadline) await pause(10);
}

describe('rotation under continuous traffic', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'fedgate-rotation-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('re-issues leaves and hot-swaps the listener without a failed request or dropped connection', async () => {
    const pki = PkiDirectory.init(join(dir, 'ca'), { trustDomain: TD });
    const trust = new TrustStore([pki.bundle()]);
    const ca = pki.ca();
    const serverSvid = new RotatingSvid(() => issueSvid(ca, SpiffeId.gateway(TD, 'server'), { ttlMs: HOUR }));
    const clientSvid = new RotatingSvid(() => issueSvid(ca, SpiffeId.gateway(TD, 'client'), { ttlMs: HOUR }));
    const peer = await startServer(serverSvid, trust);
    const keepAlive = new Agent({ keepAlive: true, maxSockets: 1 });
    const loop = trafficLoop(peer.port, () => clientSvid.current, trust, keepAlive);
    // Each rotation happens with requests flowing: wait for a few to complete between rotations
    // (a count, not a time, so a loaded machine does not change what is tested).
    const afterRequests = (count: number) => requestsComplete(loop, count);
    for (let i = 0; i < 5; i++) {
      await afterRequests(8);
      serverSvid.rotate();
      clientSvid.rotate();
    }
    await afterRequests(8);
    const stats = await loop.stop();
    keepAlive.destroy();
    await peer.close();
    console.log(`leaf rotation: ${stats.ok} requests ok, ${stats.failed} failed, ${stats.serverSerials.size} server certificates seen, ${peer.connections} connections`);
    expect(stats.errors).toEqual([]);
    expect(stats.failed).toBe(0);
    expect(stats.ok).toBeGreaterThanOrEqual(48);
    expect(stats.serverSerials.size).toBeGreaterThanOrEqual(5);
  });

  it('rotates the CA (prepare, activate, retire) without a failed request', async () => {
    const caDir = join(dir, 'ca');
    const pki = PkiDirectory.init(caDir, { trustDomain: TD });
    const oldCa = pki.ca();
    // Server and client are separate processes in real life: each holds its own trust store.
    const serverTrust = new TrustStore([pki.bundle()]);
    const clientTrust = new TrustStore([pki.bundle()]);
    const issueFrom = (name: string) => () => issueSvid(new PkiDirectory(caDir).ca(), SpiffeId.gateway(TD, name), { ttlMs: HOUR });
    const serverSvid = new RotatingSvid(issueFrom('server'));
    const clientSvid = new RotatingSvid(issueFrom('client'));
    const peer = await startServer(serverSvid, serverTrust);
    const keepAlive = new Agent({ keepAlive: true, maxSockets: 1 });
    const loop = trafficLoop(peer.port, () => clientSvid.current, clientTrust, keepAlive);
    // Steps are separated by request counts, not times, so a loaded CI machine tests the same thing.
    const afterRequests = (count: number) => requestsComplete(loop, count);
    await afterRequests(12);

    // 1. prepare: the new CA joins the bundle before it signs anything; everyone learns it.
    const prepared = pki.prepare();
    expect(prepared.authorities).toHaveLength(2);
    expect(serverTrust.update(prepared).status).toBe('applied');
    await afterRequests(6);
    expect(clientTrust.update(prepared).status).toBe('applied');
    await afterRequests(10);

    // 2. activate: the new CA signs; leaves move over one side at a time, old leaves stay valid.
    pki.activate(HOUR);
    serverSvid.rotate();
    await afterRequests(10);
    clientSvid.rotate();
    expect(serverSvid.current.certificate.issuer).toBe(clientSvid.current.certificate.issuer);
    expect(serverSvid.current.certificate.checkIssued(oldCa.certificate)).toBe(false);
    await afterRequests(10);

    // 3. retire: only once every leaf of the old CA has expired (the clock says an hour passed).
    expect(() => pki.retire()).toThrow(/may still have valid leaves until/);
    const later = new PkiDirectory(caDir, { clock: new ManualClock(Date.now() + HOUR + 60_000) });
    const { removed, bundle } = later.retire();
    expect(removed).toEqual([oldCa.serialNumber]);
    expect(bundle.authorities).toHaveLength(1);
    expect(clientTrust.update(bundle).status).toBe('applied');
    await afterRequests(6);
    expect(serverTrust.update(bundle).status).toBe('applied');
    await afterRequests(10);

    const stats = await loop.stop();
    console.log(`CA rotation: ${stats.ok} requests ok, ${stats.failed} failed, ${stats.serverSerials.size} server certificates seen`);
    expect(stats.errors).toEqual([]);
    expect(stats.failed).toBe(0);
    expect(stats.ok).toBeGreaterThan(50);

    // After retirement a leaf of the old CA is no longer accepted.
    const stale = issueSvid(oldCa, SpiffeId.gateway(TD, 'stale'), { ttlMs: HOUR });
    await expect(get(peer.port, stale, clientTrust, false)).rejects.toThrow(/socket hang up|ECONNRESET/);
    keepAlive.destroy();
    await peer.close();
  });
});
