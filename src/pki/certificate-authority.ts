import { createPublicKey, X509Certificate, type KeyObject } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomicSync } from '../core/atomic-file.js';
import { systemClock, type Clock } from '../core/clock.js';
import { formatDuration } from '../core/duration.js';
import { ErrorCodes, PkiError } from '../core/errors.js';
import { SpiffeId } from '../model/spiffe-id.js';
import { buildCertificate, subjectNameDer, type NameAttribute } from './forge/certificate-builder.js';
import { generateKey, keyIdentifier, privateKeyFromPem, privateKeyToPem, randomSerial, signatureAlgorithmFor, signerFor, spkiDer, type KeyAlgorithm } from './keys.js';
import { derToPem, parseCertificates, uriSans } from './pem.js';

/** Leaves are backdated so a peer whose clock runs a little behind still accepts them. */
export const BACKDATE_MS = 5 * 60_000;
const DEFAULT_CA_TTL_MS = 5 * 365 * 86_400_000;

export interface CreateCaOptions {
  trustDomain: string;
  keyAlgorithm?: KeyAlgorithm;
  ttlMs?: number;
  commonName?: string;
  /**
   * Restrict the CA to URIs of its own trust domain with an X.509 name constraint, so OpenSSL
   * itself refuses a leaf for another domain. The trust-domain binding check runs regardless,
   * because CAs made elsewhere (cert-manager, a corporate PKI) usually carry no constraint.
   */
  nameConstraints?: boolean;
  clock?: Clock;
}

export interface LeafRequest {
  spiffeId: SpiffeId;
  /**
   * The subject's public key, as a KeyObject or as DER SubjectPublicKeyInfo (what a CSR or an API
   * call carries; it also spares a key export, which costs more than the signature).
   */
  publicKey: KeyObject | Buffer;
  ttlMs: number;
  dnsNames?: readonly string[];
  ips?: readonly string[];
}

export interface IssuedCertificate {
  certificatePem: string;
  /** Leaf followed by the intermediates a peer needs to reach a trust anchor. */
  chainPem: string;
  der: Buffer;
  /** Parsed on first use: parsing costs a quarter of an issuance and most callers only need the PEM. */
  readonly certificate: X509Certificate;
  notBefore: Date;
  notAfter: Date;
}

/**
 * A cluster's (or the controller's) certificate authority. Files use the Kubernetes TLS secret
 * layout — `tls.crt` (this CA, then any chain above it), `tls.key`, `ca.crt` (trust anchors) — so a
 * CA issued by cert-manager can be mounted as is.
 */
export class CertificateAuthority {
  readonly certificate: X509Certificate;
  private readonly issuerName: Buffer;
  private readonly authorityKeyId: Buffer;
  private readonly sign: (tbs: Buffer) => Buffer;
  private readonly signatureAlgorithm;
  private readonly intermediatesPem: string;

  private constructor(
    readonly trustDomain: string,
    readonly certificatePem: string,
    /** Certificates above this CA (empty for a root). */
    readonly chainAbovePem: readonly string[],
    /** Trust anchors (`ca.crt`): what goes into the trust bundle. */
    readonly anchorsPem: readonly string[],
    private readonly key: KeyObject,
    private readonly clock: Clock,
  ) {
    this.certificate = new X509Certificate(certificatePem);
    this.issuerName = subjectNameDer(this.certificate.raw);
    this.authorityKeyId = keyIdentifier(spkiDer(this.certificate.publicKey));
    this.sign = signerFor(key);
    this.signatureAlgorithm = signatureAlgorithmFor(key);
    this.intermediatesPem = this.isRoot ? '' : [certificatePem, ...chainAbovePem.filter((pem) => !isSelfSigned(new X509Certificate(pem)))].join('');
  }

