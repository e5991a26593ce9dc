/**
 * Certificates that fedgate's own issuer refuses to make (malformed SVIDs, identities of another
 * trust domain, CA=true leaves, intermediates), built directly with the certificate encoder so the
 * verification paths can be tested against real handshakes.
 */
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildCertificate, subjectNameDer } from '../../src/pki/forge/certificate-builder.js';
import { generateKey, keyIdentifier, privateKeyToPem, randomSerial, signatureAlgorithmFor, signerFor, spkiDer } from '../../src/pki/keys.js';
import { derToPem } from '../../src/pki/pem.js';

export interface CraftedLeaf {
  certificatePem: string;
  keyPem: string;
  chainPem: string;
}

export interface CraftOptions {
  /** Directory of the signing CA (tls.crt, tls.key). */
  caDir: string;
  uris: string[];
  ca?: boolean;
  notBefore?: Date;
  notAfter?: Date;
}

export function craftLeaf(options: CraftOptions): CraftedLeaf {
  const caCert = new X509Certificate(readFileSync(join(options.caDir, 'tls.crt')));
  const caKey = createPrivateKey(readFileSync(join(options.caDir, 'tls.key')));
  const { privateKey, publicKey } = generateKey('ec-p256');
  const spki = spkiDer(publicKey);
  const der = buildCertificate(
    {
      serialNumber: randomSerial(),
      issuerNameDer: subjectNameDer(caCert.raw),
      subject: [{ shortName: 'CN', value: 'crafted' }],
      notBefore: options.notBefore ?? new Date(Date.now() - 60_000),
      notAfter: options.notAfter ?? new Date(Date.now() + 3_600_000),
      subjectPublicKeyInfoDer: spki,
      signatureAlgorithm: signatureAlgorithmFor(caKey),
      extensions: {
        basicConstraints: { ca: options.ca ?? false },
        keyUsage: options.ca ? { digitalSignature: true, keyCertSign: true } : { digitalSignature: true },
        extKeyUsage: { serverAuth: true, clientAuth: true },
        subjectAltName: { uris: options.uris },
        subjectKeyIdentifier: keyIdentifier(spki),
        authorityKeyIdentifier: keyIdentifier(spkiDer(caCert.publicKey)),
      },
    },
    signerFor(caKey),
  );
  const certificatePem = derToPem(der);
  return { certificatePem, keyPem: privateKeyToPem(privateKey), chainPem: certificatePem };
}

/** An intermediate CA under the root in `rootDir`, as cert-manager's CA issuer would produce. */
export function buildIntermediate(rootDir: string, trustDomain: string): { certificatePem: string; keyPem: string } {
  const rootCert = new X509Certificate(readFileSync(join(rootDir, 'tls.crt')));
  const rootKey = createPrivateKey(readFileSync(join(rootDir, 'tls.key')));
  const { privateKey, publicKey } = generateKey('ec-p256');
  const spki = spkiDer(publicKey);
  const der = buildCertificate(
    {
      serialNumber: randomSerial(),
      issuerNameDer: subjectNameDer(rootCert.raw),
      subject: [
        { shortName: 'O', value: 'cert-manager' },
        { shortName: 'CN', value: `intermediate ${trustDomain}` },
      ],
      notBefore: new Date(Date.now() - 60_000),
      notAfter: new Date(Date.now() + 30 * 86_400_000),
      subjectPublicKeyInfoDer: spki,
      signatureAlgorithm: signatureAlgorithmFor(rootKey),
      extensions: {
        basicConstraints: { ca: true, pathLength: 0 },
        keyUsage: { keyCertSign: true, cRLSign: true, digitalSignature: true },
        subjectKeyIdentifier: keyIdentifier(spki),
        authorityKeyIdentifier: keyIdentifier(spkiDer(rootCert.publicKey)),
      },
    },
    signerFor(rootKey),
  );
  return { certificatePem: derToPem(der), keyPem: privateKeyToPem(privateKey) };
}
