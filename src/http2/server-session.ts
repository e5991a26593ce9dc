import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http2';
import type { Socket } from 'node:net';
import { addHeaderValue, EMPTY, H2Connection, H2Stream, type H2ConnectionOptions } from './connection.js';
import { CLIENT_PREFACE, DEFAULT_WINDOW, ErrorCode, rstStreamFrame, Setting } from './frames.js';
import { connectionError } from './http2-error.js';
import { TokenBucket, type H2LimitKind } from './limits.js';

/*
 * The server role of fedgate's HTTP/2 connection (./connection.ts): the inbound gateway's listener
 * for other clusters' gateways, and h2c on the outbound listener for local clients. The first is
 * reached only after mutual TLS proved the peer is a member gateway, the second by anyone local;
 * both defend themselves as nghttp2 does for Node's server, and more: a concurrent-stream limit
 * (which also counts streams whose answers still wait in a backlogged write queue), a budget for
 * streams the peer resets or we refuse (rapid reset, CVE-2023-44487) and for empty DATA frames
 * (CVE-2019-9518), header list and header block limits (a list above the limit is answered 431 on
 * its stream), at most 16 CONTINUATION frames per block (CVE-2024-27316), malformed requests
 * refused per RFC 9113 §8.1.1, an idle timeout, and the connection-wide limits of ./limits.ts.
 */

export interface H2ServerOptions extends H2ConnectionOptions {
  /**
   * SETTINGS_MAX_CONCURRENT_STREAMS: a stream above it is refused (REFUSED_STREAM, safe to retry).
   * Streams whose answers still wait in a backlogged write queue count too. Default 100.
   */
  maxConcurrentStreams?: number;
  /** A connection with no stream open and no bytes either way for this long is closed (GOAWAY NO_ERROR). Default 60 s. */
  idleTimeoutMs?: number;
  /**
   * Streams the peer may reset before they are answered (or we refuse), and empty DATA frames it
   * may send, in a burst (default 1,000, as nghttp2 allows for resets).
   */
  abuseBurst?: number;
  /**
   * ...and per second after the burst (default 200; nghttp2 allows 33). Each stream answered in full
   * also gives one back: a gateway cancels its callers' abandoned requests and per-try timeouts on
   * the same connection, so a busy healthy peer may reset more than a quiet one.
   */
  abuseRatePerSecond?: number;
  /** Who the peer is, for error messages. */
  peerName?: string;
}

const DEFAULT_MAX_CONCURRENT_STREAMS = 100;
const DEFAULT_IDLE_TIMEOUT_MS = 60_000;

