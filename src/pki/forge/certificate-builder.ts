/**
 * The only place node-forge is used: it encodes certificate structures (ASN.1/DER and X.509
 * extensions). It never generates keys, signs or verifies anything; signatures come from
 * node:crypto through the `sign` callback, which is how ECDSA works although forge has no ECDSA.
 */
import forge from 'node-forge';

const { asn1, pki } = forge;
type Asn1 = forge.asn1.Asn1;

export type SignatureAlgorithm = 'ecdsa-with-SHA256' | 'ecdsa-with-SHA384' | 'sha256WithRSAEncryption';

const SIGNATURE_OIDS: Record<SignatureAlgorithm, string> = {
  'ecdsa-with-SHA256': '1.2.840.10045.4.3.2',
  'ecdsa-with-SHA384': '1.2.840.10045.4.3.3',
  'sha256WithRSAEncryption': '1.2.840.113549.1.1.11',
};

const NAME_CONSTRAINTS_OID = '2.5.29.30';

export interface NameAttribute {
  /** forge short name or attribute name: `CN`, `O`, `OU`, `commonName` … */
  shortName: 'CN' | 'O' | 'OU' | 'C';
  value: string;
}

export interface CertificateExtensions {
  basicConstraints: { ca: boolean; pathLength?: number };
  keyUsage: { digitalSignature?: boolean; keyCertSign?: boolean; cRLSign?: boolean };
  extKeyUsage?: { serverAuth?: boolean; clientAuth?: boolean };
  subjectAltName?: { uris?: readonly string[]; dnsNames?: readonly string[]; ips?: readonly string[]; critical?: boolean };
  subjectKeyIdentifier: Buffer;
  authorityKeyIdentifier?: Buffer;
  /** Permitted URI host names (RFC 5280 name constraints); OpenSSL enforces them during chain building. */
  permittedUriDomains?: readonly string[];
}

export interface CertificateFields {
  /** Positive serial number, at most 20 bytes. */
  serialNumber: Buffer;
  /** DER of the issuer Name; for a self-signed certificate pass undefined and the subject is used. */
  issuerNameDer?: Buffer;
  subject: readonly NameAttribute[];
  notBefore: Date;
  notAfter: Date;
  /** DER SubjectPublicKeyInfo, as node:crypto exports it (`{ type: 'spki', format: 'der' }`). */
  subjectPublicKeyInfoDer: Buffer;
  extensions: CertificateExtensions;
  signatureAlgorithm: SignatureAlgorithm;
}

function fromDer(der: Buffer): Asn1 {
  // @types/node-forge only knows the boolean form of the options argument.
  return (asn1.fromDer as unknown as (bytes: forge.util.ByteStringBuffer, options: object) => Asn1)(forge.util.createBuffer(der.toString('binary')), { strict: true, parseAllBytes: true });
}

function toBuffer(node: Asn1): Buffer {
  return Buffer.from(asn1.toDer(node).getBytes(), 'binary');
}

function algorithmIdentifier(algorithm: SignatureAlgorithm): Asn1 {
  const parts: Asn1[] = [asn1.create(asn1.Class.UNIVERSAL, asn1.Type.OID, false, asn1.oidToDer(SIGNATURE_OIDS[algorithm]).getBytes())];
  // RSA algorithm identifiers carry explicit NULL parameters; ECDSA ones carry none (RFC 5758).
  if (algorithm === 'sha256WithRSAEncryption') parts.push(asn1.create(asn1.Class.UNIVERSAL, asn1.Type.NULL, false, ''));
  return asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, parts);
}

function timeValue(date: Date): Asn1 {
  // RFC 5280 4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050.
  return date.getUTCFullYear() < 2050
    ? asn1.create(asn1.Class.UNIVERSAL, asn1.Type.UTCTIME, false, asn1.dateToUtcTime(date))
    : asn1.create(asn1.Class.UNIVERSAL, asn1.Type.GENERALIZEDTIME, false, asn1.dateToGeneralizedTime(date));
}

const NAME_OIDS: Record<NameAttribute['shortName'], string> = { CN: '2.5.4.3', O: '2.5.4.10', OU: '2.5.4.11', C: '2.5.4.6' };

function nameOf(attributes: readonly NameAttribute[]): Asn1 {
  const named = attributes.map((a) => ({
    type: NAME_OIDS[a.shortName],
    // UTF8String for free text; countryName must be a PrintableString.
    value: forge.util.encodeUtf8(a.value),
    valueTagClass: a.shortName === 'C' ? asn1.Type.PRINTABLESTRING : asn1.Type.UTF8,
  }));
  return pki.distinguishedNameToAsn1({ attributes: named } as never);
}

function positiveInteger(bytes: Buffer): string {
  // A leading 1 bit would make the DER INTEGER negative; prefix a zero byte then.
  const b = (bytes[0] as number) & 0x80 ? Buffer.concat([Buffer.from([0]), bytes]) : bytes;
  return b.toString('binary');
}