  /** Creates a self-signed root CA. Its key is made by node:crypto. */
  static create(options: CreateCaOptions): CertificateAuthority {
    const clock = options.clock ?? systemClock;
    const { privateKey, publicKey } = generateKey(options.keyAlgorithm ?? 'ec-p256');
    const spki = spkiDer(publicKey);
    const now = clock.now();
    const subject: NameAttribute[] = [
      { shortName: 'O', value: 'fedgate' },
      { shortName: 'CN', value: options.commonName ?? `fedgate CA ${options.trustDomain}` },
    ];
    const der = buildCertificate(
      {
        serialNumber: randomSerial(),
        subject,
        notBefore: new Date(now - BACKDATE_MS),
        notAfter: new Date(now + (options.ttlMs ?? DEFAULT_CA_TTL_MS)),
        subjectPublicKeyInfoDer: spki,
        signatureAlgorithm: signatureAlgorithmFor(privateKey),
        extensions: {
          basicConstraints: { ca: true, pathLength: 1 },
          keyUsage: { keyCertSign: true, cRLSign: true, digitalSignature: true },
          subjectAltName: { uris: [SpiffeId.of(options.trustDomain).toString()] },
          subjectKeyIdentifier: keyIdentifier(spki),
          authorityKeyIdentifier: keyIdentifier(spki),
          permittedUriDomains: options.nameConstraints === false ? undefined : [options.trustDomain],
        },
      },
      signerFor(privateKey),
    );
    const pem = derToPem(der);
    return new CertificateAuthority(options.trustDomain, pem, [], [pem], privateKey, clock);
  }

  /**
   * Loads a CA from a directory in Kubernetes secret layout. The trust domain comes from the CA's
   * own SPIFFE URI SAN when it has one, else from `trustDomain` (CAs made by other tools).
   */
  static load(dir: string, options: { trustDomain?: string; clock?: Clock } = {}): CertificateAuthority {
    const certFile = join(dir, 'tls.crt');
    const keyFile = join(dir, 'tls.key');
    const anchorsFile = join(dir, 'ca.crt');
    for (const file of [certFile, keyFile]) {
      if (!existsSync(file)) {
        throw new PkiError(ErrorCodes.CA_NOT_FOUND, `no CA in ${dir}: ${file} is missing (expected tls.crt, tls.key and ca.crt; create one with "fedgate ca init")`);
      }
    }
    const chain = parseCertificates(readFileSync(certFile, 'utf8'), certFile);
    const own = chain[0] as X509Certificate;
    let key: KeyObject;
    try {
      key = privateKeyFromPem(readFileSync(keyFile));
    } catch (error) {
      throw new PkiError(ErrorCodes.CA_INVALID, `${keyFile}: not a readable PEM private key (${(error as Error).message})`);
    }
    if (!own.ca) throw new PkiError(ErrorCodes.CA_INVALID, `${certFile}: certificate is not a CA (basicConstraints CA is false)`);
    if (!spkiDer(createPublicKey(key)).equals(spkiDer(own.publicKey))) {
      throw new PkiError(ErrorCodes.CA_INVALID, `${keyFile} does not belong to the certificate in ${certFile}`);
    }
    const anchors = existsSync(anchorsFile) ? parseCertificates(readFileSync(anchorsFile, 'utf8'), anchorsFile) : [chain[chain.length - 1] as X509Certificate];
    const ownDomain = uriSans(own)
      .map((uri) => SpiffeId.tryParse(uri))
      .find((id) => id !== undefined)?.trustDomain;
    const trustDomain = ownDomain ?? options.trustDomain;
    if (!trustDomain) throw new PkiError(ErrorCodes.CA_INVALID, `${certFile}: the CA has no SPIFFE URI SAN; configure the cluster's trustDomain`);
    if (ownDomain && options.trustDomain && ownDomain !== options.trustDomain) {
      throw new PkiError(ErrorCodes.CA_INVALID, `${certFile}: CA belongs to trust domain "${ownDomain}", but "${options.trustDomain}" is configured`);
    }
    const pems = chain.map((c) => c.toString());
    return new CertificateAuthority(trustDomain, pems[0] as string, pems.slice(1), anchors.map((c) => c.toString()), key, options.clock ?? systemClock);
  }

