import { failure, type Failure, type FailureCode } from './outcome.js';
import { failureResponse, httpStatusOf } from './respond.js';

function f(code: FailureCode, message = 'why', extra: Partial<Failure> = {}): Failure {
  const outcome = failure(code, message, extra);
  if (outcome.kind !== 'failure') throw new Error('unreachable');
  return outcome.failure;
}

describe('failureResponse', () => {
  it.each<[FailureCode, number, number]>([
    ['bad-request', 400, 3],
    ['no-route', 404, 12],
    ['consumer-not-allowed', 403, 7],
    ['no-healthy-upstream', 503, 14],
    ['upstream-reset', 502, 14],
    ['timeout', 504, 4],
    ['overflow', 503, 8],
    ['identity-rejected', 403, 16],
    ['client-closed', 499, 1],
  ])('%s is HTTP %d, gRPC status %d', (code, http, grpc) => {
    expect(httpStatusOf(code)).toBe(http);
    expect(failureResponse(f(code), false)).toEqual({ status: http, headers: { 'content-type': 'text/plain; charset=utf-8', 'x-fedgate-reason': code }, body: `${code}: why\n`, grpc: false });
    expect(failureResponse(f(code), true)).toEqual({ status: 200, headers: { 'content-type': 'application/grpc', 'grpc-status': String(grpc), 'grpc-message': encodeURIComponent(`${code}: why`), 'x-fedgate-reason': code }, body: '', grpc: true });
  });

  it('uses the status a fault or policy chose, and names the policy in a header cleaned of unsafe characters', () => {
    const abort = f('fault-abort', 'aborted', { status: 418, grpcStatus: 9, policy: 'FaultPolicy shop/chaos\r\n' });
    expect(failureResponse(abort, false)).toMatchObject({ status: 418, headers: { 'x-fedgate-policy': 'FaultPolicyshop/chaos' } });
    expect(failureResponse(abort, true).headers['grpc-status']).toBe('9');
  });

  it('puts the reason on one line and bounds it', () => {
    const response = failureResponse(f('denied', `line one\r\nline two ${'x'.repeat(1000)}`), false);
    expect(response.body.startsWith('denied: line one line two x')).toBe(true);
    expect(response.body.length).toBe(513);
  });
});
