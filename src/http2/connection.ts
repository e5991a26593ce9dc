import { EventEmitter } from 'node:events';
import type { IncomingHttpHeaders } from 'node:http2';
import type { Socket } from 'node:net';
import { Duplex, type DuplexOptions } from 'node:stream';
import { endDelivery, startDelivery, type Delivery, type DirectBody } from './direct-body.js';
import { HpackDecoder, HpackEncoder, HpackError } from './hpack.js';
import {
  DEFAULT_MAX_FRAME_SIZE,
  DEFAULT_WINDOW,
  ErrorCode,
  errorName,
  Flag,
  frame,
  FRAME_HEADER_BYTES,
  FrameType,
  goawayFrame,
  MAX_WINDOW,
  rstStreamFrame,
  Setting,
  settingsFrame,
  windowUpdateFrame,
  writeFrameHeader,
} from './frames.js';
import { StreamTable } from './stream-table.js';

/*
 * What both ends of fedgate's own HTTP/2 connections share (RFC 9113; no push, no priorities): the
 * frame reader, HPACK, SETTINGS, PING, GOAWAY, flow control in both directions and the streams'
 * Duplex. Node 20's HTTP/2 allocates so much per stream (copies of headers and options, async
 * resources, a JS stream over a native nghttp2 stream) that the gateways' scavenges took 3–15 ms
 * under load; here a stream is one Duplex, one header object and the frames themselves. The client
 * role (H2ClientSession) opens streams, the server role (H2ServerSession) accepts them.
 */

export interface RemoteSettings {
  headerTableSize: number;
  maxConcurrentStreams: number;
  initialWindowSize: number;
  maxFrameSize: number;
  maxHeaderListSize: number;
}

export interface H2ConnectionOptions {
  /** Our receive window per stream (SETTINGS_INITIAL_WINDOW_SIZE). */
  initialWindowSize: number;
  /** Our receive window for the whole connection. */
  sessionWindowSize: number;
  /** Largest header list we accept (SETTINGS_MAX_HEADER_LIST_SIZE); a larger one fails its stream only. */
  maxHeaderListSize: number;
  /** A header block split over CONTINUATION frames must be complete within this (default 10 s). */
  headersTimeoutMs?: number;
}

/** A connection-level protocol violation by the peer: the connection ends with GOAWAY(code). */
export class ConnectionError extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
  }
}

const MAX_OUTSTANDING_PINGS = 10;
/** CONTINUATION frames per header block: a legitimate block needs one or two (CVE-2024-27316 floods with thousands). */
const MAX_CONTINUATIONS = 16;
/**
 * Bytes we may have queued for a peer that does not read, when it asks for another control answer
 * (PING or SETTINGS ACK): past this the peer is flooding us (CVE-2019-9512, -9515), not talking.
 */
const MAX_UNREAD_CONTROL_BYTES = 4 * 1024 * 1024;
export const EMPTY = Buffer.alloc(0);

/** Adds a field to a header object the way Node's HTTP/2 does: repeats joined, set-cookie an array. */
export function addHeaderValue(headers: Record<string, string | string[] | number | undefined>, name: string, value: string): void {
  const previous = headers[name];
  if (previous === undefined) headers[name] = name === 'set-cookie' ? [value] : value;
  else if (Array.isArray(previous)) previous.push(value);
  else headers[name] = `${String(previous)}${name === 'cookie' ? '; ' : ', '}${value}`;
}

export abstract class H2Connection<S extends H2Stream> extends EventEmitter {
  remoteSettings: RemoteSettings | undefined;
  /** No new streams (GOAWAY sent or received, or close() called). */
  closed = false;
  destroyed = false;
  protected readonly streams = new StreamTable<S>();
  protected sentGoaway = false;
  protected readonly encoder = new HpackEncoder();
  private sendWindow = DEFAULT_WINDOW;
  /** What the peer may still send on the connection before we give credit back. */
  private recvWindow: number;
  /** Bytes read (or dropped with their stream) and not yet credited back to the connection. */
  private connectionCredit = 0;
  private buffered: Buffer | undefined;
  /** `continuations`: CONTINUATION frames so far (the HEADERS frame is not one of them). */
  private headerBlock: { streamId: number; endStream: boolean; parts: Buffer[]; size: number; continuations: number } | undefined;
  private readonly decoder: HpackDecoder;
  private readonly pings: Array<{ seq: number; started: number; callback: (error: Error | null, durationMs: number) => void }> = [];
  private pingSeq = 0;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private flushScheduled = false;
  private blocked: S[] = [];
  /** Bytes of the peer's connection preface still expected (the server role reads the client's). */
  private prefaceLeft: Buffer | undefined;

