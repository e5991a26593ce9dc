import { execFileSync } from 'node:child_process';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ManualClock } from '../core/clock.js';
import { SpiffeId } from '../model/spiffe-id.js';
import { BACKDATE_MS, CertificateAuthority } from './certificate-authority.js';
import { generateKey } from './keys.js';
import { uriSans } from './pem.js';
import { issueSvid } from './svid.js';
import { buildIntermediate } from '../../test/support/crafted-certificates.js';

const TD = 'us-east.acme.internal';

function opensslText(pem: string): string {
  return execFileSync('openssl', ['x509', '-noout', '-text'], { input: pem }).toString();
}

describe('CertificateAuthority', () => {
  it.each(['ec-p256', 'rsa-2048'] as const)('creates a %s root CA that OpenSSL reads as a constrained CA', (keyAlgorithm) => {
    const ca = CertificateAuthority.create({ trustDomain: TD, keyAlgorithm });
    expect(ca.certificate.ca).toBe(true);
    expect(ca.isRoot).toBe(true);
    expect(uriSans(ca.certificate)).toEqual([`spiffe://${TD}`]);
    const text = opensslText(ca.certificatePem);
    expect(text).toMatch(/X509v3 Basic Constraints: critical\s+CA:TRUE, pathlen:1/);
    expect(text).toMatch(/X509v3 Key Usage: critical\s+Digital Signature, Certificate Sign, CRL Sign/);
    expect(text).toMatch(/X509v3 Name Constraints: critical\s+Permitted:\s+URI:us-east.acme.internal/);
    expect(text).toContain(keyAlgorithm === 'ec-p256' ? 'ecdsa-with-SHA256' : 'sha256WithRSAEncryption');
  });

  it('issues leaf SVIDs of the exact shape SPIFFE requires', () => {
    const ca = CertificateAuthority.create({ trustDomain: TD });
    const id = SpiffeId.gateway(TD, 'us-east');
    const before = Date.now();
    const svid = issueSvid(ca, id, { ttlMs: 3_600_000 });
    const leaf = svid.certificate;
    expect(leaf.ca).toBe(false);
    expect(uriSans(leaf)).toEqual([id.toString()]);
    expect(leaf.verify(ca.certificate.publicKey)).toBe(true);
    expect(leaf.checkIssued(ca.certificate)).toBe(true);
    const notBefore = Date.parse(leaf.validFrom);
    expect(notBefore).toBeLessThanOrEqual(before - BACKDATE_MS + 1000);
    expect(notBefore).toBeGreaterThan(before - BACKDATE_MS - 2000);
    const text = opensslText(svid.certificatePem);
    expect(text).toMatch(/X509v3 Basic Constraints: critical\s+CA:FALSE/);
    expect(text).toMatch(/X509v3 Key Usage: critical\s+Digital Signature\n/);
    expect(text).toMatch(/X509v3 Extended Key Usage: \s*TLS Web Server Authentication, TLS Web Client Authentication/);
    expect(text).toMatch(/X509v3 Subject Alternative Name: \s*URI:spiffe:\/\/us-east.acme.internal\/fedgate\/gateway\/us-east/);
    expect(text).toMatch(/X509v3 Authority Key Identifier/);
    // The private key is the one certified.
    expect(new X509Certificate(svid.certificatePem).checkPrivateKey(createPrivateKey(svid.keyPem))).toBe(true);
  });

  it('never issues past its own expiry and refuses once expired', () => {
    const clock = new ManualClock(Date.parse('2030-01-01T00:00:00Z'));
    const ca = CertificateAuthority.create({ trustDomain: TD, ttlMs: 2 * 3_600_000, clock });
    const { publicKey } = generateKey();
    const leaf = ca.issue({ spiffeId: SpiffeId.gateway(TD, 'a'), publicKey, ttlMs: 24 * 3_600_000 });
    expect(leaf.notAfter.getTime()).toBe(ca.notAfter.getTime());
    clock.advance(3 * 3_600_000);
    expect(() => ca.issue({ spiffeId: SpiffeId.gateway(TD, 'a'), publicKey, ttlMs: 60_000 })).toThrow(/expired .* refusing to issue/);
  });

  it('refuses identities of another trust domain', () => {
    const ca = CertificateAuthority.create({ trustDomain: TD });
    const { publicKey } = generateKey();
    expect(() => ca.issue({ spiffeId: SpiffeId.gateway('us-west.acme.internal', 'x'), publicKey, ttlMs: 60_000 })).toThrow(
      'refusing to issue spiffe://us-west.acme.internal/fedgate/gateway/x: this CA only issues identities of trust domain "us-east.acme.internal"',
    );
  });

  describe('files', () => {
    let dir: string;
    beforeEach(() => {
      dir = mkdtempSync(join(tmpdir(), 'fedgate-ca-'));
    });
    afterEach(() => rmSync(dir, { recursive: true, force: true }));

    it('saves in Kubernetes secret layout with a private key file and loads it back', () => {
      const ca = CertificateAuthority.create({ trustDomain: TD });
      ca.save(dir);
      expect(statSync(join(dir, 'tls.key')).mode & 0o777).toBe(0o600);
      const loaded = CertificateAuthority.load(dir);
      expect(loaded.trustDomain).toBe(TD);
      expect(loaded.serialNumber).toBe(ca.serialNumber);
    });

    it('loads a cert-manager style intermediate CA and chains leaves through it', () => {
      const root = CertificateAuthority.create({ trustDomain: TD, nameConstraints: false });
      // An intermediate is a CA issued by the root: simulate cert-manager's Issuer output.
      const rootDir = join(dir, 'root');
      root.save(rootDir);
      const intermediate = buildIntermediate(rootDir, TD);
      const secretDir = join(dir, 'secret');
      mkdirSync(secretDir);
      writeFileSync(join(secretDir, 'tls.crt'), intermediate.certificatePem);
      writeFileSync(join(secretDir, 'tls.key'), intermediate.keyPem);
      writeFileSync(join(secretDir, 'ca.crt'), readFileSync(join(rootDir, 'ca.crt')));
      const ca = CertificateAuthority.load(secretDir, { trustDomain: TD });
      expect(ca.isRoot).toBe(false);
      const svid = issueSvid(ca, SpiffeId.gateway(TD, 'x'), { ttlMs: 60_000 });
      expect(svid.chainPem).toContain(intermediate.certificatePem.trim());
      expect(ca.anchorsPem.join('')).toBe(readFileSync(join(rootDir, 'ca.crt'), 'utf8'));
    });

    it('explains what is missing or wrong', () => {
      expect(() => CertificateAuthority.load(dir)).toThrow(`no CA in ${dir}: ${join(dir, 'tls.crt')} is missing`);
      const a = CertificateAuthority.create({ trustDomain: TD });
      const b = CertificateAuthority.create({ trustDomain: TD });
      a.save(dir);
      const other = join(dir, 'other');
      b.save(other);
      writeFileSync(join(dir, 'tls.key'), readFileSync(join(other, 'tls.key')));
      expect(() => CertificateAuthority.load(dir)).toThrow(`${join(dir, 'tls.key')} does not belong to the certificate in ${join(dir, 'tls.crt')}`);
      a.save(dir);
      expect(() => CertificateAuthority.load(dir, { trustDomain: 'us-west.acme.internal' })).toThrow('CA belongs to trust domain "us-east.acme.internal", but "us-west.acme.internal" is configured');
    });
  });
});
