/**
 * GatewayIdentity with `certificateSource: signer`, against a real signer on a real socket: the
 * first certificate, what is kept on disk, a restart while the signer is down, a refusal at start,
 * readiness, and the own bundle following a CA rotation.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { clusterFromObject } from '../../src/config/load.js';
import type { ClusterConfig } from '../../src/config/cluster-config.js';
import { createRootLogger, createSilentLogger } from '../../src/core/logger.js';
import { GatewayIdentity } from '../../src/gateway/gateway-identity.js';
import { PkiDirectory } from '../../src/pki/pki-directory.js';
import { BootstrapTokens } from '../../src/pki/signer/bootstrap-tokens.js';
import { SvidSigner } from '../../src/pki/signer/svid-signer.js';
import { eventually } from '../support/control-plane.js';
import { freePort } from '../support/ports.js';

const log = createSilentLogger();
const TD = 'us-east.acme.internal';

describe('gateway identity from the signer', () => {
  let dir: string;
  let signer: SvidSigner | undefined;
  let tokens: BootstrapTokens;
  let port: number;
  const identities: GatewayIdentity[] = [];

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'fedgate-gw-identity-'));
    PkiDirectory.init(join(dir, 'ca'), { trustDomain: TD });
    mkdirSync(join(dir, 'trust'));
    writeFileSync(join(dir, 'trust', 'ca.crt'), readFileSync(join(dir, 'ca', 'ca.crt')));
    tokens = new BootstrapTokens(join(dir, 'tokens'));
    port = await freePort();
  });
  afterEach(async () => {
    for (const identity of identities.splice(0)) identity.stop();
    await signer?.stop();
    signer = undefined;
    rmSync(dir, { recursive: true, force: true });
  });

  async function startSigner(): Promise<SvidSigner> {
    signer = new SvidSigner({ pkiDir: join(dir, 'ca'), cluster: 'us-east', listen: `127.0.0.1:${port}`, maxTtlMs: 600_000, auth: { renewal: true, bootstrapTokens: tokens }, log, refreshIntervalMs: 3_600_000 });
    await signer.start();
    return signer;
  }

  function cluster(): ClusterConfig {
    return clusterFromObject(
      {
        apiVersion: 'fedgate.io/v1alpha1',
        kind: 'Cluster',
        metadata: { name: 'us-east' },
        spec: {
          region: 'us-east-1',
          zone: 'us-east-1a',
          trustDomain: TD,
          // No CA here: the gateway must not need one.
          pkiDir: '../no-ca-here',
          gateway: { stateDir: '../state', certificateSource: 'signer', signer: { address: `127.0.0.1:${port}`, caFile: '../trust/ca.crt', tokenFile: '../token' } },
        },
      },
      join(dir, 'clusters', 'us-east.yaml'),
    );
  }

  function load(): GatewayIdentity {
    const identity = GatewayIdentity.load(cluster(), 3_600_000, log);
    identities.push(identity);
    return identity;
  }

  it('obtains its certificate with the bootstrap token, keeps it (key 0600), and restarts on it while the signer is down', async () => {
    await startSigner();
    writeFileSync(join(dir, 'token'), tokens.create(60_000).token);
    const first = load();
    expect(() => first.svid).toThrow('has no certificate yet');
    expect(first.health()).toEqual({ ready: false, reason: 'no certificate yet (waiting for the signer)' });
    await first.start();
    expect(first.certificateSource).toBe('signer');
    expect(first.health()).toEqual({ ready: true });
    expect(first.svid.current.spiffeId.toString()).toBe(`spiffe://${TD}/fedgate/gateway/us-east`);
    expect(first.svid.current.notAfter.getTime() - Date.now()).toBeLessThanOrEqual(600_000);
    expect(statSync(join(dir, 'state', 'identity', 'tls.key')).mode & 0o777).toBe(0o600);
    const serial = first.svid.current.certificate.serialNumber;
    first.stop();

    await signer?.stop();
    const restarted = load();
    await restarted.start();
    expect(restarted.svid.current.certificate.serialNumber).toBe(serial);
    expect(restarted.health()).toEqual({ ready: true });
  });

  it('renews on its own certificate once the one-time token is spent', async () => {
    await startSigner();
    writeFileSync(join(dir, 'token'), tokens.create(60_000).token);
    const identity = load();
    await identity.start();
    const first = identity.svid.current;
    const renewed = await identity.svid.renew();
    expect(renewed.certificate.serialNumber).not.toBe(first.certificate.serialNumber);
    expect(renewed.keyPem).not.toBe(first.keyPem);
  });

  it('stops at start with the signer\'s reason when it refuses, instead of retrying forever', async () => {
    await startSigner();
    writeFileSync(join(dir, 'token'), 'fgs.' + 'A'.repeat(43));
    await expect(load().start()).rejects.toMatchObject({ code: 'FEDGATE_ERR_SIGNER_REFUSED', message: expect.stringContaining('bootstrap token unknown or already used') });
  });

  it('waits for a signer that is not up yet, then starts', async () => {
    writeFileSync(join(dir, 'token'), tokens.create(60_000).token);
    const lines: string[] = [];
    const identity = GatewayIdentity.load(cluster(), 3_600_000, createRootLogger({ destination: { write: (line: string) => void lines.push(line) } }));
    identities.push(identity);
    const started = identity.start();
    await eventually(() => lines.some((l) => l.includes('no certificate from the signer yet; retrying') && l.includes('ECONNREFUSED')), 'a failed first attempt');
    await startSigner();
    await started;
    expect(identity.health()).toEqual({ ready: true });
  });

  it('takes a CA rotation\'s bundle from the signer and reports it once for publication', async () => {
    const running = await startSigner();
    writeFileSync(join(dir, 'token'), tokens.create(60_000).token);
    const identity = load();
    await identity.start();
    const before = identity.ownBundle.sequence;
    expect(identity.refreshOwnBundle()).toBe(false);
    new PkiDirectory(join(dir, 'ca')).prepare();
    running.refresh();
    await identity.svid.renew();
    expect(identity.ownBundle.sequence).toBeGreaterThan(before);
    expect(identity.ownBundle.authorities).toHaveLength(2);
    expect(identity.trust.get(TD)?.authorities).toHaveLength(2);
    expect(identity.refreshOwnBundle()).toBe(true);
    expect(identity.refreshOwnBundle()).toBe(false);
  });
});
