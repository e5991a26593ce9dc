import { X509Certificate, type JsonWebKey } from 'node:crypto';
import { ErrorCodes, PkiError } from '../core/errors.js';
import { SpiffeId, trustDomainProblem } from '../model/spiffe-id.js';
import { parseCertificates, uriSans } from './pem.js';

/** The SPIFFE bundle document (a JWKS with SPIFFE parameters), as exchanged between trust domains. */
export interface SpiffeBundleDocument {
  keys: Array<JsonWebKey & { use?: string; x5c?: string[]; kid?: string }>;
  spiffe_sequence?: number;
  spiffe_refresh_hint?: number;
}

const DEFAULT_REFRESH_HINT_SECONDS = 300;

/**
 * The X.509 authorities of one trust domain with a sequence number. Bundles are never merged:
 * each one answers only for its own trust domain (see TrustStore and the binding check).
 */
export class TrustBundle {
  readonly authorities: readonly X509Certificate[];

  constructor(
    readonly trustDomain: string,
    authorities: readonly X509Certificate[],
    readonly sequence: number,
    readonly refreshHintSeconds: number = DEFAULT_REFRESH_HINT_SECONDS,
  ) {
    const problem = trustDomainProblem(trustDomain);
    if (problem) throw new PkiError(ErrorCodes.BUNDLE_INVALID, `bundle trust domain "${trustDomain}": ${problem}`);
    if (!Number.isSafeInteger(sequence) || sequence < 0) throw new PkiError(ErrorCodes.BUNDLE_INVALID, `bundle of ${trustDomain}: spiffe_sequence must be a non-negative integer`);
    if (authorities.length === 0) throw new PkiError(ErrorCodes.BUNDLE_INVALID, `bundle of ${trustDomain} has no X.509 authorities`);
    const seen = new Set<string>();
    this.authorities = authorities.filter((certificate, index) => {
      if (!certificate.ca) throw new PkiError(ErrorCodes.BUNDLE_INVALID, `bundle of ${trustDomain}: authority ${index + 1} is not a CA certificate`);
      // A CA that names its own trust domain must name this one: a bundle must not smuggle in another domain's CA.
      for (const uri of uriSans(certificate)) {
        const id = SpiffeId.tryParse(uri);
        if (id && id.trustDomain !== trustDomain) {
          throw new PkiError(ErrorCodes.BUNDLE_INVALID, `bundle of ${trustDomain}: authority ${index + 1} belongs to trust domain "${id.trustDomain}"`);
        }
      }
      if (seen.has(certificate.fingerprint256)) return false;
      seen.add(certificate.fingerprint256);
      return true;
    });
  }

  static fromPem(trustDomain: string, pem: string, sequence: number, refreshHintSeconds?: number): TrustBundle {
    let certificates: X509Certificate[];
    try {
      certificates = parseCertificates(pem, `bundle of ${trustDomain}`);
    } catch (error) {
      throw new PkiError(ErrorCodes.BUNDLE_INVALID, (error as Error).message);
    }
    return new TrustBundle(trustDomain, certificates, sequence, refreshHintSeconds);
  }

  /** Parses a SPIFFE bundle document; keys of other uses (jwt-svid) are ignored, x509-svid keys must be whole. */
  static fromSpiffeJson(trustDomain: string, input: string | SpiffeBundleDocument): TrustBundle {
    let document: SpiffeBundleDocument;
    try {
      document = typeof input === 'string' ? (JSON.parse(input) as SpiffeBundleDocument) : input;
    } catch (error) {
      throw new PkiError(ErrorCodes.BUNDLE_INVALID, `bundle of ${trustDomain} is not JSON (${(error as Error).message})`);
    }
    if (document === null || typeof document !== 'object' || !Array.isArray(document.keys)) {
      throw new PkiError(ErrorCodes.BUNDLE_INVALID, `bundle of ${trustDomain}: "keys" must be a list`);
    }
    const certificates: X509Certificate[] = [];
    document.keys.forEach((key, index) => {
      if (key.use !== 'x509-svid') return;
      if (!Array.isArray(key.x5c) || key.x5c.length !== 1 || typeof key.x5c[0] !== 'string') {
        throw new PkiError(ErrorCodes.BUNDLE_INVALID, `bundle of ${trustDomain}: keys[${index}].x5c must hold exactly one certificate`);
      }
      let certificate: X509Certificate;
      try {
        certificate = new X509Certificate(Buffer.from(key.x5c[0], 'base64'));
      } catch (error) {
        throw new PkiError(ErrorCodes.BUNDLE_INVALID, `bundle of ${trustDomain}: keys[${index}].x5c[0] is not a certificate (${(error as Error).message})`);
      }
      const jwk = certificate.publicKey.export({ format: 'jwk' });
      const matches = key.kty === jwk.kty && (jwk.kty === 'RSA' ? key.n === jwk.n && key.e === jwk.e : key.crv === jwk.crv && key.x === jwk.x && key.y === jwk.y);
      if (!matches) throw new PkiError(ErrorCodes.BUNDLE_INVALID, `bundle of ${trustDomain}: keys[${index}] does not match the public key of its certificate`);
      certificates.push(certificate);
    });
    const sequence = document.spiffe_sequence ?? 0;
    const hint = document.spiffe_refresh_hint ?? DEFAULT_REFRESH_HINT_SECONDS;
    if (typeof hint !== 'number' || !(hint > 0)) throw new PkiError(ErrorCodes.BUNDLE_INVALID, `bundle of ${trustDomain}: spiffe_refresh_hint must be a positive number`);
    return new TrustBundle(trustDomain, certificates, sequence, hint);
  }

  toSpiffeJson(): SpiffeBundleDocument {
    return {
      keys: this.authorities.map((certificate) => ({
        use: 'x509-svid',
        ...certificate.publicKey.export({ format: 'jwk' }),
        x5c: [certificate.raw.toString('base64')],
      })),
      spiffe_sequence: this.sequence,
      spiffe_refresh_hint: this.refreshHintSeconds,
    };
  }

  toPem(): string {
    return this.authorities.map((certificate) => certificate.toString()).join('');
  }

  /** A copy with a different sequence (and optionally authorities), for publishing a change. */
  withSequence(sequence: number, authorities: readonly X509Certificate[] = this.authorities): TrustBundle {
    return new TrustBundle(this.trustDomain, authorities, sequence, this.refreshHintSeconds);
  }

  sameAuthorities(other: TrustBundle): boolean {
    if (other.authorities.length !== this.authorities.length) return false;
    const mine = new Set(this.authorities.map((c) => c.fingerprint256));
    return other.authorities.every((c) => mine.has(c.fingerprint256));
  }
}
