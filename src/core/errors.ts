/**
 * The one catalogue of fedgate errors. Every code is stable: operators grep logs for it and
 * scripts match on it, so codes are only ever added, never renamed.
 */
export const ErrorCodes = {
  CONFIG_INVALID: 'FEDGATE_ERR_CONFIG_INVALID',
  CONFIG_NOT_FOUND: 'FEDGATE_ERR_CONFIG_NOT_FOUND',
  DURATION_INVALID: 'FEDGATE_ERR_DURATION_INVALID',
  SPIFFE_ID_INVALID: 'FEDGATE_ERR_SPIFFE_ID_INVALID',
  KEY_ALGORITHM_UNSUPPORTED: 'FEDGATE_ERR_KEY_ALGORITHM_UNSUPPORTED',
  CA_NOT_FOUND: 'FEDGATE_ERR_CA_NOT_FOUND',
  CA_INVALID: 'FEDGATE_ERR_CA_INVALID',
  CA_EXPIRED: 'FEDGATE_ERR_CA_EXPIRED',
  CA_ROTATION: 'FEDGATE_ERR_CA_ROTATION',
  CERTIFICATE_INVALID: 'FEDGATE_ERR_CERTIFICATE_INVALID',
  /** A process's own certificate expired and could not be renewed. */
  CERTIFICATE_EXPIRED: 'FEDGATE_ERR_CERTIFICATE_EXPIRED',
  /** The certificate signer could not be reached or failed (transient: retried). */
  SIGNER_UNAVAILABLE: 'FEDGATE_ERR_SIGNER_UNAVAILABLE',
  /** The certificate signer refused the request (credentials, identity, key). */
  SIGNER_REFUSED: 'FEDGATE_ERR_SIGNER_REFUSED',
  BUNDLE_INVALID: 'FEDGATE_ERR_BUNDLE_INVALID',
  BUNDLE_STALE: 'FEDGATE_ERR_BUNDLE_STALE',
  PEER_UNTRUSTED: 'FEDGATE_ERR_PEER_UNTRUSTED',
  PEER_NO_CERTIFICATE: 'FEDGATE_ERR_PEER_NO_CERTIFICATE',
  PEER_SVID_INVALID: 'FEDGATE_ERR_PEER_SVID_INVALID',
  PEER_TRUST_DOMAIN_MISMATCH: 'FEDGATE_ERR_PEER_TRUST_DOMAIN_MISMATCH',
  PEER_IDENTITY_UNEXPECTED: 'FEDGATE_ERR_PEER_IDENTITY_UNEXPECTED',
  TOKEN_INVALID: 'FEDGATE_ERR_TOKEN_INVALID',
  TOKEN_EXPIRED: 'FEDGATE_ERR_TOKEN_EXPIRED',
  TOKEN_USED: 'FEDGATE_ERR_TOKEN_USED',
  CLUSTER_EXISTS: 'FEDGATE_ERR_CLUSTER_EXISTS',
  TRUST_DOMAIN_RESERVED: 'FEDGATE_ERR_TRUST_DOMAIN_RESERVED',
  CLUSTER_NOT_FOUND: 'FEDGATE_ERR_CLUSTER_NOT_FOUND',
  PERMISSION_DENIED: 'FEDGATE_ERR_PERMISSION_DENIED',
  LIMIT_EXCEEDED: 'FEDGATE_ERR_LIMIT_EXCEEDED',
  STORE_UNAVAILABLE: 'FEDGATE_ERR_STORE_UNAVAILABLE',
  STORE_CONFLICT: 'FEDGATE_ERR_STORE_CONFLICT',
  STORE_EPOCH_CHANGED: 'FEDGATE_ERR_STORE_EPOCH_CHANGED',
  SNAPSHOT_REQUIRED: 'FEDGATE_ERR_SNAPSHOT_REQUIRED',
  LOCK_LOST: 'FEDGATE_ERR_LOCK_LOST',
  PROTOCOL_INVALID: 'FEDGATE_ERR_PROTOCOL_INVALID',
  /**
   * An HTTP/2 connection ended with a connection error (RFC 9113 §5.4.1: GOAWAY), detected here
   * or sent by the peer, a limit's refusal included. Carried by `Http2Error` of src/http2, which
   * spells the same string itself because that folder imports nothing of ours.
   */
  HTTP2_CONNECTION: 'FEDGATE_ERR_HTTP2_CONNECTION',
  /** One HTTP/2 stream ended with a stream error (RFC 9113 §5.4.2: RST_STREAM); `Http2Error` as above. */
  HTTP2_STREAM: 'FEDGATE_ERR_HTTP2_STREAM',
  POLICY_INVALID: 'FEDGATE_ERR_POLICY_INVALID',
  DISCOVERY_FAILED: 'FEDGATE_ERR_DISCOVERY_FAILED',
  DRILL_FAILED: 'FEDGATE_ERR_DRILL_FAILED',
  DRILL_RUNNING: 'FEDGATE_ERR_DRILL_RUNNING',
  PROCESS_FAILED: 'FEDGATE_ERR_PROCESS_FAILED',
  USAGE: 'FEDGATE_ERR_USAGE',
  UNAVAILABLE: 'FEDGATE_ERR_UNAVAILABLE',
  STATE_FILE_INVALID: 'FEDGATE_ERR_STATE_FILE_INVALID',
  STATE_DIR_UNUSABLE: 'FEDGATE_ERR_STATE_DIR_UNUSABLE',
  /** A broken invariant in fedgate itself (a bug): never caused by input. */
  INTERNAL: 'FEDGATE_ERR_INTERNAL',
  /** Nothing answers at the controller address (refused, timed out, unknown host). */
  CONTROLLER_UNREACHABLE: 'FEDGATE_ERR_CONTROLLER_UNREACHABLE',
  /** Something answers at the address, but not the service asked for (plain HTTP, another TLS server, a join or gateway port). */
  WRONG_PORT: 'FEDGATE_ERR_WRONG_PORT',
  /** A certificate is outside its validity by this machine's clock although its issuer just made it (or still serves it). */
  CLOCK_SKEW: 'FEDGATE_ERR_CLOCK_SKEW',
  CREDENTIALS_MISSING: 'FEDGATE_ERR_CREDENTIALS_MISSING',
  CREDENTIALS_EXPIRED: 'FEDGATE_ERR_CREDENTIALS_EXPIRED',
  /** Operator credentials and controller do not trust each other (another federation's or an old CA). */
  CREDENTIALS_UNTRUSTED: 'FEDGATE_ERR_CREDENTIALS_UNTRUSTED',
  ADDRESS_IN_USE: 'FEDGATE_ERR_ADDRESS_IN_USE',
  /** A listen address this user may not bind (a port below 1024 without the capability). */
  ADDRESS_NOT_PERMITTED: 'FEDGATE_ERR_ADDRESS_NOT_PERMITTED',
  TOKEN_FILE_NOT_FOUND: 'FEDGATE_ERR_TOKEN_FILE_NOT_FOUND',
  PKI_DIR_UNUSABLE: 'FEDGATE_ERR_PKI_DIR_UNUSABLE',
} as const;

