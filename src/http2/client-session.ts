import type { IncomingHttpHeaders } from 'node:http2';
import type { Socket } from 'node:net';
import { addHeaderValue, H2Connection, H2Stream, type H2ConnectionOptions } from './connection.js';
import { CLIENT_PREFACE, DEFAULT_WINDOW, ErrorCode, Setting } from './frames.js';
import { connectionError } from './http2-error.js';

/*
 * The client role of fedgate's HTTP/2 connection (./connection.ts): the gateway-to-gateway hop,
 * the inbound gateway's hop to local h2c/gRPC endpoints and TCP CONNECT tunnels.
 */

export type H2ClientOptions = H2ConnectionOptions;

const MAX_STREAM_ID = 2 ** 31 - 1;

export class H2ClientSession extends H2Connection<H2ClientStream> {
  readonly peerName = 'the peer gateway';
  private nextStreamId = 1;

  constructor(socket: Socket, options: H2ClientOptions) {
    super(socket, options, { sendPreface: CLIENT_PREFACE, localSettings: [[Setting.ENABLE_PUSH, 0]] });
  }

  /**
   * Opens a stream. `fields` is a flat [name, value, ...] list, pseudo-headers first, names in
   * lower case. With `endStream` the request has no body; otherwise write it to the stream.
   */
  request(fields: readonly string[], endStream: boolean): H2ClientStream {
    if (this.closed || this.destroyed) throw new Error(this.destroyed ? 'the session is destroyed' : 'the session takes no new streams');
    const id = this.nextStreamId;
    this.nextStreamId += 2;
    // Before the server's SETTINGS arrive its defaults apply (RFC 9113 §3.4): a client may send
    // requests right after its preface, and a later INITIAL_WINDOW_SIZE adjusts these streams.
    // A request without a body has nothing to write: its writable side starts finished.
    const stream = new H2ClientStream(this, id, this.remoteSettings?.initialWindowSize ?? DEFAULT_WINDOW, this.options.initialWindowSize, endStream ? { writable: false } : undefined);
    this.streams.set(id, stream);
    this.writeHeaders(id, this.encoder.encode(fields), endStream);
    // Stream IDs cannot be reused: a session that has used them all retires.
    if (this.nextStreamId > MAX_STREAM_ID) this.close();
    return stream;
  }

  protected lastProcessedStreamId(): number {
    // We process no stream the server opens (push is off).
    return 0;
  }

  protected isIdle(streamId: number): boolean {
    return streamId >= this.nextStreamId;
  }

  protected initiatedLocally(): boolean {
    return true;
  }

  protected onHeaderList(streamId: number, headers: IncomingHttpHeaders, endStream: boolean, withinLimit: boolean): void {
    const stream = this.streams.get(streamId);
    if (!stream) {
      if (this.isIdle(streamId)) throw connectionError(ErrorCode.PROTOCOL_ERROR, `HEADERS on idle stream ${streamId}`);
      // RFC 9113 §5.1: after the peer's END_STREAM or RST_STREAM, more HEADERS are its error; after
      // ours, they are in flight.
      if (this.closedByPeerEarlier(streamId)) throw connectionError(ErrorCode.STREAM_CLOSED, `HEADERS on stream ${streamId} after ${this.peerName} closed it`);
      return;
    }
    stream.onHeaders(headers, endStream, withinLimit);
  }

  protected addField(headers: IncomingHttpHeaders, name: string, value: string): void {
    const fields = headers as Record<string, string | string[] | number | undefined>;
    if (name === ':status') {
      fields[name] = Number(value);
      return;
    }
    addHeaderValue(fields, name, value);
  }
}

/**
 * One request: the writable side is the request body, the readable side the response body.
 * 'response' carries the response headers, 'trailers' the trailers.
 */
export class H2ClientStream extends H2Stream {
  private finalResponse = false;

  /**
   * 'wireclosed': the exchange is over on the wire (both ends sent END_STREAM, or a reset), even if
   * the response body is still being read. A connection pool frees the stream's slot here: a reader
   * that is slow to take the body must not hold a stream of a connection others share.
   */
  protected override onWireClosed(): void {
    this.emit('wireclosed');
  }

  /** The final (non-informational) response headers arrived. */
  get responded(): boolean {
    return this.finalResponse;
  }

  onHeaders(headers: IncomingHttpHeaders, endStream: boolean, withinLimit: boolean): void {
    if (!withinLimit) {
      this.connection.refused('header-size', 'stream');
      this.connection.resetStream(this, ErrorCode.PROTOCOL_ERROR);
      this.onProtocolError('response headers above our header list size limit');
      return;
    }
    if (!this.finalResponse) {
      const status = headers[':status'] as unknown;
      if (typeof status !== 'number' || !Number.isInteger(status) || status < 100 || status > 999) {
        this.connection.resetStream(this, ErrorCode.PROTOCOL_ERROR);
        this.onProtocolError('a response without a valid :status');
        return;
      }
      // Informational responses (100 Continue, 103 Early Hints) precede the real one.
      if (status < 200) return;
      this.finalResponse = true;
      this.emit('response', headers);
      if (endStream) this.onRemoteEnd();
      return;
    }
    if (!endStream) {
      this.connection.resetStream(this, ErrorCode.PROTOCOL_ERROR);
      this.onProtocolError('trailers without END_STREAM');
      return;
    }
    this.emit('trailers', headers);
    this.onRemoteEnd();
  }

  refusesData(length: number): { code: number; message: string } | undefined {
    if (!this.finalResponse) return { code: ErrorCode.PROTOCOL_ERROR, message: 'DATA before the response headers' };
    if (length > this.recvWindow) return { code: ErrorCode.FLOW_CONTROL_ERROR, message: 'the peer overran the stream window' };
    return undefined;
  }

  override onReset(code: number): void {
    // NO_ERROR after a complete response: the peer needs no more of the request body (RFC 9113 §8.1).
    // Node's server also ends a finished response this way, by RST_STREAM(NO_ERROR) instead of
    // END_STREAM, when it closes the stream with its last DATA still queued (seen with Node 20 and a
    // slow reader); Node's client reads that as the end of the body, and so do we.
    if (code === ErrorCode.NO_ERROR && this.finalResponse && !this.destroyed) {
      this.resetReceived = true;
      this.noteReset(code);
      this.connection.forget(this);
      if (!this.endReceived) this.onRemoteEnd();
      return;
    }
    super.onReset(code);
  }
}