  /** Who the peer is, for error messages ("the peer gateway", "the calling gateway"). */
  abstract readonly peerName: string;
  /** The last stream ID we will have processed, for the GOAWAY we send. */
  protected abstract lastProcessedStreamId(): number;
  /** A stream ID the peer could not have used yet (a frame on it is a protocol error). */
  protected abstract isIdle(streamId: number): boolean;
  /** A complete header list for a stream: a new stream, a response or trailers. */
  protected abstract onHeaderList(streamId: number, headers: IncomingHttpHeaders, endStream: boolean, withinLimit: boolean): void;
  /** One decoded field into the list being built; the server role also validates it. */
  protected abstract addField(headers: IncomingHttpHeaders, name: string, value: string): void;
  /** Whether we opened this stream (a GOAWAY above its ID means the peer never processed it). */
  protected abstract initiatedLocally(streamId: number): boolean;

  constructor(
    readonly socket: Socket,
    protected readonly options: H2ConnectionOptions,
    role: { localSettings: ReadonlyArray<readonly [number, number]>; sendPreface?: Buffer; expectPreface?: Buffer },
  ) {
    super();
    this.decoder = new HpackDecoder(4096, options.maxHeaderListSize);
    this.recvWindow = Math.max(options.sessionWindowSize, DEFAULT_WINDOW);
    this.prefaceLeft = role.expectPreface;
    // Frames of one event-loop turn already leave in one write (`flush`); Nagle would only hold
    // back the small ones (WINDOW_UPDATE, PING ACK, a last DATA) for the peer's delayed ACK.
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (error: Error) => this.destroy(error));
    socket.on('close', () => this.destroy());
    if (role.sendPreface) this.write(role.sendPreface);
    this.write(settingsFrame([...role.localSettings, [Setting.INITIAL_WINDOW_SIZE, options.initialWindowSize], [Setting.MAX_HEADER_LIST_SIZE, options.maxHeaderListSize]]));
    if (options.sessionWindowSize > DEFAULT_WINDOW) this.write(windowUpdateFrame(0, options.sessionWindowSize - DEFAULT_WINDOW));
  }

  /** Streams open on the wire. */
  get openStreams(): number {
    return this.streams.size;
  }

  /** Sends a PING; the callback gets the round trip in milliseconds. False when too many are unanswered. */
  ping(callback: (error: Error | null, durationMs: number) => void): boolean {
    if (this.destroyed || this.pings.length >= MAX_OUTSTANDING_PINGS) return false;
    const seq = ++this.pingSeq;
    const buf = frame(FrameType.PING, 0, 0, 8);
    buf.writeUInt32BE(0, FRAME_HEADER_BYTES);
    buf.writeUInt32BE(seq >>> 0, FRAME_HEADER_BYTES + 4);
    this.pings.push({ seq: seq >>> 0, started: performance.now(), callback });
    this.write(buf);
    return true;
  }

  /** Graceful: no new streams; the connection ends once the open ones are done. */
  close(): void {
    if (this.closed || this.destroyed) {
      if (!this.destroyed && this.streams.size === 0) this.end();
      return;
    }
    this.closed = true;
    this.sentGoaway = true;
    this.write(goawayFrame(this.lastProcessedStreamId(), ErrorCode.NO_ERROR));
    if (this.streams.size === 0) this.end();
  }

  /** Ends the connection at once; open streams fail (a fully received body can still be read). */
  destroy(error?: Error): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.closed = true;
    const reason = error ?? new Error(`the connection to ${this.peerName} closed`);
    for (const stream of this.streams.values()) stream.onSessionLost(reason);
    this.streams.clear();
    for (const ping of this.pings.splice(0)) ping.callback(reason, 0);
    this.blocked = [];
    this.pending = [];
    this.pendingBytes = 0;
    clearTimeout(this.headerTimer);
    this.socket.destroy();
    if (error && this.listenerCount('error') > 0) this.emit('error', error);
    process.nextTick(() => this.emit('close'));
  }

  unref(): void {
    this.socket.unref();
  }

  /** Sends RST_STREAM for a stream still open on the wire, and forgets it. */
  resetStream(stream: H2Stream, code: number): void {
    if (this.streams.get(stream.id) !== stream) return;
    this.forget(stream);
    if (!this.destroyed) this.write(rstStreamFrame(stream.id, code));
  }

  /** Body bytes, within the peer's flow-control windows; the callback runs once all are sent. */
  sendData(stream: H2Stream, chunk: Buffer, end: boolean, callback: (error?: Error | null) => void): void {
    if (this.destroyed || this.streams.get(stream.id) !== stream) {
      // The peer closed the stream (an early response) or it was reset: the body is not wanted.
      callback();
      return;
    }
    const maxFrame = this.remoteSettings?.maxFrameSize ?? DEFAULT_MAX_FRAME_SIZE;
    let offset = 0;
    while (offset < chunk.length) {
      const room = Math.min(stream.sendWindow, this.sendWindow, maxFrame);
      if (room <= 0) {
        stream.pending = { chunk: offset === 0 ? chunk : chunk.subarray(offset), end, callback };
        this.blocked.push(stream as S);
        return;
      }
      const n = Math.min(room, chunk.length - offset);
      const last = offset + n === chunk.length;
      this.writeData(stream.id, n === chunk.length ? chunk : chunk.subarray(offset, offset + n), end && last);
      stream.sendWindow -= n;
      this.sendWindow -= n;
      offset += n;
    }
    if (chunk.length === 0 && end) this.writeData(stream.id, EMPTY, true);
    if (end) stream.onSentEnd();
    callback();
  }

  /** Sends a header block (response, request or trailers), split into CONTINUATION frames when large. */
  sendHeaders(stream: H2Stream, fields: readonly string[], endStream: boolean): void {
    if (this.destroyed || this.streams.get(stream.id) !== stream) return;
    this.writeHeaders(stream.id, this.encoder.encode(fields), endStream);
    if (endStream) stream.onSentEnd();
  }

  /** The consumer read what we had buffered: give the peer its window back. */
  replenish(stream: H2Stream): void {
    if (stream.recvUnacked === 0 || this.destroyed) return;
    const consumed = stream.recvUnacked;
    stream.recvUnacked = 0;
    if (this.streams.get(stream.id) === stream && !stream.remoteEnded) {
      this.write(windowUpdateFrame(stream.id, consumed));
      stream.recvWindow += consumed;
    }
    this.credit(consumed);
  }

  /**
   * Gives the connection window back for data the application has read (or that died with its
   * stream), not merely received: what is buffered and unread across all streams then stays
   * within the session window, however many streams a slow reader leaves full.
   */
  credit(bytes: number): void {
    this.connectionCredit += bytes;
    if (this.connectionCredit < this.options.sessionWindowSize / 2 || this.destroyed) return;
    this.write(windowUpdateFrame(0, this.connectionCredit));
    this.recvWindow += this.connectionCredit;
    this.connectionCredit = 0;
  }

  /** The stream ended on the wire (both directions done, or reset): nothing more to send or receive. */
  forget(stream: H2Stream): void {
    if (this.streams.get(stream.id) !== stream) return;
    this.streams.delete(stream.id);
    stream.wireClosed = true;
    stream.settlePending();
    stream.onWireClosed();
    if (this.closed && this.streams.size === 0 && !this.destroyed) this.end();
  }

  protected end(): void {
    // Our own GOAWAY tells the peer the connection is done even if it still holds streams it never
    // answered (those above its GOAWAY's last stream ID): without it Node's server keeps the
    // session open after our FIN.
    if (!this.sentGoaway) {
      this.sentGoaway = true;
      this.write(goawayFrame(this.lastProcessedStreamId(), ErrorCode.NO_ERROR));
    }
    // Let queued frames (GOAWAY, last DATA) leave before the FIN.
    this.flush();
    this.socket.end();
    setTimeout(() => this.destroy(), 1000).unref();
  }

  protected write(buf: Buffer): void {
    if (this.destroyed) return;
    // Frames leave once per event-loop turn, not once per tick: at load, the answers of many
    // upstream sockets arrive in one poll phase, and setImmediate (run right after it) sends them
    // all in one TLS record and one syscall instead of one each. Measured in docs/benchmarks.md.
    this.pending.push(buf);
    this.pendingBytes += buf.length;
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(this.flush);
    }
  }

  /** Sends what `write` queued; also called before the FIN so nothing queued is lost. */
  private readonly flush = (): void => {
    this.flushScheduled = false;
    if (this.pending.length === 0) return;
    const out = this.pending.length === 1 ? (this.pending[0] as Buffer) : Buffer.concat(this.pending, this.pendingBytes);
    this.pending = [];
    this.pendingBytes = 0;
    if (!this.socket.destroyed) this.socket.write(out);
  };

  protected writeHeaders(streamId: number, block: Buffer, endStream: boolean): void {
    const maxFrame = this.remoteSettings?.maxFrameSize ?? DEFAULT_MAX_FRAME_SIZE;
    const endFlag = endStream ? Flag.END_STREAM : 0;
    if (block.length <= maxFrame) {
      const head = Buffer.allocUnsafe(FRAME_HEADER_BYTES);
      writeFrameHeader(head, 0, FrameType.HEADERS, Flag.END_HEADERS | endFlag, streamId, block.length);
      this.write(head);
      this.write(block);
      return;
    }
    for (let offset = 0; offset < block.length; offset += maxFrame) {
      const part = block.subarray(offset, offset + maxFrame);
      const first = offset === 0;
      const last = offset + maxFrame >= block.length;
      const head = Buffer.allocUnsafe(FRAME_HEADER_BYTES);
      writeFrameHeader(head, 0, first ? FrameType.HEADERS : FrameType.CONTINUATION, (first ? endFlag : 0) | (last ? Flag.END_HEADERS : 0), streamId, part.length);
      this.write(head);
      this.write(part);
    }
  }

  private writeData(streamId: number, payload: Buffer, endStream: boolean): void {
    const head = Buffer.allocUnsafe(FRAME_HEADER_BYTES);
    writeFrameHeader(head, 0, FrameType.DATA, endStream ? Flag.END_STREAM : 0, streamId, payload.length);
    this.write(head);
    if (payload.length > 0) this.write(payload);
  }

  private onData(chunk: Buffer): void {
    if (this.destroyed) return;
    let buf = this.buffered ? Buffer.concat([this.buffered, chunk]) : chunk;
    let offset = 0;
    try {
      if (this.prefaceLeft) {
        const preface = this.prefaceLeft;
        const n = Math.min(preface.length, buf.length);
        if (!buf.subarray(0, n).equals(preface.subarray(0, n))) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, 'the connection does not start with the HTTP/2 preface');
        this.prefaceLeft = n === preface.length ? undefined : preface.subarray(n);
        buf = buf.subarray(n);
      }
      while (buf.length - offset >= FRAME_HEADER_BYTES) {
        const length = ((buf[offset] as number) << 16) | ((buf[offset + 1] as number) << 8) | (buf[offset + 2] as number);
        // We never raise SETTINGS_MAX_FRAME_SIZE above its default.
        if (length > DEFAULT_MAX_FRAME_SIZE) throw new ConnectionError(ErrorCode.FRAME_SIZE_ERROR, `a ${length}-byte frame exceeds the maximum frame size`);
        if (buf.length - offset - FRAME_HEADER_BYTES < length) break;
        const type = buf[offset + 3] as number;
        const flags = buf[offset + 4] as number;
        const streamId = buf.readUInt32BE(offset + 5) & 0x7fffffff;
        const payload = buf.subarray(offset + FRAME_HEADER_BYTES, offset + FRAME_HEADER_BYTES + length);
        offset += FRAME_HEADER_BYTES + length;
        this.onFrame(type, flags, streamId, payload);
        if (this.destroyed) return;
      }
    } catch (error) {
      this.fail(error);
      return;
    }
    this.buffered = offset < buf.length ? buf.subarray(offset) : undefined;
  }

  /** Ends the connection for a protocol error: GOAWAY with the code and reason, then destroy. */
  protected fail(error: unknown): void {
    const code = error instanceof ConnectionError ? error.code : error instanceof HpackError ? ErrorCode.COMPRESSION_ERROR : ErrorCode.INTERNAL_ERROR;
    const message = error instanceof Error ? error.message : String(error);
    if (!this.destroyed) {
      this.sentGoaway = true;
      this.write(goawayFrame(this.lastProcessedStreamId(), code, message.slice(0, 200)));
      this.flush();
    }
    this.destroy(new Error(`HTTP/2 ${errorName(code)} from ${this.peerName}: ${message}`));
  }

  private onFrame(type: number, flags: number, streamId: number, payload: Buffer): void {
    if (this.headerBlock && type !== FrameType.CONTINUATION) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, 'a header block was interrupted by another frame');
    // Each side's connection preface ends with a SETTINGS frame (RFC 9113 §3.4).
    if (!this.remoteSettings && type !== FrameType.SETTINGS) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, 'the first frame is not SETTINGS');
    switch (type) {
      case FrameType.DATA:
        this.onDataFrame(flags, streamId, payload);
        return;
      case FrameType.HEADERS:
        this.onHeadersFrame(flags, streamId, payload);
        return;
      case FrameType.CONTINUATION:
        this.onContinuation(flags, streamId, payload);
        return;
      case FrameType.RST_STREAM: {
        if (streamId === 0) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, 'RST_STREAM on stream 0');
        if (payload.length !== 4) throw new ConnectionError(ErrorCode.FRAME_SIZE_ERROR, 'RST_STREAM payload is not 4 bytes');
        if (this.isIdle(streamId)) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, `RST_STREAM on idle stream ${streamId}`);
        const stream = this.streams.get(streamId);
        this.onPeerReset(stream);
        stream?.onReset(payload.readUInt32BE(0));
        return;
      }
      case FrameType.SETTINGS:
        this.onSettings(flags, streamId, payload);
        return;
      case FrameType.PING:
        this.onPing(flags, streamId, payload);
        return;
      case FrameType.GOAWAY:
        this.onGoaway(streamId, payload);
        return;
      case FrameType.WINDOW_UPDATE:
        this.onWindowUpdate(streamId, payload);
        return;
      case FrameType.PUSH_PROMISE:
        throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, 'PUSH_PROMISE although push is disabled');
      case FrameType.PRIORITY:
        if (payload.length !== 5) throw new ConnectionError(ErrorCode.FRAME_SIZE_ERROR, 'PRIORITY payload is not 5 bytes');
        return;
      default:
        // Unknown frame types are ignored (RFC 9113 §4.1).
        return;
    }
  }

  /** The peer reset a stream (the server role counts these against rapid-reset floods). */
  protected onPeerReset(_stream: S | undefined): void {}

  /** A DATA frame with nothing in it and no END_STREAM (the server role counts these against floods). */
  protected onEmptyData(): void {}

  private unpadded(flags: number, payload: Buffer, what: string): Buffer {
    if ((flags & Flag.PADDED) === 0) return payload;
    if (payload.length < 1) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, `padded ${what} without a pad length`);
    const pad = payload[0] as number;
    if (pad >= payload.length) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, `${what} padding longer than the frame`);
    return payload.subarray(1, payload.length - pad);
  }

  private onDataFrame(flags: number, streamId: number, payload: Buffer): void {
    if (streamId === 0) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, 'DATA on stream 0');
    // Flow control counts the whole frame payload, padding included.
    if (payload.length > this.recvWindow) throw new ConnectionError(ErrorCode.FLOW_CONTROL_ERROR, `${this.peerName} overran the connection window`);
    this.recvWindow -= payload.length;
    const endStream = (flags & Flag.END_STREAM) !== 0;
    const data = this.unpadded(flags, payload, 'DATA');
    // Padding alone carries nothing either: counted like an empty frame, or a flood would only
    // need one byte of pad length per frame to get past the budget.
    if (data.length === 0 && !endStream) this.onEmptyData();
    const stream = this.streams.get(streamId);
    if (!stream) {
      if (this.isIdle(streamId)) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, `DATA on idle stream ${streamId}`);
      // A stream we reset: frames in flight still arrive, and nobody will read them.
      this.credit(payload.length);
      return;
    }
    const refusal = stream.refusesData(payload.length);
    if (refusal) {
      this.credit(payload.length);
      this.resetStream(stream, refusal.code);
      stream.onProtocolError(refusal.message);
      return;
    }
    stream.recvWindow -= payload.length;
    stream.onBody(data, payload.length, endStream);
  }

  private onHeadersFrame(flags: number, streamId: number, payload: Buffer): void {
    if (streamId === 0 || streamId % 2 === 0) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, `HEADERS on stream ${streamId}`);
    let fragment = this.unpadded(flags, payload, 'HEADERS');
    if ((flags & Flag.PRIORITY) !== 0) {
      if (fragment.length < 5) throw new ConnectionError(ErrorCode.FRAME_SIZE_ERROR, 'HEADERS priority fields truncated');
      fragment = fragment.subarray(5);
    }
    const endStream = (flags & Flag.END_STREAM) !== 0;
    if ((flags & Flag.END_HEADERS) !== 0) {
      this.onHeaderBlock(streamId, endStream, fragment);
      return;
    }
    this.headerBlock = { streamId, endStream, parts: [fragment], size: fragment.length, continuations: 0 };
    // A peer that starts a block and goes quiet holds the connection until the idle timeout
    // (minutes); headers get seconds, as on the HTTP/1.1 listener (slowloris).
    this.headerTimer = setTimeout(() => this.fail(new ConnectionError(ErrorCode.PROTOCOL_ERROR, 'a header block was not finished in time')), this.options.headersTimeoutMs ?? 10_000);
    this.headerTimer.unref();
  }

  private headerTimer: NodeJS.Timeout | undefined;

  private onContinuation(flags: number, streamId: number, payload: Buffer): void {
    const block = this.headerBlock;
    if (!block || block.streamId !== streamId) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, 'CONTINUATION without a header block to continue');
    block.parts.push(payload);
    block.size += payload.length;
    block.continuations += 1;
    if (block.size > this.options.maxHeaderListSize * 2) throw new ConnectionError(ErrorCode.ENHANCE_YOUR_CALM, 'header block too large');
    if (block.continuations > MAX_CONTINUATIONS) throw new ConnectionError(ErrorCode.ENHANCE_YOUR_CALM, `a header block in more than ${MAX_CONTINUATIONS} CONTINUATION frames`);
    if ((flags & Flag.END_HEADERS) === 0) return;
    this.headerBlock = undefined;
    clearTimeout(this.headerTimer);
    this.onHeaderBlock(streamId, block.endStream, Buffer.concat(block.parts, block.size));
  }

  private onHeaderBlock(streamId: number, endStream: boolean, block: Buffer): void {
    const headers: IncomingHttpHeaders = Object.create(null) as IncomingHttpHeaders;
    this.decoding = headers;
    // Decoded even for a stream we no longer track: the HPACK table must stay in step with the peer.
    const withinLimit = this.decoder.decode(block, this.addDecoded);
    this.onHeaderList(streamId, headers, endStream, withinLimit);
  }

  private decoding: IncomingHttpHeaders = {};
  private readonly addDecoded = (name: string, value: string): void => this.addField(this.decoding, name, value);

  private onSettings(flags: number, streamId: number, payload: Buffer): void {
    if (streamId !== 0) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, 'SETTINGS on a stream');
    if ((flags & Flag.ACK) !== 0) {
      if (payload.length !== 0) throw new ConnectionError(ErrorCode.FRAME_SIZE_ERROR, 'SETTINGS ACK with a payload');
      return;
    }
    if (payload.length % 6 !== 0) throw new ConnectionError(ErrorCode.FRAME_SIZE_ERROR, 'SETTINGS payload is not a multiple of 6');
    this.guardControlAnswer();
    const first = !this.remoteSettings;
    const settings: RemoteSettings = this.remoteSettings ?? { headerTableSize: 4096, maxConcurrentStreams: 100, initialWindowSize: DEFAULT_WINDOW, maxFrameSize: DEFAULT_MAX_FRAME_SIZE, maxHeaderListSize: Infinity };
    for (let offset = 0; offset < payload.length; offset += 6) {
      const id = payload.readUInt16BE(offset);
      const value = payload.readUInt32BE(offset + 2);
      switch (id) {
        case Setting.HEADER_TABLE_SIZE:
          settings.headerTableSize = value;
          this.encoder.setMaxTableSize(value);
          break;
        case Setting.ENABLE_PUSH:
          if (value > 1) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, 'ENABLE_PUSH is not 0 or 1');
          break;
        case Setting.MAX_CONCURRENT_STREAMS:
          settings.maxConcurrentStreams = value;
          break;
        case Setting.INITIAL_WINDOW_SIZE: {
          if (value > MAX_WINDOW) throw new ConnectionError(ErrorCode.FLOW_CONTROL_ERROR, 'INITIAL_WINDOW_SIZE above 2^31-1');
          const delta = value - settings.initialWindowSize;
          settings.initialWindowSize = value;
          for (const stream of this.streams.values()) stream.sendWindow += delta;
          break;
        }
        case Setting.MAX_FRAME_SIZE:
          if (value < DEFAULT_MAX_FRAME_SIZE || value > 16_777_215) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, `MAX_FRAME_SIZE ${value} out of range`);
          settings.maxFrameSize = value;
          break;
        case Setting.MAX_HEADER_LIST_SIZE:
          settings.maxHeaderListSize = value;
          break;
        default:
          break; // unknown settings are ignored
      }
    }
    this.remoteSettings = settings;
    this.write(frame(FrameType.SETTINGS, Flag.ACK, 0, 0));
    this.flushBlocked();
    if (first) this.emit('connect', this);
  }

  private onPing(flags: number, streamId: number, payload: Buffer): void {
    if (streamId !== 0) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, 'PING on a stream');
    if (payload.length !== 8) throw new ConnectionError(ErrorCode.FRAME_SIZE_ERROR, 'PING payload is not 8 bytes');
    if ((flags & Flag.ACK) === 0) {
      this.guardControlAnswer();
      const ack = frame(FrameType.PING, Flag.ACK, 0, 8);
      payload.copy(ack, FRAME_HEADER_BYTES);
      this.write(ack);
      return;
    }
    const seq = payload.readUInt32BE(4);
    const index = this.pings.findIndex((p) => p.seq === seq);
    if (index === -1) return;
    const [ping] = this.pings.splice(index, 1);
    if (ping) ping.callback(null, performance.now() - ping.started);
  }

  private guardControlAnswer(): void {
    if (this.socket.writableLength + this.pendingBytes > MAX_UNREAD_CONTROL_BYTES) {
      throw new ConnectionError(ErrorCode.ENHANCE_YOUR_CALM, `${this.peerName} keeps asking for answers it does not read`);
    }
  }

  private onGoaway(streamId: number, payload: Buffer): void {
    if (streamId !== 0) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, 'GOAWAY on a stream');
    if (payload.length < 8) throw new ConnectionError(ErrorCode.FRAME_SIZE_ERROR, 'GOAWAY payload shorter than 8 bytes');
    const lastStreamId = payload.readUInt32BE(0) & 0x7fffffff;
    const code = payload.readUInt32BE(4);
    this.closed = true;
    // Streams we opened above lastStreamId were never processed: safe to send again elsewhere.
    for (const stream of [...this.streams.values()]) {
      if (!this.initiatedLocally(stream.id) || stream.id <= lastStreamId) continue;
      // The peer may still hold such a stream (Node's server does, and then never closes the
      // session): cancel it there, and report it here as refused.
      stream.rstCode = ErrorCode.REFUSED_STREAM;
      this.resetStream(stream, ErrorCode.CANCEL);
      stream.onReset(ErrorCode.REFUSED_STREAM);
    }
    this.emit('goaway', code, lastStreamId, payload.subarray(8));
    if (this.streams.size === 0) this.end();
  }

  private onWindowUpdate(streamId: number, payload: Buffer): void {
    if (payload.length !== 4) throw new ConnectionError(ErrorCode.FRAME_SIZE_ERROR, 'WINDOW_UPDATE payload is not 4 bytes');
    const increment = payload.readUInt32BE(0) & 0x7fffffff;
    if (streamId === 0) {
      if (increment === 0) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, 'WINDOW_UPDATE of 0 on the connection');
      this.sendWindow += increment;
      if (this.sendWindow > MAX_WINDOW) throw new ConnectionError(ErrorCode.FLOW_CONTROL_ERROR, 'connection window above 2^31-1');
    } else {
      const stream = this.streams.get(streamId);
      if (!stream) {
        if (this.isIdle(streamId)) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, `WINDOW_UPDATE on idle stream ${streamId}`);
        return;
      }
      if (increment === 0 || stream.sendWindow + increment > MAX_WINDOW) {
        this.resetStream(stream, increment === 0 ? ErrorCode.PROTOCOL_ERROR : ErrorCode.FLOW_CONTROL_ERROR);
        stream.onProtocolError(`bad WINDOW_UPDATE from ${this.peerName}`);
        return;
      }
      stream.sendWindow += increment;
    }
    this.flushBlocked();
  }

  private flushBlocked(): void {
    if (this.blocked.length === 0) return;
    const blocked = this.blocked;
    this.blocked = [];
    for (const stream of blocked) {
      const pending = stream.pending;
      if (!pending) continue;
      stream.pending = undefined;
      this.sendData(stream, pending.chunk, pending.end, pending.callback);
    }
  }
}

