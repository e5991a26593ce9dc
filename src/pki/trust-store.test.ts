import { CertificateAuthority } from './certificate-authority.js';
import { TrustBundle } from './trust-bundle.js';
import { TrustStore } from './trust-store.js';

const EAST = 'us-east.acme.internal';
const WEST = 'us-west.acme.internal';

describe('TrustBundle (SPIFFE bundle form)', () => {
  const ca = CertificateAuthority.create({ trustDomain: EAST });
  const rsa = CertificateAuthority.create({ trustDomain: EAST, keyAlgorithm: 'rsa-2048' });

  it('round-trips through the SPIFFE JWKS document', () => {
    const bundle = TrustBundle.fromPem(EAST, ca.certificatePem + rsa.certificatePem, 7, 60);
    const document = bundle.toSpiffeJson();
    expect(document.spiffe_sequence).toBe(7);
    expect(document.spiffe_refresh_hint).toBe(60);
    expect(document.keys).toHaveLength(2);
    expect(document.keys[0]).toMatchObject({ use: 'x509-svid', kty: 'EC', crv: 'P-256' });
    expect(document.keys[1]).toMatchObject({ use: 'x509-svid', kty: 'RSA' });
    const back = TrustBundle.fromSpiffeJson(EAST, JSON.stringify(document));
    expect(back.sequence).toBe(7);
    expect(back.sameAuthorities(bundle)).toBe(true);
    expect(back.toPem()).toBe(bundle.toPem());
  });

  it('ignores JWT keys and rejects broken X.509 entries with the reason', () => {
    const document = TrustBundle.fromPem(EAST, ca.certificatePem, 1).toSpiffeJson();
    const withJwt = { ...document, keys: [...document.keys, { use: 'jwt-svid', kty: 'EC', kid: 'k1' }] };
    expect(TrustBundle.fromSpiffeJson(EAST, withJwt).authorities).toHaveLength(1);
    const mismatched = { ...document, keys: [{ ...document.keys[0], x: 'AAAA' }] };
    expect(() => TrustBundle.fromSpiffeJson(EAST, mismatched)).toThrow('keys[0] does not match the public key of its certificate');
    expect(() => TrustBundle.fromSpiffeJson(EAST, '{')).toThrow(`bundle of ${EAST} is not JSON`);
    expect(() => TrustBundle.fromSpiffeJson(EAST, { keys: [] })).toThrow(`bundle of ${EAST} has no X.509 authorities`);
    expect(() => TrustBundle.fromSpiffeJson(EAST, { keys: [{ use: 'x509-svid', x5c: ['bm90IGEgY2VydA=='] }] })).toThrow('keys[0].x5c[0] is not a certificate');
  });

  it('refuses a CA of another trust domain inside a bundle', () => {
    const west = CertificateAuthority.create({ trustDomain: WEST });
    expect(() => TrustBundle.fromPem(EAST, west.certificatePem, 1)).toThrow(`bundle of ${EAST}: authority 1 belongs to trust domain "${WEST}"`);
  });
});

describe('TrustStore', () => {
  const east1 = CertificateAuthority.create({ trustDomain: EAST });
  const east2 = CertificateAuthority.create({ trustDomain: EAST });
  const west = CertificateAuthority.create({ trustDomain: WEST });

  it('holds one bundle per trust domain and never merges them', () => {
    const store = new TrustStore();
    store.update(TrustBundle.fromPem(EAST, east1.certificatePem, 1));
    store.update(TrustBundle.fromPem(WEST, west.certificatePem, 1));
    expect(store.trustDomains()).toEqual([EAST, WEST]);
    expect(store.get(EAST)?.authorities.map((c) => c.serialNumber)).toEqual([east1.serialNumber]);
    expect(store.roots()).toHaveLength(2);
  });

  it('ignores a bundle whose sequence is not newer (replay) and counts versions', () => {
    const store = new TrustStore();
    const changes: number[] = [];
    store.onChange(() => changes.push(store.version));
    expect(store.update(TrustBundle.fromPem(EAST, east2.certificatePem, 5)).status).toBe('applied');
    expect(store.update(TrustBundle.fromPem(EAST, east1.certificatePem, 3))).toEqual({ status: 'stale', trustDomain: EAST, sequence: 3, current: 5 });
    expect(store.update(TrustBundle.fromPem(EAST, east1.certificatePem, 5)).status).toBe('stale');
    expect(store.get(EAST)?.authorities[0]?.serialNumber).toBe(east2.serialNumber);
    expect(changes).toEqual([1]);
  });

  it('keeps the last good bundle when an update is bad', () => {
    const store = new TrustStore([TrustBundle.fromPem(EAST, east1.certificatePem, 1)]);
    const result = store.updateFromSpiffeJson(EAST, '{"keys": "nope", "spiffe_sequence": 9}');
    expect(result).toEqual({ status: 'rejected', trustDomain: EAST, reason: `bundle of ${EAST}: "keys" must be a list` });
    expect(store.get(EAST)?.sequence).toBe(1);
    expect(store.version).toBe(0);
  });

  it('replaces the whole set from a snapshot, dropping domains that left', () => {
    const store = new TrustStore([TrustBundle.fromPem(EAST, east1.certificatePem, 1), TrustBundle.fromPem(WEST, west.certificatePem, 1)]);
    const results = store.replaceAll([TrustBundle.fromPem(EAST, east1.certificatePem, 1)]);
    expect(results).toEqual([{ status: 'stale', trustDomain: EAST, sequence: 1, current: 1 }]);
    expect(store.trustDomains()).toEqual([EAST]);
    expect(store.version).toBe(1);
  });
});

describe('TrustStore anchors (issue 28, finding 1)', () => {
  const FEDERATION = 'acme.internal';
  const own = CertificateAuthority.create({ trustDomain: FEDERATION });
  const rogue = CertificateAuthority.create({ trustDomain: FEDERATION });
  const east = CertificateAuthority.create({ trustDomain: EAST });

  it('never lets a peer or catalog bundle replace or remove an anchored trust domain, whatever its sequence', () => {
    const store = new TrustStore();
    store.anchor(TrustBundle.fromPem(FEDERATION, own.certificatePem, 1));
    const forged = TrustBundle.fromPem(FEDERATION, rogue.certificatePem, 1_000_000);
    expect(store.update(forged)).toMatchObject({ status: 'rejected', trustDomain: FEDERATION });
    const results = store.replaceAll([forged, TrustBundle.fromPem(EAST, east.certificatePem, 1)]);
    expect(results.map((r) => r.status)).toEqual(['rejected', 'applied']);
    // A snapshot that does not mention the anchored domain does not drop it either.
    store.replaceAll([]);
    expect(store.remove(FEDERATION)).toBe(false);
    expect(store.trustDomains()).toEqual([FEDERATION]);
    expect(store.get(FEDERATION)?.authorities[0]?.fingerprint256).toBe(own.certificate.fingerprint256);
  });

  it('lets the owner rotate its anchored bundle with a newer sequence only', () => {
    const store = new TrustStore();
    store.anchor(TrustBundle.fromPem(FEDERATION, own.certificatePem, 2));
    expect(store.anchor(TrustBundle.fromPem(FEDERATION, rogue.certificatePem, 1)).status).toBe('stale');
    const version = store.version;
    expect(store.anchor(TrustBundle.fromPem(FEDERATION, own.certificatePem + rogue.certificatePem, 3)).status).toBe('applied');
    expect(store.version).toBe(version + 1);
    expect(store.isAnchored(FEDERATION)).toBe(true);
    expect(store.isAnchored(EAST)).toBe(false);
  });
});
