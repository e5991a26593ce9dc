import { connect, createServer, type AddressInfo, type Server } from 'node:net';
import { Registry } from '../../admin/metrics.js';
import { gatewayDefaultsShape, type GatewayDefaults } from '../../config/federation-config.js';
import { createSilentLogger } from '../../core/logger.js';
import type { LocalExport } from '../../discovery/provider.js';
import type { ClusterRecord } from '../../model/catalog.js';
import { SpiffeId } from '../../model/spiffe-id.js';
import { CertificateAuthority } from '../../pki/certificate-authority.js';
import { PeerVerifier } from '../../pki/peer-verifier.js';
import { issueSvid } from '../../pki/svid.js';
import { clientConnectionOptions, expectId, MTLS_SERVER_OPTIONS, serverSecureContext } from '../../pki/tls-options.js';
import { TrustBundle } from '../../pki/trust-bundle.js';
import { TrustStore } from '../../pki/trust-store.js';
import { startH2Server, type TestH2Server } from '../../../test/support/http2-raw-peer.js';
import { PeerPool } from '../endpoint/peer-pool.js';
import { failure } from '../request/outcome.js';
import { GatewayMetrics } from '../request/request-metrics.js';
import { RoutingTable } from '../routing/routing-table.js';
import { ControlViewPublisher, type ControlView } from '../view/control-view.js';
import { TcpImportListener } from './tcp-import.js';

const EAST = 'us-east.acme.internal';
const WEST = 'us-west.acme.internal';
const tcp = { name: 'pg', port: 5432, protocol: 'tcp' as const };

/**
 * A TCP import carries each local connection to a cluster exporting the service: this cluster's own
 * endpoint (a real TCP echo server) or a peer gateway's CONNECT tunnel over a real mTLS HTTP/2 pool.
 */
