import { X509Certificate } from 'node:crypto';
import { ErrorCodes, PkiError } from '../core/errors.js';

const PEM_BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/** Splits a PEM file into its certificates; anything else in the file is ignored. */
export function splitPemCertificates(pem: string): string[] {
  return (pem.match(PEM_BLOCK) ?? []).map((block) => `${block.trim()}\n`);
}

export function parseCertificates(pem: string, what: string): X509Certificate[] {
  const blocks = splitPemCertificates(pem);
  if (blocks.length === 0) throw new PkiError(ErrorCodes.CERTIFICATE_INVALID, `${what}: no PEM certificate found`);
  return blocks.map((block, index) => {
    try {
      return new X509Certificate(block);
    } catch (error) {
      throw new PkiError(ErrorCodes.CERTIFICATE_INVALID, `${what}: certificate ${index + 1} does not parse (${(error as Error).message})`);
    }
  });
}

export function derToPem(der: Buffer): string {
  const body = der.toString('base64').replace(/.{64}/g, '$&\n').replace(/\n$/, '');
  return `-----BEGIN CERTIFICATE-----\n${body}\n-----END CERTIFICATE-----\n`;
}

/**
 * Reads the entries of `X509Certificate.subjectAltName`. Node quotes a value as a JSON string when it
 * holds characters that could be mistaken for separators, so a naive split on ", " would let a
 * crafted SAN smuggle in a second URI.
 */
export function parseSubjectAltNames(text: string | undefined): Array<{ type: string; value: string }> {
  const out: Array<{ type: string; value: string }> = [];
  if (!text) return out;
  let i = 0;
  while (i < text.length) {
    const colon = text.indexOf(':', i);
    if (colon === -1) break;
    const type = text.slice(i, colon);
    let value: string;
    let next: number;
    if (text[colon + 1] === '"') {
      let end = colon + 2;
      while (end < text.length && text[end] !== '"') end += text[end] === '\\' ? 2 : 1;
      value = JSON.parse(text.slice(colon + 1, end + 1)) as string;
      next = end + 1;
    } else {
      const comma = text.indexOf(', ', colon + 1);
      next = comma === -1 ? text.length : comma;
      value = text.slice(colon + 1, next);
    }
    out.push({ type, value });
    i = next;
    if (text.startsWith(', ', i)) i += 2;
  }
  return out;
}

/** URI SANs of a certificate. */
export function uriSans(certificate: X509Certificate): string[] {
  return parseSubjectAltNames(certificate.subjectAltName)
    .filter((entry) => entry.type === 'URI')
    .map((entry) => entry.value);
}
