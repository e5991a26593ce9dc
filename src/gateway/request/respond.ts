import type { Failure, FailureCode } from './outcome.js';

/** The only place a failure becomes an HTTP status (and a gRPC status for gRPC callers). */
const STATUS: Record<FailureCode, { http: number; grpc: number }> = {
  'bad-request': { http: 400, grpc: 3 },
  'no-route': { http: 404, grpc: 12 },
  'service-not-exported': { http: 404, grpc: 12 },
  'port-not-exported': { http: 404, grpc: 12 },
  'consumer-not-allowed': { http: 403, grpc: 7 },
  'no-healthy-upstream': { http: 503, grpc: 14 },
  'connect-failed': { http: 503, grpc: 14 },
  'upstream-reset': { http: 502, grpc: 14 },
  timeout: { http: 504, grpc: 4 },
  overflow: { http: 503, grpc: 8 },
  denied: { http: 403, grpc: 7 },
  'identity-rejected': { http: 403, grpc: 16 },
  'fault-abort': { http: 503, grpc: 14 },
  blackholed: { http: 503, grpc: 14 },
  'client-closed': { http: 499, grpc: 1 },
};

export const REASON_HEADER = 'x-fedgate-reason';
export const UPSTREAM_CLUSTER_HEADER = 'x-fedgate-upstream-cluster';
export const POLICY_HEADER = 'x-fedgate-policy';

export interface FailureResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
  /** For gRPC callers: a trailers-only response (HTTP 200, grpc-status in the headers). */
  grpc: boolean;
}

export function failureResponse(f: Failure, grpc: boolean): FailureResponse {
  const mapped = STATUS[f.code];
  const reason = `${f.code}: ${f.message}`.replace(/[\r\n]+/g, ' ').slice(0, 512);
  const policy = f.policy ? { [POLICY_HEADER]: f.policy.replace(/[^\x21-\x7e]/g, '').slice(0, 256) } : undefined;
  if (grpc) {
    return {
      status: 200,
      headers: { 'content-type': 'application/grpc', 'grpc-status': String(f.grpcStatus ?? mapped.grpc), 'grpc-message': encodeURIComponent(reason), [REASON_HEADER]: f.code, ...policy },
      body: '',
      grpc: true,
    };
  }
  return {
    status: f.status ?? mapped.http,
    headers: { 'content-type': 'text/plain; charset=utf-8', [REASON_HEADER]: f.code, ...policy },
    body: `${reason}\n`,
    grpc: false,
  };
}

export function httpStatusOf(code: FailureCode): number {
  return STATUS[code].http;
}