  /**
   * Writes the CA in Kubernetes secret layout, each file atomically; the key file is readable by
   * its owner only (0600), also when it replaces a file that had a wider mode.
   */
  save(dir: string): void {
    mkdirSync(dir, { recursive: true });
    writeFileAtomicSync(join(dir, 'tls.key'), privateKeyToPem(this.key), { mode: 0o600 });
    writeFileAtomicSync(join(dir, 'tls.crt'), [this.certificatePem, ...this.chainAbovePem].join(''), { mode: 0o644 });
    writeFileAtomicSync(join(dir, 'ca.crt'), this.anchorsPem.join(''), { mode: 0o644 });
  }

  get isRoot(): boolean {
    return isSelfSigned(this.certificate);
  }

  get notAfter(): Date {
    return new Date(this.certificate.validTo);
  }

  get serialNumber(): string {
    return this.certificate.serialNumber;
  }

  /**
   * Issues a leaf SVID for a public key: exactly one URI SAN, CA=false, digitalSignature
   * (critical), serverAuth+clientAuth, backdated 5 minutes, never outliving this CA.
   */
  issue(request: LeafRequest): IssuedCertificate {
    if (!request.spiffeId.memberOf(this.trustDomain)) {
      throw new PkiError(ErrorCodes.CERTIFICATE_INVALID, `refusing to issue ${request.spiffeId.toString()}: this CA only issues identities of trust domain "${this.trustDomain}"`);
    }
    if (!(request.ttlMs > 0)) throw new PkiError(ErrorCodes.CERTIFICATE_INVALID, `certificate lifetime must be positive, got ${request.ttlMs}ms`);
    const now = this.clock.now();
    const caNotBefore = Date.parse(this.certificate.validFrom);
    const caNotAfter = Date.parse(this.certificate.validTo);
    if (now >= caNotAfter) {
      throw new PkiError(ErrorCodes.CA_EXPIRED, `CA of ${this.trustDomain} (serial ${this.serialNumber}) expired at ${this.certificate.validTo}; refusing to issue`);
    }
    if (now < caNotBefore) {
      throw new PkiError(ErrorCodes.CA_EXPIRED, `CA of ${this.trustDomain} is not valid before ${this.certificate.validFrom}; refusing to issue`);
    }
    const notBefore = new Date(Math.max(now - BACKDATE_MS, caNotBefore));
    const notAfter = new Date(Math.min(now + request.ttlMs, caNotAfter));
    const spki = Buffer.isBuffer(request.publicKey) ? request.publicKey : spkiDer(request.publicKey);
    const der = buildCertificate(
      {
        serialNumber: randomSerial(),
        issuerNameDer: this.issuerName,
        subject: [
          { shortName: 'O', value: this.trustDomain },
          { shortName: 'CN', value: request.spiffeId.segments[request.spiffeId.segments.length - 1] ?? this.trustDomain },
        ],
        notBefore,
        notAfter,
        subjectPublicKeyInfoDer: spki,
        signatureAlgorithm: this.signatureAlgorithm,
        extensions: {
          basicConstraints: { ca: false },
          // TLS 1.3 only signs with the leaf key, so digitalSignature is all an SVID needs, RSA or EC.
          keyUsage: { digitalSignature: true },
          extKeyUsage: { serverAuth: true, clientAuth: true },
          subjectAltName: { uris: [request.spiffeId.toString()], dnsNames: request.dnsNames, ips: request.ips },
          subjectKeyIdentifier: keyIdentifier(spki),
          authorityKeyIdentifier: this.authorityKeyId,
        },
      },
      this.sign,
    );
    const certificatePem = derToPem(der);
    let parsed: X509Certificate | undefined;
    return {
      certificatePem,
      chainPem: certificatePem + this.intermediatesPem,
      der,
      get certificate() {
        parsed ??= new X509Certificate(der);
        return parsed;
      },
      notBefore,
      notAfter,
    };
  }

  describe(): string {
    return `CA ${this.trustDomain} serial ${this.serialNumber} valid until ${this.certificate.validTo} (${formatDuration(Math.max(0, Math.floor((Date.parse(this.certificate.validTo) - this.clock.now()) / 3_600_000) * 3_600_000))} left)`;
  }
}

export function isSelfSigned(certificate: X509Certificate): boolean {
  return certificate.checkIssued(certificate) && certificate.verify(certificate.publicKey);
}
