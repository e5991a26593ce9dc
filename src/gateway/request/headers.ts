import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';

/** The one header that carries the caller's identity across clusters (a SPIFFE ID). */
export const CALLER_HEADER = 'x-fedgate-caller';

/** Connection-specific headers (RFC 9110 §7.6.1, RFC 9113 §8.2.2): never forwarded, and illegal in HTTP/2. */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'host', 'http2-settings', 'proxy-authenticate', 'proxy-authorization', 'trailer']);

/**
 * Copies request or response headers for the next hop: without pseudo-headers, hop-by-hop headers,
 * headers named in `Connection`, and the caller identity (which only a gateway may set, after
 * checking it). `te: trailers` survives: gRPC needs it.
 */
export function forwardableHeaders(source: IncomingHttpHeaders): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  const connection = source.connection;
  const named = typeof connection === 'string' && connection !== 'keep-alive' && connection !== 'close' ? new Set(connection.toLowerCase().split(',').map((s) => s.trim())) : undefined;
  for (const name in source) {
    if (name.charCodeAt(0) === 58 /* ':' */) continue;
    if (HOP_BY_HOP.has(name) || name === CALLER_HEADER || named?.has(name)) {
      if (name === 'te' && source.te === 'trailers') out.te = 'trailers';
      continue;
    }
    out[name] = source[name];
  }
  return out;
}

/** Response headers from an upstream for the client: pseudo-headers and hop-by-hop removed. */
export function responseHeaders(source: IncomingHttpHeaders): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  for (const name in source) {
    if (name.charCodeAt(0) === 58 || HOP_BY_HOP.has(name)) continue;
    out[name] = source[name];
  }
  return out;
}

/** Appends headers to a flat [name, value, ...] header list (the lean HTTP/2 client's input), one field per value. */
export function appendHeaderFields(fields: string[], headers: OutgoingHttpHeaders): void {
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined) continue;
    if (Array.isArray(value)) for (const v of value) fields.push(name, v);
    else fields.push(name, typeof value === 'string' ? value : String(value));
  }
}

export function isGrpc(contentType: string | string[] | undefined): boolean {
  return typeof contentType === 'string' && contentType.startsWith('application/grpc');
}

const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);

export function isIdempotent(method: string): boolean {
  return IDEMPOTENT.has(method);
}
