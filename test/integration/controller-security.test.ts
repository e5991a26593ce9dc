import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createSilentLogger } from '../../src/core/logger.js';
import { SpiffeId } from '../../src/model/spiffe-id.js';
import { parseJoinToken } from '../../src/model/join-token.js';
import { joinFederation } from '../../src/gateway/control/join-client.js';
import { connectAdmin, readAdminCredentials } from '../../src/cli/controller-api.js';
import { CatalogClient, type SyncDown, type SyncUp } from '../../src/proto/gen/fedgate.js';
import { channelCredentials, clientOptions, type ClientDuplexStream, type ServiceError } from '../../src/proto/grpc-transport.js';
import { CertificateAuthority } from '../../src/pki/certificate-authority.js';
import { PkiDirectory } from '../../src/pki/pki-directory.js';
import { issueSvid, type Svid } from '../../src/pki/svid.js';
import type { TrustBundle } from '../../src/pki/trust-bundle.js';
import { MemoryStore } from '../../src/store/memory-store.js';
import { eventually, exportSpec, joinSimulatedGateway, startTestController, type SimulatedGateway, type TestController } from '../support/control-plane.js';

const log = createSilentLogger();

function clusterInfo(name: string) {
  return { name, region: 'r', zone: 'z', trustDomain: `${name}.acme.internal`, gatewayAddresses: ['127.0.0.1:1'], labels: {}, state: '', stateReason: '', stateChangedBy: '', stateChangedAtMs: 0, joinedAtMs: 0 , blackholedServices: []};
}

/** Opens a raw Sync stream with a given certificate, to act as a misbehaving gateway. */
function rawSync(address: string, caPem: string, svid: Svid): { call: ClientDuplexStream<SyncUp, SyncDown>; status: Promise<ServiceError>; close(): void } {
  const client = new CatalogClient(address, channelCredentials({ rootsPem: caPem, keyPem: svid.keyPem, certPem: svid.chainPem, checkServerIdentity: () => undefined }), clientOptions());
  const call = client.sync();
  const status = new Promise<ServiceError>((resolve) => call.on('error', (error: ServiceError) => resolve(error)));
  call.on('data', () => undefined);
  return { call, status, close: () => client.close() };
}