describe('TcpImportListener', () => {
  const eastCa = CertificateAuthority.create({ trustDomain: EAST });
  const westCa = CertificateAuthority.create({ trustDomain: WEST });
  const trust = new TrustStore([TrustBundle.fromPem(EAST, eastCa.certificatePem, 1), TrustBundle.fromPem(WEST, westCa.certificatePem, 1)]);
  const eastSvid = issueSvid(eastCa, SpiffeId.gateway(EAST, 'us-east'), { ttlMs: 3_600_000 });
  const westSvid = issueSvid(westCa, SpiffeId.gateway(WEST, 'us-west'), { ttlMs: 3_600_000 });
  let echo: Server;
  let echoPort: number;
  let peer: TestH2Server;
  const connects: string[] = [];
  const listeners: TcpImportListener[] = [];
  let westPool: PeerPool;

  beforeAll(async () => {
    echo = createServer({ allowHalfOpen: true }, (socket) => socket.pipe(socket));
    await new Promise<void>((resolve) => echo.listen(0, '127.0.0.1', resolve));
    echoPort = (echo.address() as AddressInfo).port;
    // The peer gateway: answers a CONNECT with 200 and echoes the tunnel's bytes prefixed with its name.
    peer = await startH2Server((stream, headers) => {
      stream.on('error', () => undefined);
      connects.push(`${String(headers[':method'])} ${String(headers[':authority'])} ${String(headers['x-fedgate-caller'])}`);
      stream.respond({ ':status': 200 });
      stream.on('data', (chunk: Buffer) => stream.write(Buffer.concat([Buffer.from('us-west:'), chunk])));
      stream.on('end', () => stream.end());
    }, {}, { ...MTLS_SERVER_OPTIONS, ...serverSecureContext(westSvid, trust) });
    westPool = new PeerPool({ cluster: 'us-west', addresses: () => [`127.0.0.1:${peer.port}`], tls: () => clientConnectionOptions(eastSvid, trust, new PeerVerifier(trust), expectId(SpiffeId.gateway(WEST, 'us-west'))), maxConnections: 1, maxPending: 10, connectTimeoutMs: 2000, log: createSilentLogger() });
  });
  afterAll(async () => {
    for (const l of listeners) await l.close();
    westPool.close('test over');
    await peer.close();
    await new Promise((resolve) => echo.close(resolve));
  });

  function view(localTargetPort: number | undefined, remote: boolean): ControlView {
    const west: ClusterRecord = { name: 'us-west', region: 'us-west-2', zone: 'a', trustDomain: WEST, gatewayAddresses: [`127.0.0.1:${peer.port}`], labels: {}, state: 'active', stateReason: '', stateChangedBy: '', stateChangedAt: 0, joinedAt: 0 };
    const exports: LocalExport[] = localTargetPort === undefined ? [] : [{ namespace: 'shop', name: 'db', ports: [{ ...tcp, targetPort: localTargetPort }], endpoints: [{ address: '127.0.0.1', ready: true }], consumers: [], createdAt: 0 }];
    return new ControlViewPublisher(
      { cluster: 'us-east', region: 'us-east-1', zone: 'a', trustDomain: EAST, labels: {} },
      {
        federation: 'acme',
        defaults: gatewayDefaultsShape.defaultFactory?.() as GatewayDefaults,
        localExports: { exports: new Map(exports.map((e) => [`${e.namespace}/${e.name}`, e])), source: 'test' },
        catalog: {
          epoch: 'e',
          revision: 1,
          policyRevision: 0,
          clusters: new Map([['us-west', west]]),
          services: remote ? new Map([['shop/db', { namespace: 'shop', name: 'db', ports: [tcp], exporters: [{ cluster: 'us-west', ports: [tcp], readyEndpoints: 1, totalEndpoints: 1, createdAt: 0 }], conflicts: [] }]]) : new Map(),
          bundles: new Map(),
          policies: new Map(),
        },
      },
    ).current;
  }

  async function listener(current: ControlView, deny = false): Promise<{ port: number; metrics: GatewayMetrics }> {
    const metrics = new GatewayMetrics(new Registry());
    const l = new TcpImportListener(
      {
        localCluster: 'us-east',
        routing: new RoutingTable(),
        view: () => current,
        pool: (_v, cluster) => (cluster === 'us-west' ? westPool : undefined),
        metrics,
        log: createSilentLogger(),
        connectTimeoutMs: 2000,
        callerIdentity: () => `spiffe://${EAST}/ns/shop/sa/app`,
        authorize: () => (deny ? failure('denied', 'not this caller') : undefined),
      },
      { service: 'db.shop', port: 5432, listen: '127.0.0.1:0', attempts: 2 },
    );
    listeners.push(l);
    return { port: await l.start(), metrics };
  }

  /** Sends `text`, half-closes, and reads what comes back until the tunnel closes. */
  function roundTrip(port: number, text: string): Promise<string> {
    return new Promise((resolve) => {
      const socket = connect({ port, host: '127.0.0.1', allowHalfOpen: true });
      let got = '';
      socket.setEncoding('utf8');
      socket.on('data', (c: string) => (got += c));
      socket.on('error', () => undefined);
      socket.on('close', () => resolve(got));
      socket.end(text);
    });
  }

  async function results(metrics: GatewayMetrics): Promise<string[]> {
    return (await metrics.tcpConnections.get()).values.map((v) => `${String(v.labels.destination_cluster)} ${String(v.labels.result)}`).sort();
  }

  it('carries a connection to this cluster’s own endpoint', async () => {
    const { port, metrics } = await listener(view(echoPort, false));
    expect(await roundTrip(port, 'select 1')).toBe('select 1');
    expect(await results(metrics)).toEqual(['us-east connected']);
  });

  it('carries a connection through a peer gateway’s CONNECT tunnel with the caller’s identity', async () => {
    const { port, metrics } = await listener(view(undefined, true));
    expect(await roundTrip(port, 'select 2')).toBe('us-west:select 2');
    expect(connects.at(-1)).toBe(`CONNECT db.shop.svc.clusterset.local:5432 spiffe://${EAST}/ns/shop/sa/app`);
    expect(await results(metrics)).toEqual(['us-west connected']);
  });

  it('tries another cluster when the first cannot take the connection, losing no byte', async () => {
    const { port, metrics } = await listener(view(1, true));
    expect(await roundTrip(port, 'select 3')).toBe('us-west:select 3');
    expect(await results(metrics)).toEqual(['us-east failed', 'us-west connected']);
  });

  it('closes a connection authorization refuses, and one no cluster can take', async () => {
    const denied = await listener(view(echoPort, false), true);
    expect(await roundTrip(denied.port, 'select 4')).toBe('');
    expect(await results(denied.metrics)).toEqual(['us-east failed']);
    const none = await listener(view(undefined, false));
    expect(await roundTrip(none.port, 'select 5')).toBe('');
  });
});
