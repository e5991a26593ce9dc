import type { X509Certificate } from 'node:crypto';
import type { SpiffeId } from '../model/spiffe-id.js';
import type { CertificateAuthority } from './certificate-authority.js';
import { generateKey, privateKeyToPem, type KeyAlgorithm } from './keys.js';

/** An X.509-SVID with its private key: what a process presents in mutual TLS. */
export interface Svid {
  spiffeId: SpiffeId;
  keyPem: string;
  certificatePem: string;
  /** Leaf plus intermediates; what goes into `cert` of a TLS context. */
  chainPem: string;
  certificate: X509Certificate;
  notBefore: Date;
  notAfter: Date;
}

export interface IssueSvidOptions {
  ttlMs: number;
  keyAlgorithm?: KeyAlgorithm;
  dnsNames?: readonly string[];
  ips?: readonly string[];
}

/** Generates a fresh key locally and has the CA certify it; the CA never handles the private key. */
export function issueSvid(ca: CertificateAuthority, spiffeId: SpiffeId, options: IssueSvidOptions): Svid {
  const { privateKey, publicKey } = generateKey(options.keyAlgorithm ?? 'ec-p256');
  const issued = ca.issue({ spiffeId, publicKey, ttlMs: options.ttlMs, dnsNames: options.dnsNames, ips: options.ips });
  return {
    spiffeId,
    keyPem: privateKeyToPem(privateKey),
    certificatePem: issued.certificatePem,
    chainPem: issued.chainPem,
    certificate: issued.certificate,
    notBefore: issued.notBefore,
    notAfter: issued.notAfter,
  };
}
