import { appendHeaderFields, forwardableHeaders, isGrpc, isIdempotent, responseHeaders } from './headers.js';

describe('forwardableHeaders', () => {
  it('drops pseudo-headers, hop-by-hop headers, those named in Connection and any caller identity; keeps te: trailers', () => {
    expect(
      forwardableHeaders({
        ':method': 'GET',
        ':path': '/',
        host: 'payments',
        connection: 'x-private, Keep-Alive-Extra',
        'keep-alive': 'timeout=5',
        'transfer-encoding': 'chunked',
        'x-private': 'secret',
        'keep-alive-extra': '1',
        'x-fedgate-caller': 'spiffe://evil/ns/x/sa/y',
        te: 'trailers',
        'content-type': 'application/grpc',
        'set-cookie': ['a=1', 'b=2'],
      }),
    ).toEqual({ te: 'trailers', 'content-type': 'application/grpc', 'set-cookie': ['a=1', 'b=2'] });
  });

  it('drops te other than trailers; Connection: keep-alive or close names no header', () => {
    expect(forwardableHeaders({ te: 'gzip', connection: 'keep-alive', 'x-a': '1' })).toEqual({ 'x-a': '1' });
    expect(forwardableHeaders({ connection: 'close', close: 'kept' })).toEqual({ close: 'kept' });
  });
});

describe('responseHeaders', () => {
  it('drops pseudo-headers and hop-by-hop headers, keeping the rest', () => {
    expect(responseHeaders({ ':status': '200', connection: 'close', 'content-length': '3', 'x-fedgate-caller': 'kept in responses' })).toEqual({ 'content-length': '3', 'x-fedgate-caller': 'kept in responses' });
  });
});

describe('appendHeaderFields', () => {
  it('flattens headers into name/value pairs, one field per value, skipping undefined', () => {
    const fields = ['x-first', '1'];
    appendHeaderFields(fields, { 'set-cookie': ['a=1', 'b=2'], 'content-length': 12, 'x-none': undefined, 'x-s': 'v' });
    expect(fields).toEqual(['x-first', '1', 'set-cookie', 'a=1', 'set-cookie', 'b=2', 'content-length', '12', 'x-s', 'v']);
  });
});

describe('isGrpc and isIdempotent', () => {
  it('recognizes gRPC content types', () => {
    expect(isGrpc('application/grpc')).toBe(true);
    expect(isGrpc('application/grpc+proto')).toBe(true);
    expect(isGrpc('application/json')).toBe(false);
    expect(isGrpc(undefined)).toBe(false);
    expect(isGrpc(['application/grpc'])).toBe(false);
  });

  it('treats the RFC 9110 idempotent methods as idempotent, not POST or PATCH', () => {
    for (const m of ['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']) expect(isIdempotent(m)).toBe(true);
    for (const m of ['POST', 'PATCH', 'CONNECT', 'get']) expect(isIdempotent(m)).toBe(false);
  });
});