export type ErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes];

export interface FedgateErrorOptions {
  cause?: unknown;
}

/** Base of every error fedgate raises on purpose; `code` is the stable identifier. */
export class FedgateError extends Error {
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options: FedgateErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.name = new.target.name;
  }
}

/** One problem found in an input, located as precisely as the input allows. */
export interface InputIssue {
  /** File the problem is in, relative to where the user pointed us (or a pseudo-source such as `env`). */
  source?: string;
  /** 1-based line, when the source has lines. */
  line?: number;
  /** Field path such as `spec.http[0].route[1].weight`; empty for the document itself. */
  path: string;
  message: string;
  /** Warnings are reported but do not make the input invalid. */
  severity?: 'error' | 'warning';
}

export function formatIssue(issue: InputIssue): string {
  let where = '';
  if (issue.source !== undefined) where = issue.line !== undefined ? `${issue.source}:${issue.line}: ` : `${issue.source}: `;
  const path = issue.path === '' ? '' : `${issue.path}: `;
  return `${where}${path}${issue.message}`;
}

/** Invalid input: permanent, never retried. Carries every issue found, not only the first. */
export class InputError extends FedgateError {
  readonly issues: readonly InputIssue[];

  constructor(code: ErrorCode, issues: readonly InputIssue[], options: FedgateErrorOptions = {}) {
    super(code, issues.map(formatIssue).join('\n'), options);
    this.issues = issues;
  }
}

export class ConfigError extends InputError {
  constructor(issues: readonly InputIssue[], options: FedgateErrorOptions = {}) {
    super(ErrorCodes.CONFIG_INVALID, issues, options);
  }
}

export class PolicyError extends InputError {
  constructor(issues: readonly InputIssue[], options: FedgateErrorOptions = {}) {
    super(ErrorCodes.POLICY_INVALID, issues, options);
  }
}

export class SpiffeIdError extends FedgateError {
  constructor(message: string) {
    super(ErrorCodes.SPIFFE_ID_INVALID, message);
  }
}

/** A peer failed verification after (or instead of) the TLS handshake. */
export class TrustError extends FedgateError {}

export class PkiError extends FedgateError {}

export class TokenError extends FedgateError {}

export class StoreError extends FedgateError {}

/** True for failures worth retrying with back-off (network, unavailable store); false for invalid input. */
export function isTransient(error: unknown): boolean {
  if (error instanceof FedgateError) {
    return error.code === ErrorCodes.STORE_UNAVAILABLE || error.code === ErrorCodes.LOCK_LOST || error.code === ErrorCodes.UNAVAILABLE || error.code === ErrorCodes.STORE_EPOCH_CHANGED;
  }
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && ['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENOTFOUND', 'EAI_AGAIN'].includes(code);
}

export function errorMessage(error: unknown): string {
  if (error instanceof Error) return error.message;
  return String(error);
}