/** What a stream needs of its connection. */
interface StreamOwner {
  readonly peerName: string;
  resetStream(stream: H2Stream, code: number): void;
  sendData(stream: H2Stream, chunk: Buffer, end: boolean, callback: (error?: Error | null) => void): void;
  replenish(stream: H2Stream): void;
  credit(bytes: number): void;
  forget(stream: H2Stream): void;
}

/**
 * One HTTP/2 stream as a Duplex: the writable side is what we send (a request or response body),
 * the readable side what the peer sends. `rstCode` says how a stream that ended early was reset
 * (REFUSED_STREAM: the peer never processed it).
 */
export abstract class H2Stream extends Duplex implements DirectBody {
  rstCode: number | undefined;
  sentEnd = false;
  remoteEnded = false;
  /** The stream is no longer open on the connection (ended both ways, reset, or the session died). */
  wireClosed = false;
  recvUnacked = 0;
  pending: { chunk: Buffer; end: boolean; callback: (error?: Error | null) => void } | undefined;
  /** Our initial receive window: the peer gets credit back once half of it is used and read. */
  private readonly windowTarget: number;
  /** Set when the body is delivered straight to a relay (see DirectBody) instead of pushed. */
  private delivery: Delivery | undefined;

  /**
   * @param sides `{ writable: false }` for a stream whose sending side ended with its headers: it
   *   starts finished, without end()'s steps.
   */
  constructor(
    protected readonly connection: StreamOwner,
    readonly id: number,
    public sendWindow: number,
    public recvWindow: number,
    sides?: { writable: false },
  ) {
    // Node's Duplex takes `writable: false` (the side starts finished); @types/node 20 does not list it.
    super(sides as DuplexOptions | undefined);
    this.windowTarget = recvWindow;
  }

