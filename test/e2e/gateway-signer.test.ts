/**
 * Gateways whose certificates come from their cluster's signer (`fedgate ca serve`), all as real
 * processes: a controller, two gateways joined to it, one signer per cluster. The gateways never see
 * a CA key (the CA directories are moved out of their reach); us-east's signer takes Kubernetes
 * ServiceAccount tokens (TokenReview against the fake API server), us-west's a one-time bootstrap
 * token and then renewal on its own certificate. Certificates live a few seconds, so renewals happen
 * many times while traffic flows; then us-east's signer is taken away, briefly and for good.
 */
import { jest } from '@jest/globals';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { startHttpBackend } from '../../src/demo/sample-backends.js';
import { eventually } from '../support/control-plane.js';
import { FakeKubeApi } from '../support/fake-kube-api.js';
import { LocalFederation } from '../support/federation.js';
import { http1 } from '../support/http-client.js';
import { freePorts } from '../support/ports.js';
import { FedgateProcess, httpGet, runFedgate, waitForHttp } from '../support/processes.js';

jest.setTimeout(180_000);

const AUTHORITY = 'payments.default.svc.clusterset.local:8080';
const CLUSTERS = ['us-east', 'us-west'] as const;
type Cluster = (typeof CLUSTERS)[number];

interface GatewayConfig {
  certificate: { source: string; serial: string; notAfter: string };
}

