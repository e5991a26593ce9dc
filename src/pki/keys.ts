import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, sign, type KeyObject } from 'node:crypto';
import { ErrorCodes, PkiError } from '../core/errors.js';
import type { SignatureAlgorithm } from './forge/certificate-builder.js';

export const KEY_ALGORITHMS = ['ec-p256', 'ec-p384', 'rsa-2048', 'rsa-3072'] as const;
export type KeyAlgorithm = (typeof KEY_ALGORITHMS)[number];

export function isKeyAlgorithm(value: string): value is KeyAlgorithm {
  return (KEY_ALGORITHMS as readonly string[]).includes(value);
}

/** Generates a key pair with node:crypto (never node-forge). */
export function generateKey(algorithm: KeyAlgorithm = 'ec-p256'): { privateKey: KeyObject; publicKey: KeyObject } {
  switch (algorithm) {
    case 'ec-p256':
      return generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    case 'ec-p384':
      return generateKeyPairSync('ec', { namedCurve: 'secp384r1' });
    case 'rsa-2048':
      return generateKeyPairSync('rsa', { modulusLength: 2048 });
    case 'rsa-3072':
      return generateKeyPairSync('rsa', { modulusLength: 3072 });
    default:
      throw new PkiError(ErrorCodes.KEY_ALGORITHM_UNSUPPORTED, `unsupported key algorithm "${String(algorithm)}"; use one of ${KEY_ALGORITHMS.join(', ')}`);
  }
}

/** The signature algorithm a CA key signs with. */
export function signatureAlgorithmFor(key: KeyObject): SignatureAlgorithm {
  if (key.asymmetricKeyType === 'rsa') return 'sha256WithRSAEncryption';
  if (key.asymmetricKeyType === 'ec') {
    return key.asymmetricKeyDetails?.namedCurve === 'secp384r1' ? 'ecdsa-with-SHA384' : 'ecdsa-with-SHA256';
  }
  throw new PkiError(ErrorCodes.KEY_ALGORITHM_UNSUPPORTED, `CA keys must be EC (P-256, P-384) or RSA, got ${key.asymmetricKeyType ?? 'unknown'}`);
}

/** Signs a TBSCertificate with node:crypto; ECDSA signatures come out DER-encoded as X.509 wants. */
export function signerFor(key: KeyObject): (tbs: Buffer) => Buffer {
  const algorithm = signatureAlgorithmFor(key);
  const digest = algorithm === 'ecdsa-with-SHA384' ? 'sha384' : 'sha256';
  return (tbs) => sign(digest, tbs, key);
}

export function spkiDer(publicKey: KeyObject): Buffer {
  return publicKey.export({ type: 'spki', format: 'der' });
}

/** Key identifier: SHA-1 of the SubjectPublicKeyInfo (RFC 7093 allows any stable hash of the key). */
export function keyIdentifier(spki: Buffer): Buffer {
  return createHash('sha1').update(spki).digest();
}

/** 16 random bytes with the top bit cleared: unique, positive, well under the 20-byte limit. */
export function randomSerial(): Buffer {
  const serial = randomBytes(16);
  serial[0] = (serial[0] as number) & 0x7f;
  if (serial[0] === 0) serial[0] = 1;
  return serial;
}

export function privateKeyToPem(key: KeyObject): string {
  return key.export({ type: 'pkcs8', format: 'pem' }).toString();
}

export function privateKeyFromPem(pem: string | Buffer): KeyObject {
  return createPrivateKey(pem);
}

export function publicKeyFromPem(pem: string | Buffer): KeyObject {
  return createPublicKey(pem);
}
