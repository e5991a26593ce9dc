/**
 * The wire protocol between a gateway and its cluster's signer (`fedgate ca serve`): JSON over
 * HTTP/1.1 over TLS 1.3, the signer authenticated by its SVID from the cluster CA.
 *
 * `POST /v1/svid` asks for an X.509-SVID. The gateway generates its key pair itself and sends only
 * the public key, with a proof of possession: a signature by the new private key over the
 * requested SPIFFE ID, the public key and the TLS exporter value of this very connection
 * (RFC 5705/8446 §7.5). The proof cannot be replayed on another connection, and nobody can get a
 * certificate for a key they do not hold. The caller proves who it is with a bearer credential
 * (a projected Kubernetes ServiceAccount token or a one-time bootstrap token) or, to renew, with
 * its current, still valid gateway certificate as TLS client certificate.
 *
 * `GET /v1/bundle` returns the trust domain's SPIFFE bundle (public; the TLS server check is what
 * makes it authentic).
 */
import { createHash, createPublicKey, type KeyObject } from 'node:crypto';
import { ErrorCodes, PkiError } from '../../core/errors.js';
import { SpiffeId } from '../../model/spiffe-id.js';
import type { SpiffeBundleDocument } from '../trust-bundle.js';

export const SIGN_PATH = '/v1/svid';
export const BUNDLE_PATH = '/v1/bundle';
/** RFC 5705 exporter label; the "EXPORTER-" prefix keeps it out of the IANA-registered space. */
export const EXPORTER_LABEL = 'EXPORTER-fedgate-signer-proof-of-possession';
export const EXPORTER_BYTES = 32;
/** TLS 1.3 makes no difference between an absent and an empty exporter context (RFC 8446 §7.5). */
export const EXPORTER_CONTEXT = Buffer.alloc(0);
/** Largest request body the signer reads: a public key and a signature fit in far less. */
export const MAX_REQUEST_BYTES = 16 * 1024;
const PROOF_CONTEXT = 'fedgate signer proof of possession v1';

/** The signer's own identity; gateways check the server they reach is exactly this. */
export function signerSpiffeId(trustDomain: string): SpiffeId {
  return SpiffeId.of(trustDomain, 'fedgate', 'signer');
}

export interface SignRequest {
  /** The identity asked for; the signer issues exactly its cluster's gateway ID, nothing else. */
  spiffeId: string;
  /** DER SubjectPublicKeyInfo, base64. */
  publicKey: string;
  /** Requested lifetime; the signer may shorten it. */
  ttlSeconds: number;
  /** Signature by the private key over `proofMessage(...)`, base64. */
  proof: string;
}

export interface SignResponse {
  /** Leaf first, then any intermediates, PEM. */
  certificateChain: string;
  /** The trust domain's current bundle (rotation adds the next CA here before it signs). */
  bundle: SpiffeBundleDocument;
}

export interface ErrorResponse {
  error: string;
  code: string;
}

/**
 * What the proof of possession signs. Each part is length-prefixed, so no two different inputs
 * produce the same message.
 */
export function proofMessage(spiffeId: string, publicKeyDer: Buffer, channelBinding: Buffer): Buffer {
  const parts = [Buffer.from(PROOF_CONTEXT), Buffer.from(spiffeId), createHash('sha256').update(publicKeyDer).digest(), channelBinding];
  return Buffer.concat(
    parts.flatMap((part) => {
      const length = Buffer.alloc(4);
      length.writeUInt32BE(part.length);
      return [length, part];
    }),
  );
}

/** The signature digest for a key: SHA-384 for P-384, SHA-256 otherwise. */
export function proofDigest(key: KeyObject): string {
  return key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'secp384r1' ? 'sha384' : 'sha256';
}

const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

function invalid(message: string): PkiError {
  return new PkiError(ErrorCodes.SIGNER_REFUSED, message);
}

/** A request the signer can act on: shape checked field by field, key parsed and of an accepted kind. */
export interface ParsedSignRequest {
  spiffeId: SpiffeId;
  publicKey: KeyObject;
  publicKeyDer: Buffer;
  ttlMs: number;
  proof: Buffer;
}

/** Checks a request body; every problem is named by its field. */
export function parseSignRequest(body: unknown): ParsedSignRequest {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw invalid('request body: must be a JSON object');
  const value = body as Record<string, unknown>;
  const unknown = Object.keys(value).filter((key) => !['spiffeId', 'publicKey', 'ttlSeconds', 'proof'].includes(key));
  if (unknown.length > 0) throw invalid(`${unknown[0]}: unknown field`);
  if (typeof value.spiffeId !== 'string') throw invalid('spiffeId: required, a string');
  let spiffeId: SpiffeId;
  try {
    spiffeId = SpiffeId.parse(value.spiffeId);
  } catch (error) {
    throw invalid(`spiffeId: ${(error as Error).message}`);
  }
  if (typeof value.publicKey !== 'string' || !BASE64.test(value.publicKey)) throw invalid('publicKey: required, base64 DER SubjectPublicKeyInfo');
  const publicKeyDer = Buffer.from(value.publicKey, 'base64');
  let publicKey: KeyObject;
  try {
    publicKey = createPublicKey({ key: publicKeyDer, format: 'der', type: 'spki' });
  } catch {
    throw invalid('publicKey: not a DER SubjectPublicKeyInfo');
  }
  const keyProblem = publicKeyProblem(publicKey);
  if (keyProblem) throw invalid(`publicKey: ${keyProblem}`);
  if (typeof value.ttlSeconds !== 'number' || !Number.isInteger(value.ttlSeconds) || value.ttlSeconds < 1) throw invalid('ttlSeconds: required, a positive integer');
  if (typeof value.proof !== 'string' || !BASE64.test(value.proof)) throw invalid('proof: required, a base64 signature');
  return { spiffeId, publicKey, publicKeyDer, ttlMs: value.ttlSeconds * 1000, proof: Buffer.from(value.proof, 'base64') };
}

/** Gateway keys are what `generateKey` makes: EC P-256/P-384 or RSA of at least 2048 bits. */
export function publicKeyProblem(key: KeyObject): string | undefined {
  if (key.asymmetricKeyType === 'ec') {
    const curve = key.asymmetricKeyDetails?.namedCurve;
    return curve === 'prime256v1' || curve === 'secp384r1' ? undefined : `EC curve ${curve ?? 'unknown'} is not accepted (P-256 or P-384)`;
  }
  if (key.asymmetricKeyType === 'rsa') {
    const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
    return bits >= 2048 && bits <= 8192 ? undefined : `RSA keys must have 2048 to 8192 bits, got ${bits}`;
  }
  return `${key.asymmetricKeyType ?? 'unknown'} keys are not accepted (EC P-256/P-384 or RSA)`;
}
