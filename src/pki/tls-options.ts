import { createHash } from 'node:crypto';
import type { ConnectionOptions, PeerCertificate, SecureContextOptions, TlsOptions } from 'node:tls';
import { TrustError } from '../core/errors.js';
import type { SpiffeId } from '../model/spiffe-id.js';
import type { PeerVerifier } from './peer-verifier.js';
import type { Svid } from './svid.js';
import type { TrustStore } from './trust-store.js';

/** TLS 1.3 only between fedgate processes: no legacy renegotiation, encrypted certificates. */
export const MIN_TLS_VERSION = 'TLSv1.3' as const;

/** Options of every mutual-TLS listener: a client certificate is required and checked by OpenSSL. */
export const MTLS_SERVER_OPTIONS: TlsOptions = {
  requestCert: true,
  rejectUnauthorized: true,
  minVersion: MIN_TLS_VERSION,
};

/**
 * Key material and trust for a listener. The session id context changes with the trust version,
 * so a session made under an older bundle set cannot be resumed once the bundles changed.
 */
export function serverSecureContext(svid: Svid, trust: TrustStore): SecureContextOptions {
  return {
    key: svid.keyPem,
    cert: svid.chainPem,
    ca: trust.roots(),
    sessionIdContext: createHash('sha256').update(`fedgate:${trust.version}`).digest('hex').slice(0, 32),
    minVersion: MIN_TLS_VERSION,
  };
}

/** Decides whether a verified server identity is the one the client meant to reach. */
export type ServerIdentityExpectation = (id: SpiffeId) => string | undefined;

/**
 * Options for a client connection. Host names mean nothing in SPIFFE, so `checkServerIdentity`
 * runs the trust-domain binding and the caller's expectation instead of the hostname check.
 */
export function clientConnectionOptions(svid: Svid, trust: TrustStore, verifier: PeerVerifier, expect?: ServerIdentityExpectation): ConnectionOptions {
  return {
    key: svid.keyPem,
    cert: svid.chainPem,
    ca: trust.roots(),
    minVersion: MIN_TLS_VERSION,
    rejectUnauthorized: true,
    checkServerIdentity: (_host: string, certificate: PeerCertificate) => checkServer(verifier, certificate, expect),
  };
}

export function checkServer(verifier: PeerVerifier, certificate: PeerCertificate, expect?: ServerIdentityExpectation): Error | undefined {
  try {
    const id = verifier.verifyPeerCertificate(certificate);
    const problem = expect?.(id);
    return problem === undefined ? undefined : new Error(problem);
  } catch (error) {
    return error instanceof TrustError ? error : new Error(String(error));
  }
}

/** Expect exactly this SPIFFE ID. */
export function expectId(expected: SpiffeId): ServerIdentityExpectation {
  return (id) => (id.equals(expected) ? undefined : `server is ${id.toString()}, expected ${expected.toString()}`);
}