  deliverTo(onChunk: (chunk: Buffer) => boolean, onEnd: () => void): boolean {
    if (this.delivery) return false;
    this.delivery = startDelivery(this, this.remoteEnded, onChunk, onEnd);
    return this.delivery !== undefined;
  }

  resumeDelivery(): void {
    const delivery = this.delivery;
    if (!delivery || !delivery.held) return;
    delivery.held = false;
    if (this.recvWindow <= this.windowTarget / 2) this.connection.replenish(this);
  }

  /** Headers after the stream opened: a response (client role) or trailers. */
  abstract onHeaders(headers: IncomingHttpHeaders, endStream: boolean, withinLimit: boolean): void;

  /** Why DATA of this length may not arrive now (a flow-control or protocol error), if it may not. */
  abstract refusesData(length: number): { code: number; message: string } | undefined;

  /** We sent END_STREAM. */
  onSentEnd(): void {
    this.sentEnd = true;
    if (this.remoteEnded) this.connection.forget(this);
  }

  /** The connection no longer tracks this stream. */
  onWireClosed(): void {}

  /** Resets the stream with `code` (CANCEL when giving up) and destroys it. */
  close(code: number = ErrorCode.CANCEL): void {
    if (this.rstCode === undefined) this.rstCode = code;
    this.connection.resetStream(this, code);
    if (!this.destroyed) this.destroy();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.connection.sendData(this, chunk, false, callback);
  }