function nameConstraintsExtension(domains: readonly string[]): forge.pki.CertificateField {
  const subtrees = domains.map((domain) =>
    asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, [asn1.create(asn1.Class.CONTEXT_SPECIFIC, 6, false, domain)]),
  );
  const value = asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, [asn1.create(asn1.Class.CONTEXT_SPECIFIC, 0, true, subtrees)]);
  return { id: NAME_CONSTRAINTS_OID, critical: true, value } as unknown as forge.pki.CertificateField;
}

function extensionsOf(ext: CertificateExtensions): Asn1 {
  const list: Array<Record<string, unknown>> = [
    { name: 'basicConstraints', critical: true, cA: ext.basicConstraints.ca, ...(ext.basicConstraints.pathLength !== undefined ? { pathLenConstraint: ext.basicConstraints.pathLength } : {}) },
    { name: 'keyUsage', critical: true, ...ext.keyUsage },
  ];
  if (ext.extKeyUsage) list.push({ name: 'extKeyUsage', ...ext.extKeyUsage });
  if (ext.subjectAltName) {
    const altNames = [
      ...(ext.subjectAltName.uris ?? []).map((value) => ({ type: 6, value })),
      ...(ext.subjectAltName.dnsNames ?? []).map((value) => ({ type: 2, value })),
      ...(ext.subjectAltName.ips ?? []).map((ip) => ({ type: 7, ip })),
    ];
    if (altNames.length > 0) list.push({ name: 'subjectAltName', critical: ext.subjectAltName.critical ?? false, altNames });
  }
  list.push({
    name: 'subjectKeyIdentifier',
    value: asn1.create(asn1.Class.UNIVERSAL, asn1.Type.OCTETSTRING, false, ext.subjectKeyIdentifier.toString('binary')),
  });
  if (ext.authorityKeyIdentifier) {
    list.push({
      name: 'authorityKeyIdentifier',
      value: asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, [
        asn1.create(asn1.Class.CONTEXT_SPECIFIC, 0, false, ext.authorityKeyIdentifier.toString('binary')),
      ]),
    });
  }
  // setExtensions fills in every extension's DER value from its description (forge's encoding).
  const holder = pki.createCertificate();
  holder.setExtensions(list as never);
  const fields = [...(holder.extensions as forge.pki.CertificateField[])];
  if (ext.permittedUriDomains && ext.permittedUriDomains.length > 0) fields.push(nameConstraintsExtension(ext.permittedUriDomains));
  // Public in node-forge (x509.js) but missing from @types/node-forge.
  const toAsn1 = (pki as unknown as { certificateExtensionsToAsn1: (exts: unknown) => Asn1 }).certificateExtensionsToAsn1;
  return toAsn1(fields);
}

/** Encodes a TBSCertificate (X.509 v3) to DER, ready to be signed. */
export function encodeTbsCertificate(fields: CertificateFields): Buffer {
  const subject = nameOf(fields.subject);
  const issuer = fields.issuerNameDer ? fromDer(fields.issuerNameDer) : subject;
  const tbs = asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, [
    asn1.create(asn1.Class.CONTEXT_SPECIFIC, 0, true, [asn1.create(asn1.Class.UNIVERSAL, asn1.Type.INTEGER, false, asn1.integerToDer(2).getBytes())]),
    asn1.create(asn1.Class.UNIVERSAL, asn1.Type.INTEGER, false, positiveInteger(fields.serialNumber)),
    algorithmIdentifier(fields.signatureAlgorithm),
    issuer,
    asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, [timeValue(fields.notBefore), timeValue(fields.notAfter)]),
    subject,
    fromDer(fields.subjectPublicKeyInfoDer),
    extensionsOf(fields.extensions),
  ]);
  return toBuffer(tbs);
}

/** Wraps a signed TBSCertificate into a Certificate (DER). */
export function assembleCertificate(tbsDer: Buffer, algorithm: SignatureAlgorithm, signature: Buffer): Buffer {
  const certificate = asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, [
    fromDer(tbsDer),
    algorithmIdentifier(algorithm),
    asn1.create(asn1.Class.UNIVERSAL, asn1.Type.BITSTRING, false, `\u0000${signature.toString('binary')}`),
  ]);
  return toBuffer(certificate);
}

/** Builds and signs a certificate; `sign` receives the DER TBSCertificate and returns the signature. */
export function buildCertificate(fields: CertificateFields, sign: (tbs: Buffer) => Buffer): Buffer {
  const tbs = encodeTbsCertificate(fields);
  return assembleCertificate(tbs, fields.signatureAlgorithm, sign(tbs));
}

/**
 * The DER subject Name of a certificate, copied byte for byte so that leaves name their issuer
 * exactly as the issuer names itself (a re-encoded name can differ and break chain building).
 */
export function subjectNameDer(certificateDer: Buffer): Buffer {
  const certificate = fromDer(certificateDer);
  const tbs = (certificate.value as Asn1[])[0] as Asn1;
  const parts = tbs.value as Asn1[];
  // With the explicit [0] version tag present, the subject is the sixth element of the TBSCertificate.
  const hasVersion = (parts[0] as Asn1).tagClass === asn1.Class.CONTEXT_SPECIFIC;
  return toBuffer(parts[hasVersion ? 5 : 4] as Asn1);
}
