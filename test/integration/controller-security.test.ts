import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createSilentLogger } from '../../src/core/logger.js';
import { SpiffeId } from '../../src/model/spiffe-id.js';
import { parseJoinToken } from '../../src/model/join-token.js';
import { joinFederation } from '../../src/gateway/control/join-client.js';
import { connectAdmin, readAdminCredentials } from '../../src/cli/controller-api.js';
import { CatalogClient, JoinClient, type JoinResponse, type SyncDown, type SyncUp } from '../../src/proto/gen/fedgate.js';
import { channelCredentials, clientOptions, grpc, type ClientDuplexStream, type ServiceError } from '../../src/proto/grpc-transport.js';
import { CertificateAuthority } from '../../src/pki/certificate-authority.js';
import { PkiDirectory } from '../../src/pki/pki-directory.js';
import { issueSvid, type Svid } from '../../src/pki/svid.js';
import type { TrustBundle } from '../../src/pki/trust-bundle.js';
import { MemoryStore } from '../../src/store/memory-store.js';
import { clusterRecord } from '../support/catalog-fixtures.js';
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

/** Calls Join directly, as an attacker would, without the join client's own checks. */
function rawJoin(address: string, caPem: string, token: string, info: ReturnType<typeof clusterInfo>, bundle: TrustBundle): Promise<JoinResponse> {
  const client = new JoinClient(address, channelCredentials({ rootsPem: caPem, checkServerIdentity: () => undefined }), clientOptions());
  return new Promise<JoinResponse>((resolve, reject) => {
    client.join({ token, cluster: info, bundleJson: JSON.stringify(bundle.toSpiffeJson()) }, new grpc.Metadata(), { deadline: Date.now() + 10_000 }, (error, value) => {
      client.close();
      if (error) reject(error);
      else resolve(value);
    });
  });
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

  it('finding 1: a joiner that brings a CA for the federation\'s trust domain is refused, its CA never signs admin identities, and the operator keeps access', async () => {
    const { token } = await control.admin.call.createToken({ cluster: 'evil', ttlMs: 60_000 });
    const caPem = readAdminCredentials(join(control.pkiDir, 'admin')).caPem;
    // The joiner's own CA for acme.internal, with a sequence far above the controller's.
    const rogueDir = join(dir, 'pki', 'rogue');
    const rogue = PkiDirectory.init(rogueDir, { trustDomain: 'acme.internal' });
    const rogueBundle = rogue.bundle().withSequence(1_000_000);
    const evil = { ...clusterInfo('evil'), trustDomain: 'acme.internal' };
    const refused = rawJoin(control.controller.addresses.join, caPem, token, evil, rogueBundle);
    await expect(refused).rejects.toMatchObject({ code: 6 });
    await expect(refused).rejects.toThrow(/trust domain "acme.internal" is the federation's own/);
    expect((await control.admin.call.status({})).clusters).toEqual([]);

    // The admin identity the rogue CA would mint is refused; the real operator is not locked out.
    const mallory = issueSvid(rogue.ca(), SpiffeId.admin('acme.internal', 'mallory'), { ttlMs: 60_000 });
    const asMallory = connectAdmin(control.controller.addresses.api, { certPem: mallory.chainPem, keyPem: mallory.keyPem, caPem });
    await expect(asMallory.call.status({})).rejects.toThrow();
    await expect(asMallory.call.drainCluster({ cluster: 'us-east', reason: 'x' })).rejects.toThrow();
    asMallory.close();
    expect((await control.admin.call.status({})).clusters).toEqual([]);

    // Nor can a member take another member's trust domain; neither refusal burnt the token.
    await joinFederation({ token: (await control.admin.call.createToken({ cluster: 'us-east', ttlMs: 60_000 })).token, info: clusterInfo('us-east'), bundle: freshBundle('us-east'), log });
    const squatter = { ...clusterInfo('evil'), trustDomain: 'us-east.acme.internal' };
    await expect(rawJoin(control.controller.addresses.join, caPem, token, squatter, PkiDirectory.init(join(dir, 'pki', 'squat'), { trustDomain: 'us-east.acme.internal' }).bundle())).rejects.toThrow(
      /trust domain "us-east.acme.internal" already belongs to a member of this federation/,
    );
    await joinFederation({ token, info: clusterInfo('evil'), bundle: freshBundle('evil'), log });
    expect((await control.admin.call.status({})).clusters.map((c) => c.info?.name).sort()).toEqual(['evil', 'us-east']);
  });

  it('finding 1: a store written before Join reserved the federation trust domain does not give its member admin', async () => {
    const poisonedDir = mkdtempSync(join(tmpdir(), 'fedgate-poisoned-'));
    const store = new MemoryStore();
    await store.open();
    const rogue = PkiDirectory.init(join(poisonedDir, 'rogue'), { trustDomain: 'acme.internal' });
    const spiffeJson = JSON.stringify(rogue.bundle().toSpiffeJson());
    await store.createCluster(clusterRecord('evil', { trustDomain: 'acme.internal' }), { trustDomain: 'acme.internal', sequence: 1_000_000, spiffeJson });
    const poisoned = await startTestController(store, poisonedDir);
    try {
      const caPem = readAdminCredentials(join(poisoned.pkiDir, 'admin')).caPem;
      const mallory = issueSvid(rogue.ca(), SpiffeId.admin('acme.internal', 'mallory'), { ttlMs: 60_000 });
      const asMallory = connectAdmin(poisoned.controller.addresses.api, { certPem: mallory.chainPem, keyPem: mallory.keyPem, caPem });
      await expect(asMallory.call.createToken({ cluster: 'x', ttlMs: 1000 })).rejects.toThrow();
      asMallory.close();
      expect((await poisoned.admin.call.status({})).clusters.map((c) => c.info?.name)).toEqual(['evil']);
    } finally {
      await poisoned.stop();
      rmSync(poisonedDir, { recursive: true, force: true });
    }
  });

  it('finding 6: a Join that names another cluster than its token leaves the token valid for its cluster', async () => {
    const { token } = await control.admin.call.createToken({ cluster: 'us-east', ttlMs: 60_000 });
    const caPem = readAdminCredentials(join(control.pkiDir, 'admin')).caPem;
    await expect(rawJoin(control.controller.addresses.join, caPem, token, clusterInfo('us-west'), freshBundle('us-west'))).rejects.toThrow(
      'join token was created for cluster "us-east", not "us-west"; the token is still valid for "us-east"',
    );
    await joinFederation({ token, info: clusterInfo('us-east'), bundle: freshBundle('us-east'), log });
    expect((await control.admin.call.status({})).clusters.map((c) => c.info?.name)).toEqual(['us-east']);
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
    raw.call.write({ msg: { $case: 'hello', value: { cluster: 'us-east', epoch: '', revision: 0, exports: [], info: undefined, bundle: undefined, version: '', instance: 'raw', policyRevision: 0, policyRefusal: '', policyRefusalRevision: 0 } } });
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
    raw.call.write({ msg: { $case: 'hello', value: { cluster: 'us-east', epoch: '', revision: 0, exports: [exportSpec('x'.repeat(63), { consumers: Array.from({ length: 300_000 }, () => 'consumer-cluster-name-long') })], info: undefined, bundle: undefined, version: '', instance: 'raw', policyRevision: 0, policyRefusal: '', policyRefusalRevision: 0 } } });
    const status = await raw.status;
    raw.close();
    expect(status.code).toBe(8);
    expect(status.details).toMatch(/larger than max/);
    expect((await control.admin.call.status({})).clusters.map((c) => c.info?.name)).toEqual(['us-east']);
    expect([...east.catalog.data.services.keys()].sort()).toEqual(['default/a', 'default/b']);
  });
});