describe('gateway certificates from the cluster signer', () => {
  let federation: LocalFederation;
  let kube: FakeKubeApi;
  let backend: { close(): Promise<void> };
  const signers = new Map<Cluster, { process: FedgateProcess; port: number; admin: number }>();
  const signerPorts = new Map<Cluster, [number, number]>();

  const caDir = (cluster: Cluster): string => join(federation.dir, 'signer-ca', cluster);
  const stateDir = (cluster: Cluster): string => join(federation.dir, 'state', cluster);

  async function startSigner(cluster: Cluster, maxTtl: string): Promise<FedgateProcess> {
    const [port, admin] = signerPorts.get(cluster) as [number, number];
    const auth =
      cluster === 'us-east'
        ? ['--kubernetes-audience', 'fedgate-signer', '--kubernetes-service-account', 'fedgate-system:fedgate-gateway', '--kube-api-server', kube.url, '--kube-token-file', join(federation.dir, 'signer-kube-token'), '--no-renewal']
        : ['--bootstrap-tokens', join(federation.dir, 'signer-tokens', cluster)];
    const process = FedgateProcess.start(`signer-${cluster}`, ['ca', 'serve', '--ca', caDir(cluster), '--cluster', cluster, '--listen', `127.0.0.1:${port}`, '--admin', `127.0.0.1:${admin}`, '--max-ttl', maxTtl, ...auth]);
    await waitForHttp(`http://127.0.0.1:${admin}/readyz`, 200, 20_000, process);
    signers.set(cluster, { process, port, admin });
    return process;
  }

  async function config(cluster: Cluster): Promise<GatewayConfig> {
    return JSON.parse((await httpGet(`${federation.adminUrl(cluster)}/config`)).body) as GatewayConfig;
  }

  beforeAll(async () => {
    const [backendPort, ...ports] = await freePorts(5);
    backend = await startHttpBackend('us-east', '127.0.0.1', backendPort as number);
    kube = await FakeKubeApi.start();
    federation = await LocalFederation.create(
      CLUSTERS.map((name) => ({
        name,
        region: name,
        zone: `${name}a`,
        exports: name === 'us-east' ? [{ service: 'payments', ports: [{ name: 'http', port: 8080, targetPort: backendPort as number, protocol: 'http' as const }] }] : [],
        gatewayFields: {
          certificateSource: 'signer',
          signer: { address: `127.0.0.1:${ports[CLUSTERS.indexOf(name) * 2]}`, caFile: `../trust/${name}/ca.crt`, tokenFile: `../signer-credentials/${name}` },
        },
      })),
      { controller: {} },
    );
    CLUSTERS.forEach((name, i) => signerPorts.set(name, [ports[i * 2] as number, ports[i * 2 + 1] as number]));
    mkdirSync(join(federation.dir, 'signer-ca'));
    mkdirSync(join(federation.dir, 'signer-credentials'));
    for (const name of CLUSTERS) {
      // Only the signer gets the CA; the gateway gets the public CA certificate.
      renameSync(join(federation.dir, 'pki', name), caDir(name));
      mkdirSync(join(federation.dir, 'trust', name), { recursive: true });
      writeFileSync(join(federation.dir, 'trust', name, 'ca.crt'), readFileSync(join(caDir(name), 'ca.crt')));
    }
    writeFileSync(join(federation.dir, 'signer-kube-token'), kube.token);
    const saToken = kube.issueServiceAccountToken({ namespace: 'fedgate-system', serviceAccount: 'fedgate-gateway', audiences: ['fedgate-signer'], podName: 'fedgate-gateway-0' });
    writeFileSync(join(federation.dir, 'signer-credentials', 'us-east'), saToken);
    const created = await runFedgate(['ca', 'signer-token', 'create', '--tokens', join(federation.dir, 'signer-tokens', 'us-west'), '--ttl', '10m', '--out', join(federation.dir, 'signer-credentials', 'us-west')]);
    expect(created).toMatchObject({ code: 0, stdout: expect.stringMatching(/signer bootstrap token [0-9a-f]{12} written to/) });

    for (const name of CLUSTERS) await startSigner(name, '10s');
    await federation.startAll();
  });

  afterAll(async () => {
    await federation?.stop();
    for (const signer of signers.values()) await signer.process.stop();
    await kube?.close();
    await backend?.close();
  });

  it('renews again and again under traffic with no failed request and no failed handshake, and no CA key in the gateways', async () => {
    const east = await config('us-east');
    expect(east.certificate.source).toBe('signer');
    const serials = new Map<Cluster, Set<string>>(CLUSTERS.map((c) => [c, new Set<string>()]));
    const stats = { requests: 0, failed: [] as string[], handshakes: 0, handshakeFailures: [] as string[], eastServerSerials: new Set<string>() };
    let running = true;

    // Requests from us-west's local clients to payments, served by us-east across the mTLS link.
    const requester = async (): Promise<void> => {
      while (running) {
        try {
          const result = await http1(federation.outbound('us-west'), AUTHORITY);
          stats.requests += 1;
          if (result.status !== 200) stats.failed.push(`status ${result.status}: ${result.body.slice(0, 200)}`);
        } catch (error) {
          stats.requests += 1;
          stats.failed.push((error as Error).message);
        }
      }
    };
    // Fresh handshakes to us-east's inbound listener with us-west's current key and certificate (as
    // a new peer connection would be made): both sides' renewed certificates are checked each time.
    const handshaker = async (): Promise<void> => {
      const anchors = readFileSync(join(federation.dir, 'trust', 'us-east', 'ca.crt'), 'utf8');
      while (running) {
        const identity = join(stateDir('us-west'), 'identity');
        const cert = readFileSync(join(identity, 'tls.crt'), 'utf8');
        const key = readFileSync(join(identity, 'tls.key'), 'utf8');
        // The key and the certificate are two files, renamed one after the other: skip the instant between.
        if (!new X509Certificate(cert).checkPrivateKey(createPrivateKey(key))) continue;
        await new Promise<void>((resolve) => {
          const socket = connect({ host: '127.0.0.1', port: federation.cluster('us-east').ports.inbound, key, cert, ca: anchors, ALPNProtocols: ['h2'], minVersion: 'TLSv1.3', checkServerIdentity: () => undefined });
          socket.once('secureConnect', () => {
            stats.handshakes += 1;
            stats.eastServerSerials.add(socket.getPeerX509Certificate()?.serialNumber ?? '');
            socket.destroy();
            resolve();
          });
          socket.once('error', (error) => {
            stats.handshakes += 1;
            stats.handshakeFailures.push(error.message);
            resolve();
          });
        });
      }
    };
    const workers = Promise.all([requester(), requester(), handshaker()]);
    try {
      await eventually(
        async () => {
          for (const cluster of CLUSTERS) serials.get(cluster)?.add((await config(cluster)).certificate.serial);
          // Conditions, not a duration: on a slow machine the loop just runs longer.
          return CLUSTERS.every((c) => (serials.get(c)?.size ?? 0) >= 4) && stats.eastServerSerials.size >= 3 && stats.requests >= 50;
        },
        'three renewals of each gateway certificate, with traffic',
        120_000,
      );
    } finally {
      running = false;
      await workers;
    }
    console.log(
      `signer renewals under traffic: ${stats.requests} requests, ${stats.failed.length} failed; ${stats.handshakes} fresh handshakes, ${stats.handshakeFailures.length} failed; ` +
        `certificates seen: us-east ${serials.get('us-east')?.size}, us-west ${serials.get('us-west')?.size}, us-east serving ${stats.eastServerSerials.size}`,
    );
    expect(stats.failed).toEqual([]);
    expect(stats.handshakeFailures).toEqual([]);

    for (const cluster of CLUSTERS) {
      // What a gateway holds: its own key and certificate and the bundle, nothing of the CA.
      const identity = join(stateDir(cluster), 'identity');
      expect(readdirSync(identity).sort()).toEqual(['bundle.json', 'tls.crt', 'tls.key']);
      expect(statSync(join(identity, 'tls.key')).mode & 0o777).toBe(0o600);
      expect(readFileSync(join(identity, 'tls.key'), 'utf8')).not.toBe(readFileSync(join(caDir(cluster), 'tls.key'), 'utf8'));
      expect(new X509Certificate(readFileSync(join(identity, 'tls.crt'))).ca).toBe(false);
    }
    // Each signer logged its issuances, by how the caller authenticated, without the credential.
    const eastLog = signers.get('us-east')?.process.logs ?? '';
    const westLog = signers.get('us-west')?.process.logs ?? '';
    expect(eastLog).toMatch(/"method":"kubernetes","caller":"system:serviceaccount:fedgate-system:fedgate-gateway","pod":"fedgate-gateway-0"/);
    expect(westLog).toContain('"method":"bootstrap-token"');
    expect(westLog).toContain('"method":"renewal"');
    expect(eastLog).not.toContain(readFileSync(join(federation.dir, 'signer-credentials', 'us-east'), 'utf8'));
  });

  it('rides out a signer outage while the certificate is valid (retrying with back-off), is unready once it expired, and recovers', async () => {
    const eastLog = (): string => federation.cluster('us-east').process?.logs ?? '';
    const failuresLogged = (): Array<{ retryInMs: number }> =>
      eastLog()
        .split('\n')
        .filter((line) => line.includes('certificate renewal failed'))
        .map((line) => JSON.parse(line) as { retryInMs: number });
    // Longer certificates for this test, so an outage can start and end well within one lifetime.
    await signers.get('us-east')?.process.stop();
    await startSigner('us-east', '24s');
    await eventually(async () => Date.parse((await config('us-east')).certificate.notAfter) - Date.now() > 18_000, 'a 24 s certificate', 30_000);
    const fresh = (await config('us-east')).certificate.serial;

    const samples = { ready: 0, unready: [] as string[], requests: 0, failed: [] as string[] };
    let running = true;
    const watch = (async () => {
      while (running) {
        const ready = await httpGet(`${federation.adminUrl('us-east')}/readyz`);
        if (ready.status === 200) samples.ready += 1;
        else samples.unready.push(ready.body.trim());
        try {
          const result = await http1(federation.outbound('us-west'), AUTHORITY);
          samples.requests += 1;
          if (result.status !== 200) samples.failed.push(`status ${result.status}`);
        } catch (error) {
          samples.requests += 1;
          samples.failed.push((error as Error).message);
        }
      }
    })();

    // 1. Down for a moment, with the certificate still valid: retries, nothing fails.
    await signers.get('us-east')?.process.stop();
    const failuresBefore = failuresLogged().length;
    await eventually(async () => failuresLogged().length >= failuresBefore + 2, 'two failed renewal attempts', 30_000);
    const retries = failuresLogged().slice(failuresBefore);
    expect((retries[1] as { retryInMs: number }).retryInMs).toBeGreaterThan((retries[0] as { retryInMs: number }).retryInMs);
    await startSigner('us-east', '24s');
    await eventually(async () => (await config('us-east')).certificate.serial !== fresh, 'renewed after the signer came back', 30_000);
    const duringOutage = { ...samples, unready: [...samples.unready] };
    expect(duringOutage.unready).toEqual([]);
    expect(duringOutage.failed).toEqual([]);

    // 2. Down for good: once the certificate has expired the gateway says so and is not ready.
    await signers.get('us-east')?.process.stop();
    await waitForHttp(`${federation.adminUrl('us-east')}/readyz`, 503, 40_000);
    const reason = (await httpGet(`${federation.adminUrl('us-east')}/readyz`)).body;
    expect(reason).toMatch(/^not ready: FEDGATE_ERR_CERTIFICATE_EXPIRED: the gateway certificate expired at \S+ and could not be renewed: signer 127\.0\.0\.1:\d+: connect ECONNREFUSED/);
    await eventually(async () => /"code":"FEDGATE_ERR_CERTIFICATE_EXPIRED".*certificate expired and could not be renewed/.test(eastLog()), 'the expiry logged as an error', 40_000);

    // 3. The signer is back: renewal succeeds by itself (the ServiceAccount token is still good).
    await startSigner('us-east', '24s');
    await waitForHttp(`${federation.adminUrl('us-east')}/readyz`, 200, 40_000);
    running = false;
    await watch;
    console.log(`signer outage: ${duringOutage.requests} requests while the certificate was valid, ${duringOutage.failed.length} failed, readiness sampled ${duringOutage.ready} times, never unready`);
  });
});
