import { errorName } from './frames.js';
import type { H2LimitKind } from './limits.js';

/**
 * Which stable code an HTTP/2 error carries: a connection error ended the whole connection
 * (GOAWAY), a stream error one stream (RST_STREAM). These are `ErrorCodes.HTTP2_CONNECTION` and
 * `ErrorCodes.HTTP2_STREAM` of the catalogue in src/core/errors.ts, spelled out here because this
 * folder imports nothing of ours (the layering rule); codes are never renamed, so the two stay equal.
 */
export const Http2ErrorCodes = {
  CONNECTION: 'FEDGATE_ERR_HTTP2_CONNECTION',
  STREAM: 'FEDGATE_ERR_HTTP2_STREAM',
} as const;

export type Http2ErrorScope = 'connection' | 'stream';

/**
 * An error of fedgate's HTTP/2 stack: a protocol violation (by either side), a limit that refused
 * the peer, or a reset. `http2Code` is the RFC 9113 §7 error code that went (or came) on the wire;
 * `origin` says who signalled it: 'local' when we detected it and sent GOAWAY/RST_STREAM, 'remote'
 * when the peer sent it. Failures of the socket itself (ECONNREFUSED, ECONNRESET) are not wrapped:
 * they reach streams and listeners as the socket raised them.
 */
export class Http2Error extends Error {
  readonly code: (typeof Http2ErrorCodes)[keyof typeof Http2ErrorCodes];

  constructor(
    readonly scope: Http2ErrorScope,
    readonly http2Code: number,
    message: string,
    readonly origin: 'local' | 'remote' = 'local',
    /** Set when the error is a refusal by one of the connection's limits. */
    readonly limit?: H2LimitKind,
  ) {
    super(message);
    this.name = 'Http2Error';
    this.code = scope === 'connection' ? Http2ErrorCodes.CONNECTION : Http2ErrorCodes.STREAM;
  }

  /** The RFC name of the code, e.g. PROTOCOL_ERROR. */
  get http2CodeName(): string {
    return errorName(this.http2Code);
  }
}

/** A connection error we detected (thrown from frame handling, caught where the connection fails). */
export function connectionError(http2Code: number, message: string, limit?: H2LimitKind): Http2Error {
  return new Http2Error('connection', http2Code, message, 'local', limit);
}