  override _final(callback: (error?: Error | null) => void): void {
    if (this.sentEnd) callback();
    else this.connection.sendData(this, EMPTY, true, callback);
  }

  override _read(): void {
    if (this.recvWindow <= this.windowTarget / 2) this.connection.replenish(this);
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    // Whatever this stream received is read or dropped now: the connection gets it back.
    if (this.recvUnacked > 0) {
      this.connection.credit(this.recvUnacked);
      this.recvUnacked = 0;
    }
    if (!this.wireClosed) {
      if (this.rstCode === undefined) this.rstCode = error ? ErrorCode.INTERNAL_ERROR : ErrorCode.CANCEL;
      this.connection.resetStream(this, this.rstCode);
    }
    this.settlePending(error);
    callback(error);
  }

  onBody(data: Buffer, counted: number, endStream: boolean): void {
    if (this.destroyed) {
      this.connection.credit(counted);
      return;
    }
    this.recvUnacked += counted;
    const delivery = this.delivery;
    if (delivery) {
      // Handed on: the bytes count as read, and credit goes back unless the relay's sink is full.
      if (data.length > 0 && !delivery.onChunk(data)) delivery.held = true;
      if (endStream) this.onRemoteEnd();
      else if (!delivery.held && this.recvWindow <= this.windowTarget / 2) this.connection.replenish(this);
      return;
    }
    const wantsMore = data.length === 0 || this.push(data);
    if (endStream) this.onRemoteEnd();
    else if (wantsMore && this.recvWindow <= this.windowTarget / 2) this.connection.replenish(this);
  }

