import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { X509Certificate } from 'node:crypto';
import { writeFileAtomicSync } from '../core/atomic-file.js';
import type { Logger } from '../core/logger.js';
import { SpiffeId } from '../model/spiffe-id.js';
import { certificateHash } from '../model/join-token.js';
import type { BundleRecord } from '../model/catalog.js';
import type { CertificateAuthority } from '../pki/certificate-authority.js';
import { PkiDirectory } from '../pki/pki-directory.js';
import { RotatingSvid } from '../pki/rotation.js';
import { issueSvid } from '../pki/svid.js';
import type { TrustBundle } from '../pki/trust-bundle.js';

const SERVING_TTL_MS = 24 * 3_600_000;
const ADMIN_TTL_MS = 90 * 86_400_000;

/**
 * The controller's own PKI: its CA (created on first start when absent), its serving SVID
 * (rotated at half-life) and an operator credential for the CLI in `<pkiDir>/admin/`.
 */
export class ControllerIdentity {
  readonly spiffeId: SpiffeId;
  readonly svid: RotatingSvid;

  private constructor(
    readonly trustDomain: string,
    readonly pki: PkiDirectory,
    private readonly ca: CertificateAuthority,
    readonly bundle: TrustBundle,
  ) {
    this.spiffeId = SpiffeId.controller(trustDomain);
    this.svid = new RotatingSvid(() => issueSvid(this.ca, this.spiffeId, { ttlMs: SERVING_TTL_MS, dnsNames: ['localhost'], ips: ['127.0.0.1'] }));
  }

  static load(trustDomain: string, pkiDir: string, log: Logger): ControllerIdentity {
    let pki = new PkiDirectory(pkiDir, { trustDomain });
    if (!pki.exists()) {
      pki = PkiDirectory.init(pkiDir, { trustDomain, commonName: `fedgate controller CA ${trustDomain}` });
      log.info({ pkiDir }, 'created the controller CA (first start)');
    }
    const ca = pki.ca();
    const identity = new ControllerIdentity(trustDomain, pki, ca, pki.bundle());
    identity.ensureAdminCredentials(log);
    return identity;
  }

  /** The controller CA certificate (what joiners pin by hash). */
  get caPem(): string {
    return this.ca.anchorsPem.join('');
  }

  get caHash(): string {
    return certificateHash(new X509Certificate(this.ca.anchorsPem[0] as string).raw);
  }

  get bundleRecord(): BundleRecord {
    return { trustDomain: this.trustDomain, sequence: this.bundle.sequence, spiffeJson: JSON.stringify(this.bundle.toSpiffeJson()) };
  }

  get adminDir(): string {
    return join(this.pki.dir, 'admin');
  }

  /** Issues an operator identity for `fedgate` commands that talk to this controller. */
  issueAdmin(name: string, ttlMs = ADMIN_TTL_MS): { certPem: string; keyPem: string; caPem: string } {
    const svid = issueSvid(this.ca, SpiffeId.admin(this.trustDomain, name), { ttlMs });
    return { certPem: svid.chainPem, keyPem: svid.keyPem, caPem: this.caPem };
  }

  private ensureAdminCredentials(log: Logger): void {
    const dir = this.adminDir;
    const certFile = join(dir, 'tls.crt');
    if (existsSync(certFile)) {
      const cert = new X509Certificate(readFileSync(certFile));
      const left = Date.parse(cert.validTo) - Date.now();
      if (left > (Date.parse(cert.validTo) - Date.parse(cert.validFrom)) / 2 && cert.checkIssued(new X509Certificate(this.caPem))) return;
    }
    const admin = this.issueAdmin('operator');
    mkdirSync(dir, { recursive: true });
    // Atomic, and 0600 even over an existing key file that had a wider mode.
    writeFileAtomicSync(join(dir, 'tls.key'), admin.keyPem, { mode: 0o600 });
    writeFileAtomicSync(certFile, admin.certPem, { mode: 0o644 });
    writeFileAtomicSync(join(dir, 'ca.crt'), admin.caPem, { mode: 0o644 });
    log.info({ dir }, 'wrote operator credentials for the fedgate CLI');
  }
}
