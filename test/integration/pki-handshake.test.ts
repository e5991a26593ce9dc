import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ManualClock } from '../../src/core/clock.js';
import { SpiffeId } from '../../src/model/spiffe-id.js';
import { CertificateAuthority } from '../../src/pki/certificate-authority.js';
import { issueSvid, type Svid } from '../../src/pki/svid.js';
import { expectId } from '../../src/pki/tls-options.js';
import { TrustBundle } from '../../src/pki/trust-bundle.js';
import { TrustStore } from '../../src/pki/trust-store.js';
import { craftLeaf, type CraftedLeaf } from '../support/crafted-certificates.js';
import { greet, startMtlsServer, type MtlsTestServer } from '../support/tls-peers.js';

const EAST = 'us-east.acme.internal';
const WEST = 'us-west.acme.internal';
const HOUR = 3_600_000;

/** A crafted certificate presented as an SVID: the verifier must not trust its claimed ID. */
function asSvid(leaf: CraftedLeaf, claimed = 'spiffe://crafted/x'): Svid {
  return { ...leaf, spiffeId: SpiffeId.parse(claimed), certificate: undefined as never, notBefore: new Date(), notAfter: new Date() };
}

describe('mutual TLS between trust domains (real handshakes)', () => {
  let dir: string;
  let eastCa: CertificateAuthority;
  // West's CA carries no name constraint, like a CA made by cert-manager or a corporate PKI: only
  // the trust-domain binding stands between it and identities of other domains.
  let westCa: CertificateAuthority;
  let westDir: string;
  let eastDir: string;
  let trust: TrustStore;
  let server: MtlsTestServer;
  let eastClient: Svid;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'fedgate-handshake-'));
    eastDir = join(dir, 'east');
    westDir = join(dir, 'west');
    // Made a day ago, so it can be asked (through a clock in the past) to issue an already-expired leaf.
    CertificateAuthority.create({ trustDomain: EAST, clock: new ManualClock(Date.now() - 24 * HOUR) }).save(eastDir);
    eastCa = CertificateAuthority.load(eastDir);
    westCa = CertificateAuthority.create({ trustDomain: WEST, nameConstraints: false });
    westCa.save(westDir);
    trust = new TrustStore([TrustBundle.fromPem(EAST, eastCa.certificatePem, 1), TrustBundle.fromPem(WEST, westCa.certificatePem, 1)]);
    server = await startMtlsServer(issueSvid(eastCa, SpiffeId.gateway(EAST, 'us-east'), { ttlMs: HOUR }), trust);
    eastClient = issueSvid(eastCa, SpiffeId.gateway(EAST, 'us-east-2'), { ttlMs: HOUR });
  });

  afterAll(async () => {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  beforeEach(() => {
    server.rejections.length = 0;
  });

  it('accepts a peer of the same trust domain', async () => {
    await expect(greet(server.port, eastClient, trust)).resolves.toBe(`hello spiffe://${EAST}/fedgate/gateway/us-east-2`);
  });

  it('accepts a peer of another trust domain through the federated bundle', async () => {
    const westClient = issueSvid(westCa, SpiffeId.gateway(WEST, 'us-west'), { ttlMs: HOUR });
    await expect(greet(server.port, westClient, trust)).resolves.toBe(`hello spiffe://${WEST}/fedgate/gateway/us-west`);
  });

  it('lets the client insist on the server identity it meant to reach', async () => {
    await expect(greet(server.port, eastClient, trust, expectId(SpiffeId.gateway(EAST, 'us-east')))).resolves.toContain('hello');
    await expect(greet(server.port, eastClient, trust, expectId(SpiffeId.gateway(WEST, 'us-west')))).rejects.toThrow(
      `server is spiffe://${EAST}/fedgate/gateway/us-east, expected spiffe://${WEST}/fedgate/gateway/us-west`,
    );
  });

  /**
   * Node's TLS server drops a client that fails chain verification without telling why, so each
   * OpenSSL-level rejection is checked both ways: the bad certificate as a client (refused), and as
   * a server, where the client reports OpenSSL's precise reason.
   */
  async function expectRefusedBothWays(bad: Svid, reason: RegExp): Promise<void> {
    await expect(greet(server.port, bad, trust)).rejects.toThrow(/socket hang up|ECONNRESET|closed without a greeting/);
    expect(server.rejections.length).toBeGreaterThan(0);
    const badServer = await startMtlsServer(bad, trust);
    try {
      await expect(greet(badServer.port, eastClient, trust)).rejects.toThrow(reason);
    } finally {
      await badServer.close();
    }
  }

  it('rejects a peer whose CA is in no bundle', async () => {
    const rogue = CertificateAuthority.create({ trustDomain: EAST });
    await expectRefusedBothWays(issueSvid(rogue, SpiffeId.gateway(EAST, 'impostor'), { ttlMs: HOUR }), /unable to verify the first certificate/);
  });

  it('rejects a CA of domain A issuing an identity of domain B (trust-domain binding)', async () => {
    const forged = craftLeaf({ caDir: westDir, uris: [`spiffe://${EAST}/fedgate/gateway/us-east`] });
    await expect(greet(server.port, asSvid(forged), trust)).rejects.toThrow();
    expect(server.rejections).toEqual([
      `peer claims spiffe://${EAST}/fedgate/gateway/us-east but its certificate does not chain to an authority of trust domain "${EAST}"`,
    ]);
  });

  it('rejects the same forgery when it is the server (client-side binding)', async () => {
    const forged = craftLeaf({ caDir: westDir, uris: [`spiffe://${EAST}/fedgate/gateway/us-east`] });
    const forgedServer = await startMtlsServer(asSvid(forged), trust);
    try {
      await expect(greet(forgedServer.port, eastClient, trust)).rejects.toThrow(`peer claims spiffe://${EAST}/fedgate/gateway/us-east but its certificate does not chain`);
    } finally {
      await forgedServer.close();
    }
  });

  it('has OpenSSL refuse a constrained CA issuing outside its domain (defense in depth)', async () => {
    const forged = craftLeaf({ caDir: eastDir, uris: [`spiffe://${WEST}/fedgate/gateway/us-west`] });
    await expectRefusedBothWays(asSvid(forged), /permitted subtree violation/);
  });

  it('rejects an expired leaf', async () => {
    const ca = CertificateAuthority.load(eastDir, { clock: new ManualClock(Date.now() - 3 * HOUR) });
    await expectRefusedBothWays(issueSvid(ca, SpiffeId.gateway(EAST, 'old'), { ttlMs: HOUR }), /certificate has expired/);
  });

  it('rejects a leaf that is not yet valid', async () => {
    const ca = CertificateAuthority.load(eastDir, { clock: new ManualClock(Date.now() + 3 * HOUR) });
    await expectRefusedBothWays(issueSvid(ca, SpiffeId.gateway(EAST, 'early'), { ttlMs: HOUR }), /certificate is not yet valid/);
  });

  it('rejects a leaf with two URI SANs', async () => {
    const leaf = craftLeaf({ caDir: westDir, uris: [`spiffe://${WEST}/a`, `spiffe://${WEST}/b`] });
    await expect(greet(server.port, asSvid(leaf), trust)).rejects.toThrow();
    expect(server.rejections).toEqual(['peer certificate has 2 URI SANs; an X.509-SVID has exactly one']);
  });

  it('rejects a leaf with CA=true', async () => {
    const leaf = craftLeaf({ caDir: westDir, uris: [`spiffe://${WEST}/fedgate/gateway/us-west`], ca: true });
    await expect(greet(server.port, asSvid(leaf), trust)).rejects.toThrow();
    expect(server.rejections).toEqual(['peer certificate is a CA certificate (basicConstraints CA=true); an X.509-SVID leaf must not be']);
  });

  it.each([
    ['dot segments', `spiffe://${WEST}/a/../b`, 'path must not contain "." or ".." segments'],
    ['an empty segment', `spiffe://${WEST}/a//b`, 'path must not contain empty segments ("//")'],
    ['a trailing slash', `spiffe://${WEST}/a/`, 'path must not end with "/"'],
    ['percent-encoding', `spiffe://${WEST}/a%2Fb`, 'path must not be percent-encoded'],
    ['an upper-case trust domain', 'spiffe://US-WEST.acme.internal/a', 'trust domain must be lower case'],
    ['a 256-byte trust domain', `spiffe://${'w'.repeat(256)}/a`, 'trust domain is longer than 255 bytes'],
    ['more than 2048 bytes', `spiffe://${WEST}/${'a'.repeat(2048)}`, 'SPIFFE ID is longer than 2048 bytes'],
    ['another scheme', `https://${WEST}/a`, 'it must start with "spiffe://"'],
  ])('rejects a leaf whose SPIFFE ID has %s', async (_what, uri, reason) => {
    const leaf = craftLeaf({ caDir: westDir, uris: [uri] });
    await expect(greet(server.port, asSvid(leaf), trust)).rejects.toThrow();
    expect(server.rejections).toHaveLength(1);
    expect(server.rejections[0]).toContain('peer SPIFFE ID is invalid');
    expect(server.rejections[0]).toContain(reason);
  });

  it('ignores a replayed bundle with a lower sequence, so a retired CA stays untrusted', async () => {
    const store = new TrustStore([TrustBundle.fromPem(EAST, eastCa.certificatePem, 1)]);
    const retired = CertificateAuthority.create({ trustDomain: WEST, nameConstraints: false });
    store.update(TrustBundle.fromPem(WEST, retired.certificatePem, 3));
    store.update(TrustBundle.fromPem(WEST, westCa.certificatePem, 5));
    const replay = store.update(TrustBundle.fromPem(WEST, retired.certificatePem, 3));
    expect(replay.status).toBe('stale');
    const replayServer = await startMtlsServer(issueSvid(eastCa, SpiffeId.gateway(EAST, 'us-east'), { ttlMs: HOUR }), store);
    try {
      const oldClient = issueSvid(retired, SpiffeId.gateway(WEST, 'us-west'), { ttlMs: HOUR });
      await expect(greet(replayServer.port, oldClient, store)).rejects.toThrow();
      const currentClient = issueSvid(westCa, SpiffeId.gateway(WEST, 'us-west'), { ttlMs: HOUR });
      await expect(greet(replayServer.port, currentClient, store)).resolves.toContain(WEST);
    } finally {
      await replayServer.close();
    }
  });

  it('rejects a peer whose trust domain has no bundle at all', async () => {
    const onlyEast = new TrustStore([TrustBundle.fromPem(EAST, eastCa.certificatePem, 1)]);
    const verifierServer = await startMtlsServer(issueSvid(eastCa, SpiffeId.gateway(EAST, 'us-east'), { ttlMs: HOUR }), onlyEast);
    try {
      // The client trusts both, but the server knows only east: OpenSSL already refuses west's chain.
      const westClient = issueSvid(westCa, SpiffeId.gateway(WEST, 'us-west'), { ttlMs: HOUR });
      await expect(greet(verifierServer.port, westClient, trust)).rejects.toThrow(/socket hang up|ECONNRESET|closed without a greeting/);
      expect(verifierServer.rejections).toHaveLength(1);
    } finally {
      await verifierServer.close();
    }
  });
});