  onReset(code: number): void {
    if (this.rstCode === undefined) this.rstCode = code;
    this.connection.forget(this);
    if (this.destroyed) return;
    if (code === ErrorCode.NO_ERROR || code === ErrorCode.CANCEL || code === ErrorCode.REFUSED_STREAM) this.destroy();
    else this.destroy(new Error(`stream reset by ${this.connection.peerName}: ${errorName(code)}`));
  }

  onProtocolError(message: string): void {
    if (this.rstCode === undefined) this.rstCode = ErrorCode.PROTOCOL_ERROR;
    if (!this.destroyed) this.destroy(new Error(`${this.connection.peerName} broke HTTP/2: ${message}`));
  }

  /** A body write waiting for flow-control window will never be sent: release the writer. */
  settlePending(error?: Error | null): void {
    const pending = this.pending;
    if (!pending) return;
    this.pending = undefined;
    pending.callback(error);
  }

  onSessionLost(reason: Error): void {
    this.wireClosed = true;
    this.settlePending(reason);
    if (this.remoteEnded || this.destroyed) return;
    if (this.rstCode === undefined) this.rstCode = ErrorCode.INTERNAL_ERROR;
    this.destroy(reason);
  }

  protected onRemoteEnd(): void {
    this.remoteEnded = true;
    // A destroyed stream's body stopped short: neither a reader nor a relay sees its end.
    if (!this.destroyed) {
      if (this.delivery) endDelivery(this, this.delivery);
      else this.push(null);
    }
    if (this.sentEnd) this.connection.forget(this);
  }
}
