import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import type { Readable } from 'node:stream';

/**
 * Why a request could not be served. Each code maps to exactly one status in respond.ts and is
 * sent to the client in the `x-fedgate-reason` header, so an operator can tell a fedgate refusal
 * from an application error.
 */
export type FailureCode =
  | 'bad-request'
  | 'no-route'
  | 'service-not-exported'
  | 'port-not-exported'
  | 'consumer-not-allowed'
  | 'no-healthy-upstream'
  | 'connect-failed'
  | 'upstream-reset'
  | 'timeout'
  | 'overflow'
  | 'denied'
  | 'identity-rejected'
  | 'fault-abort'
  | 'blackholed'
  | 'client-closed';

export interface Failure {
  code: FailureCode;
  message: string;
  /** The cluster that failed, when one was tried. */
  cluster?: string;
  /** Safe to try again on another cluster (nothing reached the upstream, or it is idempotent). */
  retriable: boolean;
  /** Status for fault aborts and policy denials that choose their own. */
  status?: number;
  grpcStatus?: number;
  /** The policy that decided (authorization, fault), sent to the client in `x-fedgate-policy`. */
  policy?: string;
  /**
   * The connection to the peer gateway died under the request (the peer crashed or went away),
   * rather than the upstream resetting this one request: not a sign of an overloaded upstream.
   */
  peerLost?: boolean;
}

/** A response from an upstream whose body has not been sent to the client yet. */
export interface UpstreamResponse {
  status: number;
  headers: IncomingHttpHeaders;
  /** The response body; read or `discard()` it. */
  body: Readable;
  /** Resolves with the trailers (gRPC status) once the body ended; empty when there are none. */
  trailers: Promise<IncomingHttpHeaders>;
  cluster: string;
  /** Drops the response (a retry replaces it), resetting the upstream stream. */
  discard(): void;
}

export type Outcome = { kind: 'response'; response: UpstreamResponse } | { kind: 'failure'; failure: Failure };

/** The trailers of a response that has none (most non-gRPC responses): one shared, settled promise. */
export const NO_TRAILERS: Promise<IncomingHttpHeaders> = Promise.resolve({});

export function failure(code: FailureCode, message: string, extra: Partial<Failure> = {}): Outcome {
  return { kind: 'failure', failure: { code, message, retriable: false, ...extra } };
}

export type { OutgoingHttpHeaders };