describe('controller security', () => {
  let dir: string;
  let control: TestController;
  const gateways: SimulatedGateway[] = [];

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'fedgate-security-'));
    control = await startTestController(new MemoryStore(), dir, { maxExportsPerCluster: 5, maxMessageBytes: 64 * 1024 });
  });
  afterEach(async () => {
    for (const g of gateways.splice(0)) g.stop();
    await control.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  function freshBundle(name: string): TrustBundle {
    return PkiDirectory.init(join(dir, 'pki', name), { trustDomain: `${name}.acme.internal` }).bundle();
  }

  it('rejects a forged token, a replayed token and an expired token, each with its reason', async () => {
    const { token } = await control.admin.call.createToken({ cluster: 'us-east', ttlMs: 60_000 });
    const forged = token.slice(0, -4) + (token.endsWith('AAAA') ? 'BBBB' : 'AAAA');
    const bundle = freshBundle('us-east');
    await expect(joinFederation({ token: forged, info: clusterInfo('us-east'), bundle, log })).rejects.toThrow('join refused: join token is not valid (unknown, forged, or created on another federation)');
    await joinFederation({ token, info: clusterInfo('us-east'), bundle, log });
    await expect(joinFederation({ token, info: clusterInfo('us-east'), bundle, log })).rejects.toThrow(/join refused: join token was already used at .*; tokens are single-use/);
    const { token: short } = await control.admin.call.createToken({ cluster: 'us-west', ttlMs: 1 });
    await new Promise((resolve) => setTimeout(resolve, 10));
    await expect(joinFederation({ token: short, info: clusterInfo('us-west'), bundle: freshBundle('us-west'), log })).rejects.toThrow(/join refused: join token expired at/);
  });

  it('rejects a token used for another cluster name, and a duplicate cluster naming its owner', async () => {
    const { token } = await control.admin.call.createToken({ cluster: 'us-east', ttlMs: 60_000 });
    const { token: token2 } = await control.admin.call.createToken({ cluster: 'us-east', ttlMs: 60_000 });
    const { token: westToken } = await control.admin.call.createToken({ cluster: 'us-west', ttlMs: 60_000 });
    const bundle = freshBundle('us-east');
    await expect(joinFederation({ token: westToken, info: clusterInfo('us-east'), bundle, log })).rejects.toThrow('this join token is for cluster "us-west", but this gateway is cluster "us-east"');
    await joinFederation({ token, info: clusterInfo('us-east'), bundle, log });
    await expect(joinFederation({ token: token2, info: clusterInfo('us-east'), bundle, log })).rejects.toThrow(/join refused: cluster "us-east" already exists \(trust domain us-east.acme.internal, joined /);
    await expect(control.admin.call.createToken({ cluster: 'us-east', ttlMs: 1000 })).rejects.toThrow('ALREADY_EXISTS: cluster "us-east" is already a member');
  });

  it('refuses a controller CA that does not match the hash pinned in the token', async () => {
    const { token } = await control.admin.call.createToken({ cluster: 'us-east', ttlMs: 60_000 });
    const parts = token.split('.');
    const claims = JSON.parse(Buffer.from(parts[2] as string, 'base64url').toString()) as Record<string, unknown>;
    claims.h = 'f'.repeat(64);
    const tampered = [parts[0], parts[1], Buffer.from(JSON.stringify(claims)).toString('base64url'), parts[3]].join('.');
    expect(parseJoinToken(tampered).claims.caHash).toBe('f'.repeat(64));
    await expect(joinFederation({ token: tampered, info: clusterInfo('us-east'), bundle: freshBundle('us-east'), log })).rejects.toThrow('does not match the hash in the join token; refusing to trust it');
  });

  it('lets a gateway write only its own cluster\'s exports', async () => {
    const east = await joinSimulatedGateway(control.admin, dir, 'us-east', { exports: [exportSpec('payments')] });
    const west = await joinSimulatedGateway(control.admin, dir, 'us-west');
    gateways.push(east, west);
    await eventually(() => west.catalog.data.services.has('default/payments'), 'payments at us-west');
    const raw = rawSync(control.controller.addresses.api, west.membership.controllerCaPem, west.identity.svid.current);
    raw.call.write({ msg: { $case: 'hello', value: { cluster: 'us-east', epoch: '', revision: 0, exports: [], info: undefined, bundle: undefined, version: '', instance: 'raw' } } });
    const status = await raw.status;
    raw.close();
    expect(status.details).toBe('this stream is authenticated as the gateway of "us-west"; it may not speak for "us-east"');
    expect(status.code).toBe(7);
    expect(east.catalog.data.services.get('default/payments')?.exporters.map((e) => e.cluster)).toEqual(['us-east']);
  });

  it('refuses Sync without a valid gateway SVID and Admin without an admin identity', async () => {
    const east = await joinSimulatedGateway(control.admin, dir, 'us-east');
    gateways.push(east);
    // A certificate from a CA no member owns: the TLS handshake itself fails.
    const rogue = CertificateAuthority.create({ trustDomain: 'us-east.acme.internal' });
    const untrusted = rawSync(control.controller.addresses.api, east.membership.controllerCaPem, issueSvid(rogue, SpiffeId.gateway('us-east.acme.internal', 'us-east'), { ttlMs: 60_000 }));
    untrusted.call.write({ msg: { $case: 'ack', value: { revision: 1, policyRevision: 0 } } });
    expect((await untrusted.status).code).toBe(14);
    untrusted.close();
    // An admin identity is valid, but not a gateway.
    const adminSvid = { ...readAdminCredentials(join(control.pkiDir, 'admin')) };
    const asAdmin = rawSync(control.controller.addresses.api, east.membership.controllerCaPem, { keyPem: adminSvid.keyPem, chainPem: adminSvid.certPem } as Svid);
    asAdmin.call.write({ msg: { $case: 'ack', value: { revision: 1, policyRevision: 0 } } });
    const adminStatus = await asAdmin.status;
    asAdmin.close();
    expect(adminStatus.details).toBe('spiffe://acme.internal/fedgate/admin/operator is not a gateway identity (spiffe://<trust-domain>/fedgate/gateway/<cluster>)');
    // A gateway identity calling Admin.
    const gatewaySvid = east.identity.svid.current;
    const asGateway = connectAdmin(control.controller.addresses.api, { certPem: gatewaySvid.chainPem, keyPem: gatewaySvid.keyPem, caPem: east.membership.controllerCaPem });
    await expect(asGateway.call.status({})).rejects.toThrow('PERMISSION_DENIED: spiffe://us-east.acme.internal/fedgate/gateway/us-east is not an admin identity');
    asGateway.close();
  });

  it('rejects too many exports and oversized messages without crashing or losing state', async () => {
    const east = await joinSimulatedGateway(control.admin, dir, 'us-east', { exports: [exportSpec('a'), exportSpec('b')] });
    gateways.push(east);
    await eventually(() => east.catalog.data.services.size === 2, 'two exports');
    east.exports.set(Array.from({ length: 8 }, (_, i) => exportSpec(`svc-${i}`)));
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect([...east.catalog.data.services.keys()].sort()).toEqual(['default/a', 'default/b']);
    const raw = rawSync(control.controller.addresses.api, east.membership.controllerCaPem, east.identity.svid.current);
    raw.call.write({ msg: { $case: 'hello', value: { cluster: 'us-east', epoch: '', revision: 0, exports: [exportSpec('x'.repeat(63), { consumers: Array.from({ length: 300_000 }, () => 'consumer-cluster-name-long') })], info: undefined, bundle: undefined, version: '', instance: 'raw' } } });
    const status = await raw.status;
    raw.close();
    expect(status.code).toBe(8);
    expect(status.details).toMatch(/larger than max/);
    expect((await control.admin.call.status({})).clusters.map((c) => c.info?.name)).toEqual(['us-east']);
    expect([...east.catalog.data.services.keys()].sort()).toEqual(['default/a', 'default/b']);
  });
});