/** Pseudo-headers a request may carry (RFC 9113 §8.3.1); extended CONNECT's :protocol is not offered. */
const REQUEST_PSEUDO = new Set([':method', ':scheme', ':authority', ':path']);
/** Connection-specific fields, malformed in HTTP/2 (RFC 9113 §8.2.2); `te` is allowed as "trailers" only. */
const CONNECTION_SPECIFIC = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade']);
/** A field name: lower-case token characters only (RFC 9110 §5.6.2, RFC 9113 §8.2.1). */
const FIELD_NAME = /^[!#$%&'*+\-.^_`|~0-9a-z]+$/;
/** Characters a field value may never hold: they would split a header on an HTTP/1.1 hop (smuggling). */
const FORBIDDEN_IN_VALUE = /[\0\r\n]/;

export class H2ServerSession extends H2Connection<H2ServerStream> {
  readonly peerName: string;
  /** The highest stream ID the peer has used: anything above is idle. */
  private lastPeerStreamId = 0;
  /** The highest stream ID we took on (a GOAWAY names it; streams ignored after our GOAWAY are not in it). */
  private lastAcceptedStreamId = 0;
  private readonly maxConcurrentStreams: number;
  private readonly abuseBudget: TokenBucket;
  /** Why the header list being decoded is malformed, if it is. */
  private malformed: string | undefined;
  private regularFieldSeen = false;

  constructor(socket: Socket, options: H2ServerOptions) {
    const maxConcurrentStreams = options.maxConcurrentStreams ?? DEFAULT_MAX_CONCURRENT_STREAMS;
    super(socket, options, { expectPreface: CLIENT_PREFACE, localSettings: [[Setting.MAX_CONCURRENT_STREAMS, maxConcurrentStreams]] });
    this.peerName = options.peerName ?? 'the client';
    this.maxConcurrentStreams = maxConcurrentStreams;
    this.abuseBudget = new TokenBucket(options.abuseBurst ?? 1000, options.abuseRatePerSecond ?? 200);
    // Not setTimeout(ms, callback): that listens once, and a first timeout that finds a stream open
    // would leave the connection without an idle timeout for the rest of its life.
    socket.setTimeout(options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS);
    socket.on('timeout', () => {
      if (this.streams.size > 0 || this.closed) return;
      this.refused('idle', 'connection');
      this.close();
    });
  }

  protected lastProcessedStreamId(): number {
    return this.lastAcceptedStreamId;
  }

  protected isIdle(streamId: number): boolean {
    // We open no streams (no push), so an even ID is never in use.
    return streamId % 2 === 0 || streamId > this.lastPeerStreamId;
  }

  protected initiatedLocally(): boolean {
    return false;
  }

  protected addField(headers: IncomingHttpHeaders, name: string, value: string): void {
    // Pseudo-headers too: :path, :authority and :method become the request line and Host on a hop.
    if (FORBIDDEN_IN_VALUE.test(value)) this.malformed ??= `field ${name.slice(0, 64)} holds CR, LF or NUL`;
    else if (value !== '' && (isBlank(value.charCodeAt(0)) || isBlank(value.charCodeAt(value.length - 1)))) this.malformed ??= `field ${name.slice(0, 64)} starts or ends with whitespace`;
    if (name.charCodeAt(0) === 58 /* ':' */) {
      if (this.regularFieldSeen) this.malformed ??= `pseudo-header ${name} after a regular field`;
      else if (headers[name] !== undefined) this.malformed ??= `${name} twice`;
      (headers as Record<string, string>)[name] = value;
      return;
    }
    this.regularFieldSeen = true;
    if (!FIELD_NAME.test(name)) this.malformed ??= `field name "${name.slice(0, 64)}" is not a lower-case token`;
    else if (CONNECTION_SPECIFIC.has(name)) this.malformed ??= `connection-specific field ${name}`;
    else if (name === 'te' && value !== 'trailers') this.malformed ??= 'te other than "trailers"';
    addHeaderValue(headers as Record<string, string | string[] | number | undefined>, name, value);
  }

  protected onHeaderList(streamId: number, headers: IncomingHttpHeaders, endStream: boolean, withinLimit: boolean): void {
    const malformed = this.malformed;
    this.malformed = undefined;
    this.regularFieldSeen = false;
    const stream = this.streams.get(streamId);
    if (stream) {
      stream.onHeaders(headers, endStream, withinLimit, malformed);
      return;
    }
    if (streamId <= this.lastPeerStreamId) {
      // RFC 9113 §5.1, §5.1.1: HEADERS on a stream the peer closed is its error; a request on an
      // ID below one it used already is too (IDs only grow). Trailers for a stream we reset or
      // finished are frames in flight: nothing to do (HPACK is in step).
      if (this.closedByPeerEarlier(streamId)) throw connectionError(ErrorCode.STREAM_CLOSED, `HEADERS on stream ${streamId} after ${this.peerName} closed it`);
      for (const name in headers) {
        if (name.charCodeAt(0) === 58 /* ':' */) throw connectionError(ErrorCode.PROTOCOL_ERROR, `a new stream ${streamId} below stream ${this.lastPeerStreamId}`);
      }
      return;
    }
    this.lastPeerStreamId = streamId;
    // After our GOAWAY, new streams are ignored: the peer retries them elsewhere.
    if (this.closed) return;
    this.lastAcceptedStreamId = streamId;
    // Streams whose answers still wait in a backlogged write queue count too: a peer that does not
    // read may not have new streams answered into memory (issue 28, finding 2).
    if (this.streams.size + this.lingering >= this.maxConcurrentStreams) {
      this.refused('streams', 'stream');
      this.refuse(streamId, ErrorCode.REFUSED_STREAM);
      return;
    }
    if (!withinLimit) {
      // The request headers are over our limit: answer 431 so the peer sees why (RFC 6585 §5).
      this.refused('header-size', 'stream');
      this.writeHeaders(streamId, this.encoder.encode([':status', '431', 'x-fedgate-reason', 'headers-too-large']), true);
      if (!endStream) this.write(rstStreamFrame(streamId, ErrorCode.NO_ERROR));
      return;
    }
    const problem = malformed ?? requestProblem(headers, endStream);
    if (problem) {
      this.refuse(streamId, ErrorCode.PROTOCOL_ERROR);
      this.emit('malformed', problem);
      return;
    }
    const opened = new H2ServerStream(this, streamId, this.remoteSettings?.initialWindowSize ?? DEFAULT_WINDOW, this.options.initialWindowSize, headers);
    this.streams.set(streamId, opened);
    if (endStream) opened.endOfRequest();
    this.emit('stream', opened, headers, endStream);
  }

  protected override onPeerReset(stream: H2ServerStream | undefined): void {
    // A stream reset before we answered it is the rapid-reset pattern: work started for nothing
    // (and an aborted HTTP/1.1 request costs the backend connection it was on).
    if (stream && !stream.headersSent) this.spend(`${this.peerName} resets streams faster than allowed (rapid reset)`, 'rst-flood');
  }

  /** A stream answered in full gives one unit of the abuse budget back: a busy, healthy peer may cancel more. */
  earn(): void {
    this.abuseBudget.give();
  }

  protected override onEmptyData(): void {
    this.spend(`${this.peerName} sends empty DATA frames faster than allowed`, 'empty-frames');
  }

  private refuse(streamId: number, code: number): void {
    this.spend(`${this.peerName} opens streams we refuse faster than allowed`, 'streams');
    this.write(rstStreamFrame(streamId, code));
  }

  /** One unit of the abuse budget (token bucket); an empty budget ends the connection. */
  private spend(reason: string, kind: H2LimitKind): void {
    if (!this.abuseBudget.take()) throw connectionError(ErrorCode.ENHANCE_YOUR_CALM, reason, kind);
  }
}

function isBlank(code: number): boolean {
  return code === 0x20 || code === 0x09;
}

/** Why a request's header list is malformed (RFC 9113 §8.3.1, §8.5), if it is. */
function requestProblem(headers: IncomingHttpHeaders, endStream: boolean): string | undefined {
  for (const name in headers) {
    if (name.charCodeAt(0) === 58 && !REQUEST_PSEUDO.has(name)) return `unknown pseudo-header ${name}`;
  }
  const method = headers[':method'];
  if (!method) return 'no :method';
  if (method === 'CONNECT') {
    if (!headers[':authority']) return 'CONNECT without :authority';
    if (headers[':scheme'] !== undefined || headers[':path'] !== undefined) return 'CONNECT with :scheme or :path';
    return undefined;
  }
  if (!headers[':scheme']) return 'no :scheme';
  const path = headers[':path'];
  if (!path) return 'no :path';
  // Origin form, or "*" for OPTIONS (RFC 9113 §8.3.1): anything else would reach the backend as a
  // request line it was never meant to see (absolute form, a bare name).
  if (path.charCodeAt(0) !== 47 /* '/' */ && !(path === '*' && method === 'OPTIONS')) return `:path "${path.slice(0, 64)}" is not origin-form`;
  const length = headers['content-length'];
  if (length !== undefined && (!/^\d{1,15}$/.test(length) || (endStream && length !== '0'))) return `content-length "${length.slice(0, 32)}" does not describe the body`;
  return undefined;
}

/** Flat [name, value, ...] fields for a response or trailers; `:status` first. */
function responseFields(headers: OutgoingHttpHeaders): string[] {
  const fields: string[] = [];
  const status = headers[':status'];
  if (status !== undefined) fields.push(':status', String(status));
  for (const name in headers) {
    if (name === ':status') continue;
    const value = headers[name];
    if (value === undefined) continue;
    const lower = name.toLowerCase();
    if (CONNECTION_SPECIFIC.has(lower)) continue;
    if (Array.isArray(value)) for (const v of value) fields.push(lower, v);
    else fields.push(lower, typeof value === 'string' ? value : String(value));
  }
  return fields;
}

export interface RespondOptions {
  endStream?: boolean;
  /** The body's end is followed by 'wantTrailers'; answer it with sendTrailers(). */
  waitForTrailers?: boolean;
}

/**
 * One request from the peer: the readable side is the request body, the writable side the response
 * body after respond(). The shape follows Node's ServerHttp2Stream (respond, sendTrailers,
 * 'wantTrailers', close(code), headersSent) so the gateway writes to either the same way.
 * 'close' is emitted once the exchange is over on the wire (answered in full, or reset).
 */
export class H2ServerStream extends H2Stream {
  private responseStarted = false;
  private waitForTrailers = false;
  private finishBody: ((error?: Error | null) => void) | undefined;
  /** content-length of the request, -1 when absent. */
  private readonly expectedLength: number;
  private receivedLength = 0;
  private readonly tunnel: boolean;

  constructor(
    private readonly session: H2ServerSession,
    id: number,
    sendWindow: number,
    recvWindow: number,
    readonly headers: IncomingHttpHeaders,
  ) {
    // The readable side of a bodyless request still ends with 'end', as on Node's server streams:
    // handlers wait for it before they answer.
    super(session, id, sendWindow, recvWindow);
    const length = headers['content-length'];
    this.expectedLength = length === undefined ? -1 : Number(length);
    this.tunnel = headers[':method'] === 'CONNECT';
  }

  /** respond() was called: the response headers are sent (or queued to be). */
  get headersSent(): boolean {
    return this.responseStarted;
  }

  respond(headers: OutgoingHttpHeaders, options?: RespondOptions): void {
    if (this.responseStarted) throw new Error('the response headers were already sent');
    this.responseStarted = true;
    this.waitForTrailers = options?.waitForTrailers === true;
    const endStream = options?.endStream === true;
    this.session.sendHeaders(this, responseFields(headers), endStream);
    if (endStream && !this.writableEnded) this.end();
  }

  sendTrailers(headers: OutgoingHttpHeaders): void {
    const finishBody = this.finishBody;
    if (!finishBody) throw new Error('trailers can only be sent after wantTrailers');
    this.finishBody = undefined;
    this.session.sendHeaders(this, responseFields(headers), true);
    finishBody();
  }

  override _write(chunk: Buffer, encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    if (!this.headersSent) this.respond({ ':status': 200 });
    super._write(chunk, encoding, callback);
  }

  override _final(callback: (error?: Error | null) => void): void {
    if (!this.headersSent) this.respond({ ':status': 200 }, { waitForTrailers: false });
    if (this.sentEnd) {
      callback();
      return;
    }
    if (this.waitForTrailers && !this.leftWire) {
      this.finishBody = callback;
      this.emit('wantTrailers');
      return;
    }
    this.session.sendData(this, EMPTY, true, callback);
  }

  protected override settlePending(error?: Error | null): void {
    super.settlePending(error);
    const finishBody = this.finishBody;
    this.finishBody = undefined;
    finishBody?.(error);
  }

  /** A request ends with END_STREAM on its HEADERS. */
  endOfRequest(): void {
    this.onRemoteEnd();
  }

  override onSentEnd(): void {
    super.onSentEnd();
    // A complete response while the request body still comes: the peer may stop sending (RFC 9113
    // §8.1). A tunnel instead stays half-closed, as TCP does, until the peer ends its side too.
    if (!this.endReceived && !this.tunnel) this.session.resetStream(this, ErrorCode.NO_ERROR);
  }

  protected override onWireClosed(): void {
    if (this.endSent && this.resetCode === undefined) this.session.earn();
    // The exchange is over on the wire: whoever reads the request body needs no more of it, and
    // 'close' tells the writer of the response that it is done.
    if (!this.destroyed) process.nextTick(() => this.destroy());
  }

  onHeaders(headers: IncomingHttpHeaders, endStream: boolean, withinLimit: boolean, malformed?: string): void {
    if (this.endReceived) {
      // The request is over (half-closed remote): another header block is a stream error
      // (RFC 9113 §5.1), not a second set of trailers after 'end'.
      this.noteReset(ErrorCode.STREAM_CLOSED);
      this.session.resetStream(this, ErrorCode.STREAM_CLOSED);
      this.onProtocolError('HEADERS after END_STREAM', ErrorCode.STREAM_CLOSED);
      return;
    }
    if (!withinLimit) this.session.refused('header-size', 'stream');
    let problem = !endStream ? 'trailers without END_STREAM' : !withinLimit ? 'trailers above the header list size limit' : malformed;
    if (!problem) for (const name in headers) if (name.charCodeAt(0) === 58) problem = `pseudo-header ${name} in trailers`;
    if (problem) {
      this.session.resetStream(this, ErrorCode.PROTOCOL_ERROR);
      this.onProtocolError(problem);
      return;
    }
    this.emit('trailers', headers);
    this.onBodyEnd();
  }

  refusesData(length: number): { code: number; message: string } | undefined {
    if (this.endReceived) return { code: ErrorCode.STREAM_CLOSED, message: 'DATA after END_STREAM' };
    if (length > this.recvWindow) return { code: ErrorCode.FLOW_CONTROL_ERROR, message: 'the peer overran the stream window' };
    return undefined;
  }

  protected override onBody(data: Buffer, counted: number, endStream: boolean): void {
    if (this.expectedLength >= 0) {
      this.receivedLength += data.length;
      if (this.receivedLength > this.expectedLength || (endStream && this.receivedLength !== this.expectedLength)) {
        this.session.credit(counted);
        this.session.resetStream(this, ErrorCode.PROTOCOL_ERROR);
        this.onProtocolError('the body length differs from content-length');
        return;
      }
    }
    super.onBody(data, counted, endStream);
  }

  private onBodyEnd(): void {
    if (this.expectedLength >= 0 && this.receivedLength !== this.expectedLength) {
      this.session.resetStream(this, ErrorCode.PROTOCOL_ERROR);
      this.onProtocolError('the body length differs from content-length');
      return;
    }
    this.onRemoteEnd();
  }
}
