import { EventEmitter } from 'node:events';
import type { IncomingHttpHeaders } from 'node:http2';
import type { Socket } from 'node:net';
import { Duplex, type DuplexOptions } from 'node:stream';
import { endDelivery, startDelivery, type Delivery, type DirectBody } from './direct-body.js';
import { HpackDecoder, HpackEncoder, HpackError } from './hpack.js';
import { connectionError, Http2Error } from './http2-error.js';
import { resolveConnectionLimits, TokenBucket, type H2ConnectionLimits, type H2LimitKind, type H2LimitScope } from './limits.js';
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
 * frame reader, HPACK, SETTINGS, PING, GOAWAY, flow control in both directions, the write queue
 * and the streams' Duplex. Node 20's HTTP/2 allocates so much per stream (copies of headers and
 * options, async resources, a JS stream over a native nghttp2 stream) that the gateways' scavenges
 * took 3–15 ms under load; here a stream is one Duplex, one header object and the frames
 * themselves. The client role (H2ClientSession) opens streams, the server role (H2ServerSession)
 * accepts them.
 *
 * Backpressure, end to end (issue 28, finding 2). Frames queue in `pending` and leave once per
 * event-loop turn; the connection counts what is queued, its own and the socket's. From
 * maxWriteQueueBytes on, it stops producing: DATA is held with its writer's callback (the writer's
 * Writable buffers, its relay stops reading upstream), and streams that finish meanwhile keep
 * counting against the concurrent-stream limit until the socket drains, so a peer that never
 * reads cannot have stream after stream answered into memory. Above writeQueueHardLimitBytes, or
 * above the soft cap for writeStallTimeoutMs, the connection ends (GOAWAY ENHANCE_YOUR_CALM).
 * Header blocks and control frames are never held (HPACK state and stream IDs must reach the peer
 * in the order they were made); they are bounded by the stream limit and the hard cap.
 *
 * Reading is never paused for backpressure: a peer may itself stop reading while its own write is
 * in progress (Node's HTTP/2 does, `MaybeStopReading`), and two ends that both wait for the other
 * to read would wait forever. Everything read is bounded anyway: DATA by our windows, header
 * blocks by maxHeaderListSize, streams by the stream limit, answers by the hard cap.
 */

export interface RemoteSettings {
  readonly headerTableSize: number;
  readonly maxConcurrentStreams: number;
  readonly initialWindowSize: number;
  readonly maxFrameSize: number;
  readonly maxHeaderListSize: number;
}

export interface H2ConnectionOptions extends Partial<H2ConnectionLimits> {
  /** Our receive window per stream (SETTINGS_INITIAL_WINDOW_SIZE). */
  initialWindowSize: number;
  /** Our receive window for the whole connection. */
  sessionWindowSize: number;
  /**
   * Largest header list we accept (SETTINGS_MAX_HEADER_LIST_SIZE, name + value + 32 per field); a
   * larger one fails its stream only (431 in the server role). Default 64 KiB.
   */
  maxHeaderListSize?: number;
}

const DEFAULT_MAX_HEADER_LIST_SIZE = 64 * 1024;

const MAX_OUTSTANDING_PINGS = 10;
/** CONTINUATION frames per header block: a legitimate block needs one or two (CVE-2024-27316 floods with thousands). */
const MAX_CONTINUATIONS = 16;
/** Streams the peer closed (END_STREAM or RST_STREAM) that we remember, to answer frames on them with STREAM_CLOSED. */
const CLOSED_BY_PEER_MEMORY = 64;
export const EMPTY = Buffer.alloc(0);

/** Adds a field to a header object the way Node's HTTP/2 does: repeats joined, set-cookie an array. */
export function addHeaderValue(headers: Record<string, string | string[] | number | undefined>, name: string, value: string): void {
  const previous = headers[name];
  if (previous === undefined) headers[name] = name === 'set-cookie' ? [value] : value;
  else if (Array.isArray(previous)) previous.push(value);
  else headers[name] = `${String(previous)}${name === 'cookie' ? '; ' : ', '}${value}`;
}

/** Why DATA waits: no room in the write queue, no window on the connection, or none on the stream. */
type HoldReason = 'backlog' | 'connection-window' | 'stream-window';

export abstract class H2Connection<S extends H2Stream> extends EventEmitter {
  protected readonly streams = new StreamTable<S>();
  protected sentGoaway = false;
  protected readonly encoder = new HpackEncoder();
  protected readonly limits: Readonly<H2ConnectionLimits>;
  protected readonly maxHeaderListSize: number;
  /**
   * Streams that finished while the write queue was backlogged: their last frames have not reached
   * the socket, so they still count against the stream limit until it drains.
   */
  protected lingering = 0;
  private settings: RemoteSettings | undefined;
  /** No new streams (GOAWAY sent or received, or close() called). */
  private noNewStreams = false;
  private tornDown = false;
  /** end() sent our FIN: nothing more can be written. */
  private finSent = false;
  /** fail() is under way (its own flush must not fail the connection a second time). */
  private failing = false;
  private sendWindow = DEFAULT_WINDOW;
  /** What the peer may still send on the connection before we give credit back. */
  private recvWindow: number;
  /** Bytes read (or dropped with their stream) and not yet credited back to the connection. */
  private connectionCredit = 0;
  private buffered: Buffer | undefined;
  /** `continuations`: CONTINUATION frames so far (the HEADERS frame is not one of them). */
  private headerBlock: { streamId: number; endStream: boolean; parts: Buffer[]; size: number; continuations: number } | undefined;
  private headerTimer: NodeJS.Timeout | undefined;
  private readonly decoder: HpackDecoder;
  private readonly pings: Array<{ seq: number; started: number; callback: (error: Error | null, durationMs: number) => void }> = [];
  private pingSeq = 0;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private flushScheduled = false;
  /**
   * The socket's own buffer as of the last flush: it only shrinks between flushes, so this is an
   * upper bound, and its 'drain' (it emptied) resets it.
   */
  private socketQueued = 0;
  /** The most bytes ever queued at once (as seen at each flush). */
  private queuePeak = 0;
  /** socketQueued reached maxWriteQueueBytes: a stall episode, timed by stallTimer, ended by 'drain'. */
  private socketFull = false;
  private stallTimer: NodeJS.Timeout | undefined;
  /** DATA was held for want of room in the queue (not of window): released when the queue drains. */
  private heldForBacklog = false;
  /** Streams holding DATA for want of connection window or queue room, oldest first, from `blockedHead`. */
  private blocked: S[] = [];
  private blockedHead = 0;
  private zeroWindowTimer: NodeJS.Timeout | undefined;
  /** We sent DATA since the peer's last PING: that PING is a bandwidth probe (gRPC BDP), not a flood. */
  private dataSinceLastPing = false;
  private readonly settingsBudget: TokenBucket;
  private readonly pingBudget: TokenBucket;
  private readonly closedByPeer = new Int32Array(CLOSED_BY_PEER_MEMORY);
  private closedByPeerNext = 0;
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
    this.limits = resolveConnectionLimits(options);
    this.maxHeaderListSize = options.maxHeaderListSize ?? DEFAULT_MAX_HEADER_LIST_SIZE;
    this.settingsBudget = new TokenBucket(this.limits.settingsBurst, this.limits.settingsRatePerSecond);
    this.pingBudget = new TokenBucket(this.limits.pingBurst, this.limits.pingRatePerSecond);
    this.decoder = new HpackDecoder(4096, this.maxHeaderListSize);
    this.recvWindow = Math.max(options.sessionWindowSize, DEFAULT_WINDOW);
    this.prefaceLeft = role.expectPreface;
    // Frames of one event-loop turn already leave in one write (`flush`); Nagle would only hold
    // back the small ones (WINDOW_UPDATE, PING ACK, a last DATA) for the peer's delayed ACK.
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('drain', this.onDrain);
    socket.on('error', (error: Error) => this.destroy(error));
    socket.on('close', () => this.destroy());
    if (role.sendPreface) this.write(role.sendPreface);
    this.write(settingsFrame([...role.localSettings, [Setting.INITIAL_WINDOW_SIZE, options.initialWindowSize], [Setting.MAX_HEADER_LIST_SIZE, this.maxHeaderListSize]]));
    if (options.sessionWindowSize > DEFAULT_WINDOW) this.write(windowUpdateFrame(0, options.sessionWindowSize - DEFAULT_WINDOW));
  }

  /** The peer's settings, once its first SETTINGS frame arrived. */
  get remoteSettings(): RemoteSettings | undefined {
    return this.settings;
  }

  /** No new streams: GOAWAY sent or received, close() called, or the connection is gone. */
  get closed(): boolean {
    return this.noNewStreams;
  }

  get destroyed(): boolean {
    return this.tornDown;
  }

  /** Streams open on the wire. */
  get openStreams(): number {
    return this.streams.size;
  }

  /** Bytes queued for the peer: what this connection holds for its next write plus the socket's own buffer. */
  get queuedBytes(): number {
    return this.pendingBytes + (this.socket.destroyed ? 0 : this.socket.writableLength);
  }

  /** Octets in the HPACK table we decode the peer's header blocks with (bounded by our 4,096-octet SETTINGS_HEADER_TABLE_SIZE). */
  get decoderTableBytes(): number {
    return this.decoder.tableSize;
  }

  /** The most bytes this connection ever had queued for the peer at once (a gauge for the write-queue limit). */
  get peakQueuedBytes(): number {
    return this.queuePeak;
  }

  /** The write queue is at its cap: DATA waits, and so do finished streams' slots (see the top of this file). */
  get congested(): boolean {
    return this.pendingBytes + this.socketQueued >= this.limits.maxWriteQueueBytes;
  }

  /** Outgoing bytes one stream may buffer before it is reset ('stream-buffer'). */
  get maxStreamBufferedBytes(): number {
    return this.limits.maxStreamBufferedBytes;
  }

  /** Sends a PING; the callback gets the round trip in milliseconds. False when too many are unanswered. */
  ping(callback: (error: Error | null, durationMs: number) => void): boolean {
    if (this.tornDown || this.pings.length >= MAX_OUTSTANDING_PINGS) return false;
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
    if (this.noNewStreams || this.tornDown) {
      if (!this.tornDown && this.streams.size === 0) this.end();
      return;
    }
    this.noNewStreams = true;
    this.sentGoaway = true;
    this.write(goawayFrame(this.lastProcessedStreamId(), ErrorCode.NO_ERROR));
    if (this.streams.size === 0) this.end();
  }

  /** Ends the connection at once; open streams fail (a fully received body can still be read). */
  destroy(error?: Error): void {
    if (this.tornDown) return;
    this.tearDown(error);
    this.socket.destroy();
  }

  unref(): void {
    this.socket.unref();
  }

  /** Sends RST_STREAM for a stream still open on the wire, and forgets it. */
  resetStream(stream: H2Stream, code: number): void {
    if (this.streams.get(stream.id) !== stream) return;
    this.forget(stream);
    if (!this.tornDown) this.write(rstStreamFrame(stream.id, code));
  }

  /**
   * Body bytes, within the peer's flow-control windows and the write queue's cap. The callback runs
   * once all of them are in the write queue below its cap (it leaves in this event-loop turn);
   * while the peer does not read, or gives no window, the bytes and the callback are held.
   */
  sendData(stream: H2Stream, chunk: Buffer, end: boolean, callback: (error?: Error | null) => void): void {
    if (this.tornDown || this.streams.get(stream.id) !== stream) {
      // The peer closed the stream (an early response) or it was reset: the body is not wanted.
      callback();
      return;
    }
    const maxFrame = this.settings?.maxFrameSize ?? DEFAULT_MAX_FRAME_SIZE;
    const cap = this.limits.maxWriteQueueBytes;
    let offset = 0;
    while (offset < chunk.length) {
      if (this.pendingBytes + this.socketQueued >= cap) {
        this.hold(stream, chunk, offset, end, callback, 'backlog');
        return;
      }
      const streamRoom = stream.sendWindow;
      if (streamRoom <= 0) {
        this.hold(stream, chunk, offset, end, callback, 'stream-window');
        return;
      }
      const room = Math.min(streamRoom, this.sendWindow, maxFrame);
      if (room <= 0) {
        this.hold(stream, chunk, offset, end, callback, 'connection-window');
        return;
      }
      const n = Math.min(room, chunk.length - offset);
      const last = offset + n === chunk.length;
      this.writeData(stream.id, n === chunk.length ? chunk : chunk.subarray(offset, offset + n), end && last);
      stream.consumeSendWindow(n);
      this.sendWindow -= n;
      offset += n;
    }
    if (chunk.length === 0 && end) this.writeData(stream.id, EMPTY, true);
    if (end) stream.onSentEnd();
    callback();
  }

  /** Sends a header block (response, request or trailers), split into CONTINUATION frames when large. */
  sendHeaders(stream: H2Stream, fields: readonly string[], endStream: boolean): void {
    if (this.tornDown || this.streams.get(stream.id) !== stream) return;
    this.writeHeaders(stream.id, this.encoder.encode(fields), endStream);
    if (endStream) stream.onSentEnd();
  }

  /** The consumer read what we had buffered: give the peer its window back. */
  replenish(stream: H2Stream): void {
    if (this.tornDown) return;
    const consumed = stream.takeUnacknowledged();
    if (consumed === 0) return;
    if (this.streams.get(stream.id) === stream && !stream.remoteEnded) {
      this.write(windowUpdateFrame(stream.id, consumed));
      stream.growRecvWindow(consumed);
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
    if (this.connectionCredit < this.options.sessionWindowSize / 2 || this.tornDown) return;
    this.write(windowUpdateFrame(0, this.connectionCredit));
    this.recvWindow += this.connectionCredit;
    this.connectionCredit = 0;
  }

  /** The stream ended on the wire (both directions done, or reset): nothing more to send or receive. */
  forget(stream: H2Stream): void {
    if (this.streams.get(stream.id) !== stream) return;
    this.streams.delete(stream.id);
    if (stream.remoteEnded || stream.resetByPeer) this.closedByPeer[this.closedByPeerNext++ % CLOSED_BY_PEER_MEMORY] = stream.id;
    // A stream the peer reset is closed for the peer already: it may open another in its place.
    if (!stream.resetByPeer && this.pendingBytes + this.socketQueued >= this.limits.maxWriteQueueBytes) this.lingering += 1;
    stream.onLeftWire();
    if (this.noNewStreams && this.streams.size === 0 && !this.tornDown) this.end();
  }

  /** A stream's writer buffered more than maxStreamBufferedBytes: the stream is reset. */
  overflow(stream: H2Stream): void {
    if (this.streams.get(stream.id) !== stream) return;
    this.refused('stream-buffer', 'stream');
    // Destroying resets the stream with the noted code; resetStream covers one destroyed already.
    stream.failWith(new Http2Error('stream', ErrorCode.ENHANCE_YOUR_CALM, `a stream to ${this.peerName} buffered more than ${this.limits.maxStreamBufferedBytes} bytes`, 'local', 'stream-buffer'));
    this.resetStream(stream, ErrorCode.ENHANCE_YOUR_CALM);
  }

  /** Reports a refusal by one of the limits as a 'limit' event (the gateway counts these per kind). */
  refused(kind: H2LimitKind, scope: H2LimitScope): void {
    this.emit('limit', kind, scope);
  }

  protected end(): void {
    // Our own GOAWAY tells the peer the connection is done even if it still holds streams it never
    // answered (those above its GOAWAY's last stream ID): without it Node's server keeps the
    // session open after our FIN.
    if (!this.sentGoaway) {
      this.sentGoaway = true;
      this.write(goawayFrame(this.lastProcessedStreamId(), ErrorCode.NO_ERROR));
    }
    // Let queued frames (GOAWAY, last DATA) leave before the FIN; nothing can follow it (a PING
    // answer to a frame read after our GOAWAY would be a write after end).
    this.flush();
    this.finSent = true;
    this.socket.end();
    setTimeout(() => this.destroy(), this.limits.closeTimeoutMs).unref();
  }

  protected write(buf: Buffer): void {
    if (this.tornDown || this.finSent) return;
    // Frames leave once per event-loop turn, not once per tick: at load, the answers of many
    // upstream sockets arrive in one poll phase, and setImmediate (run right after it) sends them
    // all in one TLS record and one syscall instead of one each. Measured in docs/perf-notes/dataplane.md.
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
    if (this.pendingBytes + this.socketQueued > this.queuePeak) this.queuePeak = this.pendingBytes + this.socketQueued;
    const out = this.pending.length === 1 ? (this.pending[0] as Buffer) : Buffer.concat(this.pending, this.pendingBytes);
    this.pending = [];
    this.pendingBytes = 0;
    if (this.socket.destroyed || this.socket.writableEnded) return;
    this.socket.write(out);
    const queued = this.socket.writableLength;
    this.socketQueued = queued;
    if (queued > this.queuePeak) this.queuePeak = queued;
    if (queued >= this.limits.maxWriteQueueBytes) {
      if (queued > this.limits.writeQueueHardLimitBytes && !this.failing) {
        this.fail(connectionError(ErrorCode.ENHANCE_YOUR_CALM, `${this.peerName} does not read: ${queued} bytes queued`, 'write-queue'));
        return;
      }
      if (!this.socketFull) {
        // The socket's 'drain' (it follows a write() that returned false, as this one did) ends it.
        this.socketFull = true;
        if (this.stallTimer) this.stallTimer.refresh();
        else {
          this.stallTimer = setTimeout(this.onStall, this.limits.writeStallTimeoutMs);
          this.stallTimer.unref();
        }
      }
    } else if (this.heldForBacklog || this.lingering > 0) {
      this.release();
    }
  };

  private readonly onDrain = (): void => {
    this.socketQueued = 0;
    this.socketFull = false;
    if (this.heldForBacklog || this.lingering > 0) this.release();
  };

  private readonly onStall = (): void => {
    // Refreshed each time the socket filled: it fires a full timeout after the latest episode began.
    if (!this.socketFull || this.failing) return;
    this.fail(connectionError(ErrorCode.ENHANCE_YOUR_CALM, `${this.peerName} read nothing for ${this.limits.writeStallTimeoutMs} ms with ${this.queuedBytes} bytes queued`, 'write-queue'));
  };

  /** The queue has room again: finished streams free their slots, held DATA goes out. */
  private release(): void {
    this.lingering = 0;
    if (this.heldForBacklog) {
      this.heldForBacklog = false;
      this.flushBlocked();
    }
  }

  /** Ends the connection for a protocol error or a limit: GOAWAY with the code and reason, then the socket. */
  protected fail(error: unknown): void {
    if (this.tornDown || this.failing) return;
    this.failing = true;
    const failure = error instanceof Http2Error ? error : error instanceof HpackError ? connectionError(ErrorCode.COMPRESSION_ERROR, error.message) : connectionError(ErrorCode.INTERNAL_ERROR, error instanceof Error ? error.message : String(error));
    if (failure.limit) this.refused(failure.limit, 'connection');
    this.noNewStreams = true;
    this.sentGoaway = true;
    this.write(goawayFrame(this.lastProcessedStreamId(), failure.http2Code, failure.message.slice(0, 200)));
    this.flush();
    this.tearDown(new Http2Error('connection', failure.http2Code, `HTTP/2 ${errorName(failure.http2Code)} from ${this.peerName}: ${failure.message}`, 'local', failure.limit));
    // The GOAWAY (and what was queued before it) must reach the peer: destroying the socket now
    // would drop whatever it still buffers, and closing it with unread input sends an RST that can
    // make the peer's kernel discard it. End it instead; drop it only if that takes too long (a
    // peer that does not read at all). Input arriving meanwhile is read and discarded.
    if (!this.socket.destroyed) {
      this.socket.end();
      const drop = setTimeout(() => this.socket.destroy(), this.limits.closeTimeoutMs);
      drop.unref();
      this.socket.once('close', () => clearTimeout(drop));
    }
  }

  /** Everything but the socket: streams fail, timers stop, 'error' and 'close' are emitted. */
  private tearDown(error: Error | undefined): void {
    this.tornDown = true;
    this.noNewStreams = true;
    const reason = error ?? new Http2Error('connection', ErrorCode.INTERNAL_ERROR, `the connection to ${this.peerName} closed`, 'remote');
    for (const stream of this.streams.values()) stream.onSessionLost(reason);
    this.streams.clear();
    for (const ping of this.pings.splice(0)) ping.callback(reason, 0);
    this.blocked = [];
    this.blockedHead = 0;
    this.pending = [];
    this.pendingBytes = 0;
    this.lingering = 0;
    clearTimeout(this.headerTimer);
    clearTimeout(this.stallTimer);
    clearTimeout(this.zeroWindowTimer);
    if (error && this.listenerCount('error') > 0) this.emit('error', error);
    process.nextTick(() => this.emit('close'));
  }

  protected writeHeaders(streamId: number, block: Buffer, endStream: boolean): void {
    const maxFrame = this.settings?.maxFrameSize ?? DEFAULT_MAX_FRAME_SIZE;
    const endFlag = endStream ? Flag.END_STREAM : 0;
    this.dataSinceLastPing = true;
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
    this.dataSinceLastPing = true;
  }

  /** Keeps a stream's unsent DATA (and its writer's callback) until window or queue room comes back. */
  private hold(stream: S | H2Stream, chunk: Buffer, offset: number, end: boolean, callback: (error?: Error | null) => void, reason: HoldReason): void {
    stream.holdWrite(offset === 0 ? chunk : chunk.subarray(offset), chunk.length, end, callback, reason !== 'backlog');
    if (reason === 'backlog') this.heldForBacklog = true;
    if (reason !== 'stream-window') this.enqueueBlocked(stream as S);
    // A stream without window of its own is resumed by its WINDOW_UPDATE or a SETTINGS change;
    // it waits at most zeroWindowTimeoutMs for either.
    if (reason !== 'backlog' && this.zeroWindowTimer === undefined) {
      this.zeroWindowTimer = setTimeout(this.sweepZeroWindows, this.limits.zeroWindowTimeoutMs);
      this.zeroWindowTimer.unref();
    }
  }

  private enqueueBlocked(stream: S): void {
    if (stream.enterWindowQueue()) this.blocked.push(stream);
  }

  /** Resumes held DATA, oldest first, while there is connection window and queue room; the rest stays queued untouched. */
  private flushBlocked(): void {
    const blocked = this.blocked;
    const end = blocked.length;
    const cap = this.limits.maxWriteQueueBytes;
    while (this.blockedHead < end) {
      if (this.tornDown) return;
      if (this.pendingBytes + this.socketQueued >= cap) {
        this.heldForBacklog = true;
        break;
      }
      if (this.sendWindow <= 0) break;
      const stream = blocked[this.blockedHead] as S;
      blocked[this.blockedHead] = undefined as unknown as S;
      this.blockedHead += 1;
      stream.leaveWindowQueue();
      const held = stream.takeHeldWrite();
      if (held) this.sendData(stream, held.chunk, held.end, held.callback);
    }
    this.compactBlocked();
  }

  private compactBlocked(): void {
    if (this.blockedHead === this.blocked.length) {
      this.blocked.length = 0;
      this.blockedHead = 0;
    } else if (this.blockedHead > 64 && this.blockedHead * 2 > this.blocked.length) {
      this.blocked.splice(0, this.blockedHead);
      this.blockedHead = 0;
    }
  }

  /** Resets the streams that have waited zeroWindowTimeoutMs for window; re-arms for the next one due. */
  private readonly sweepZeroWindows = (): void => {
    this.zeroWindowTimer = undefined;
    if (this.tornDown) return;
    const now = performance.now();
    const timeout = this.limits.zeroWindowTimeoutMs;
    let expired: H2Stream[] | undefined;
    let nextDue = Infinity;
    this.streams.forEach((stream) => {
      const since = stream.windowBlockedSince;
      if (since === 0 || !stream.holdsWrite || (stream.sendWindow > 0 && this.sendWindow > 0)) return;
      if (now - since >= timeout) (expired ??= []).push(stream);
      else nextDue = Math.min(nextDue, since + timeout);
    });
    for (const stream of expired ?? []) {
      this.refused('zero-window', 'stream');
      stream.failWith(new Http2Error('stream', ErrorCode.ENHANCE_YOUR_CALM, `${this.peerName} gave no flow-control window for ${timeout} ms`, 'local', 'zero-window'));
      this.resetStream(stream, ErrorCode.ENHANCE_YOUR_CALM);
    }
    if (nextDue !== Infinity) {
      this.zeroWindowTimer = setTimeout(this.sweepZeroWindows, Math.max(1, nextDue - now));
      this.zeroWindowTimer.unref();
    }
  };

  private onData(chunk: Buffer): void {
    if (this.tornDown) return;
    let buf = this.buffered ? Buffer.concat([this.buffered, chunk]) : chunk;
    let offset = 0;
    try {
      if (this.prefaceLeft) {
        const preface = this.prefaceLeft;
        const n = Math.min(preface.length, buf.length);
        if (!buf.subarray(0, n).equals(preface.subarray(0, n))) throw connectionError(ErrorCode.PROTOCOL_ERROR, 'the connection does not start with the HTTP/2 preface');
        this.prefaceLeft = n === preface.length ? undefined : preface.subarray(n);
        buf = buf.subarray(n);
      }
      while (buf.length - offset >= FRAME_HEADER_BYTES) {
        const length = ((buf[offset] as number) << 16) | ((buf[offset + 1] as number) << 8) | (buf[offset + 2] as number);
        // We never raise SETTINGS_MAX_FRAME_SIZE above its default.
        if (length > DEFAULT_MAX_FRAME_SIZE) throw connectionError(ErrorCode.FRAME_SIZE_ERROR, `a ${length}-byte frame exceeds the maximum frame size`);
        if (buf.length - offset - FRAME_HEADER_BYTES < length) break;
        const type = buf[offset + 3] as number;
        const flags = buf[offset + 4] as number;
        const streamId = buf.readUInt32BE(offset + 5) & 0x7fffffff;
        const payload = buf.subarray(offset + FRAME_HEADER_BYTES, offset + FRAME_HEADER_BYTES + length);
        offset += FRAME_HEADER_BYTES + length;
        this.onFrame(type, flags, streamId, payload);
        if (this.tornDown) return;
      }
    } catch (error) {
      this.fail(error);
      return;
    }
    this.buffered = offset < buf.length ? buf.subarray(offset) : undefined;
  }

  private onFrame(type: number, flags: number, streamId: number, payload: Buffer): void {
    if (this.headerBlock && type !== FrameType.CONTINUATION) throw connectionError(ErrorCode.PROTOCOL_ERROR, 'a header block was interrupted by another frame');
    // Each side's connection preface ends with a SETTINGS frame (RFC 9113 §3.4).
    if (!this.settings && type !== FrameType.SETTINGS) throw connectionError(ErrorCode.PROTOCOL_ERROR, 'the first frame is not SETTINGS');
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
        if (streamId === 0) throw connectionError(ErrorCode.PROTOCOL_ERROR, 'RST_STREAM on stream 0');
        if (payload.length !== 4) throw connectionError(ErrorCode.FRAME_SIZE_ERROR, 'RST_STREAM payload is not 4 bytes');
        if (this.isIdle(streamId)) throw connectionError(ErrorCode.PROTOCOL_ERROR, `RST_STREAM on idle stream ${streamId}`);
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
        throw connectionError(ErrorCode.PROTOCOL_ERROR, 'PUSH_PROMISE although push is disabled');
      case FrameType.PRIORITY:
        // RFC 9113 §6.3: the frame always names a stream; we act on no priority otherwise.
        if (streamId === 0) throw connectionError(ErrorCode.PROTOCOL_ERROR, 'PRIORITY on stream 0');
        if (payload.length !== 5) throw connectionError(ErrorCode.FRAME_SIZE_ERROR, 'PRIORITY payload is not 5 bytes');
        if ((payload.readUInt32BE(0) & 0x7fffffff) === streamId) throw connectionError(ErrorCode.PROTOCOL_ERROR, `stream ${streamId} depends on itself`);
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

  /** The peer ended this stream (END_STREAM or RST_STREAM) some time ago, as far as we remember. */
  protected closedByPeerEarlier(streamId: number): boolean {
    for (let i = 0; i < CLOSED_BY_PEER_MEMORY; i++) if (this.closedByPeer[i] === streamId) return true;
    return false;
  }

  private unpadded(flags: number, payload: Buffer, what: string): Buffer {
    if ((flags & Flag.PADDED) === 0) return payload;
    if (payload.length < 1) throw connectionError(ErrorCode.PROTOCOL_ERROR, `padded ${what} without a pad length`);
    const pad = payload[0] as number;
    if (pad >= payload.length) throw connectionError(ErrorCode.PROTOCOL_ERROR, `${what} padding longer than the frame`);
    return payload.subarray(1, payload.length - pad);
  }

  private onDataFrame(flags: number, streamId: number, payload: Buffer): void {
    if (streamId === 0) throw connectionError(ErrorCode.PROTOCOL_ERROR, 'DATA on stream 0');
    // Flow control counts the whole frame payload, padding included.
    if (payload.length > this.recvWindow) throw connectionError(ErrorCode.FLOW_CONTROL_ERROR, `${this.peerName} overran the connection window`);
    this.recvWindow -= payload.length;
    const endStream = (flags & Flag.END_STREAM) !== 0;
    const data = this.unpadded(flags, payload, 'DATA');
    // Padding alone carries nothing either: counted like an empty frame, or a flood would only
    // need one byte of pad length per frame to get past the budget.
    if (data.length === 0 && !endStream) this.onEmptyData();
    const stream = this.streams.get(streamId);
    if (!stream) {
      if (this.isIdle(streamId)) throw connectionError(ErrorCode.PROTOCOL_ERROR, `DATA on idle stream ${streamId}`);
      // RFC 9113 §5.1: after the peer's END_STREAM or RST_STREAM, more DATA is its error; after
      // ours, frames in flight still arrive, and nobody will read them.
      if (this.closedByPeerEarlier(streamId)) throw connectionError(ErrorCode.STREAM_CLOSED, `DATA on stream ${streamId} after ${this.peerName} closed it`);
      this.credit(payload.length);
      return;
    }
    const refusal = stream.refusesData(payload.length);
    if (refusal) {
      this.credit(payload.length);
      this.resetStream(stream, refusal.code);
      stream.onProtocolError(refusal.message, refusal.code);
      return;
    }
    stream.receiveData(data, payload.length, endStream);
  }

  private onHeadersFrame(flags: number, streamId: number, payload: Buffer): void {
    if (streamId === 0 || streamId % 2 === 0) throw connectionError(ErrorCode.PROTOCOL_ERROR, `HEADERS on stream ${streamId}`);
    let fragment = this.unpadded(flags, payload, 'HEADERS');
    if ((flags & Flag.PRIORITY) !== 0) {
      if (fragment.length < 5) throw connectionError(ErrorCode.FRAME_SIZE_ERROR, 'HEADERS priority fields truncated');
      if ((fragment.readUInt32BE(0) & 0x7fffffff) === streamId) throw connectionError(ErrorCode.PROTOCOL_ERROR, `stream ${streamId} depends on itself`);
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
    this.headerTimer = setTimeout(() => this.fail(connectionError(ErrorCode.PROTOCOL_ERROR, 'a header block was not finished in time', 'headers-timeout')), this.limits.headersTimeoutMs);
    this.headerTimer.unref();
  }

  private onContinuation(flags: number, streamId: number, payload: Buffer): void {
    const block = this.headerBlock;
    if (!block || block.streamId !== streamId) throw connectionError(ErrorCode.PROTOCOL_ERROR, 'CONTINUATION without a header block to continue');
    block.parts.push(payload);
    block.size += payload.length;
    block.continuations += 1;
    if (block.size > this.maxHeaderListSize * 2) throw connectionError(ErrorCode.ENHANCE_YOUR_CALM, 'header block too large', 'header-size');
    if (block.continuations > MAX_CONTINUATIONS) throw connectionError(ErrorCode.ENHANCE_YOUR_CALM, `a header block in more than ${MAX_CONTINUATIONS} CONTINUATION frames`, 'header-size');
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
    if (streamId !== 0) throw connectionError(ErrorCode.PROTOCOL_ERROR, 'SETTINGS on a stream');
    if ((flags & Flag.ACK) !== 0) {
      if (payload.length !== 0) throw connectionError(ErrorCode.FRAME_SIZE_ERROR, 'SETTINGS ACK with a payload');
      return;
    }
    if (payload.length % 6 !== 0) throw connectionError(ErrorCode.FRAME_SIZE_ERROR, 'SETTINGS payload is not a multiple of 6');
    // Each frame costs a walk over the open streams (a window change) and an answer: both are
    // bounded per frame (entries) and per second (frames), finding 3 of issue 28.
    if (payload.length / 6 > this.limits.maxSettingsEntries) {
      throw connectionError(ErrorCode.ENHANCE_YOUR_CALM, `a SETTINGS frame with ${payload.length / 6} entries (at most ${this.limits.maxSettingsEntries})`, 'settings-flood');
    }
    if (!this.settingsBudget.take()) throw connectionError(ErrorCode.ENHANCE_YOUR_CALM, `${this.peerName} sends SETTINGS faster than allowed`, 'settings-flood');
    this.guardControlAnswer();
    const first = !this.settings;
    const settings = { ...(this.settings ?? { headerTableSize: 4096, maxConcurrentStreams: 100, initialWindowSize: DEFAULT_WINDOW, maxFrameSize: DEFAULT_MAX_FRAME_SIZE, maxHeaderListSize: Infinity }) };
    const previousWindow = settings.initialWindowSize;
    for (let offset = 0; offset < payload.length; offset += 6) {
      const id = payload.readUInt16BE(offset);
      const value = payload.readUInt32BE(offset + 2);
      switch (id) {
        case Setting.HEADER_TABLE_SIZE:
          settings.headerTableSize = value;
          this.encoder.setMaxTableSize(value);
          break;
        case Setting.ENABLE_PUSH:
          if (value > 1) throw connectionError(ErrorCode.PROTOCOL_ERROR, 'ENABLE_PUSH is not 0 or 1');
          break;
        case Setting.MAX_CONCURRENT_STREAMS:
          settings.maxConcurrentStreams = value;
          break;
        case Setting.INITIAL_WINDOW_SIZE:
          if (value > MAX_WINDOW) throw connectionError(ErrorCode.FLOW_CONTROL_ERROR, 'INITIAL_WINDOW_SIZE above 2^31-1');
          settings.initialWindowSize = value;
          break;
        case Setting.MAX_FRAME_SIZE:
          if (value < DEFAULT_MAX_FRAME_SIZE || value > 16_777_215) throw connectionError(ErrorCode.PROTOCOL_ERROR, `MAX_FRAME_SIZE ${value} out of range`);
          settings.maxFrameSize = value;
          break;
        case Setting.MAX_HEADER_LIST_SIZE:
          settings.maxHeaderListSize = value;
          break;
        default:
          break; // unknown settings are ignored
      }
    }
    this.settings = settings;
    // Applying the values in order leaves the streams' windows where the last one puts them: one
    // walk for the frame, not one per entry (RFC 9113 §6.9.2).
    const delta = settings.initialWindowSize - previousWindow;
    if (delta !== 0) this.applyWindowDelta(delta);
    this.write(frame(FrameType.SETTINGS, Flag.ACK, 0, 0));
    this.flushBlocked();
    if (first) this.emit('connect', this);
  }

  private applyWindowDelta(delta: number): void {
    let overflowed = false;
    this.streams.forEach((stream) => {
      if (stream.addSendWindow(delta) > MAX_WINDOW) overflowed = true;
      else if (delta > 0 && stream.holdsWrite && stream.sendWindow > 0) this.enqueueBlocked(stream);
    });
    if (overflowed) throw connectionError(ErrorCode.FLOW_CONTROL_ERROR, 'INITIAL_WINDOW_SIZE takes a stream window above 2^31-1');
  }

  private onPing(flags: number, streamId: number, payload: Buffer): void {
    if (streamId !== 0) throw connectionError(ErrorCode.PROTOCOL_ERROR, 'PING on a stream');
    if (payload.length !== 8) throw connectionError(ErrorCode.FRAME_SIZE_ERROR, 'PING payload is not 8 bytes');
    if ((flags & Flag.ACK) === 0) {
      if (this.dataSinceLastPing) this.dataSinceLastPing = false;
      else if (!this.pingBudget.take()) throw connectionError(ErrorCode.ENHANCE_YOUR_CALM, `${this.peerName} sends PINGs faster than allowed`, 'ping-flood');
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

  /** A peer that asks for answers (PING, SETTINGS) and reads none is flooding us (CVE-2019-9512, -9515), not talking. */
  private guardControlAnswer(): void {
    const queued = this.queuedBytes;
    if (queued > this.limits.writeQueueHardLimitBytes) {
      throw connectionError(ErrorCode.ENHANCE_YOUR_CALM, `${this.peerName} keeps asking for answers it does not read (${queued} bytes queued)`, 'write-queue');
    }
  }

  private onGoaway(streamId: number, payload: Buffer): void {
    if (streamId !== 0) throw connectionError(ErrorCode.PROTOCOL_ERROR, 'GOAWAY on a stream');
    if (payload.length < 8) throw connectionError(ErrorCode.FRAME_SIZE_ERROR, 'GOAWAY payload shorter than 8 bytes');
    const lastStreamId = payload.readUInt32BE(0) & 0x7fffffff;
    const code = payload.readUInt32BE(4);
    this.noNewStreams = true;
    // Streams we opened above lastStreamId were never processed: safe to send again elsewhere.
    for (const stream of this.streams.values()) {
      if (!this.initiatedLocally(stream.id) || stream.id <= lastStreamId) continue;
      // The peer may still hold such a stream (Node's server does, and then never closes the
      // session): cancel it there, and report it here as refused.
      stream.noteReset(ErrorCode.REFUSED_STREAM);
      this.resetStream(stream, ErrorCode.CANCEL);
      stream.onReset(ErrorCode.REFUSED_STREAM);
    }
    this.emit('goaway', code, lastStreamId, payload.subarray(8));
    if (this.streams.size === 0) this.end();
  }

  private onWindowUpdate(streamId: number, payload: Buffer): void {
    if (payload.length !== 4) throw connectionError(ErrorCode.FRAME_SIZE_ERROR, 'WINDOW_UPDATE payload is not 4 bytes');
    const increment = payload.readUInt32BE(0) & 0x7fffffff;
    if (streamId === 0) {
      if (increment === 0) throw connectionError(ErrorCode.PROTOCOL_ERROR, 'WINDOW_UPDATE of 0 on the connection');
      this.sendWindow += increment;
      if (this.sendWindow > MAX_WINDOW) throw connectionError(ErrorCode.FLOW_CONTROL_ERROR, 'connection window above 2^31-1');
      this.flushBlocked();
      return;
    }
    const stream = this.streams.get(streamId);
    if (!stream) {
      if (this.isIdle(streamId)) throw connectionError(ErrorCode.PROTOCOL_ERROR, `WINDOW_UPDATE on idle stream ${streamId}`);
      return;
    }
    if (increment === 0 || stream.sendWindow + increment > MAX_WINDOW) {
      const code = increment === 0 ? ErrorCode.PROTOCOL_ERROR : ErrorCode.FLOW_CONTROL_ERROR;
      this.resetStream(stream, code);
      stream.onProtocolError(`bad WINDOW_UPDATE from ${this.peerName}`, code);
      return;
    }
    stream.addSendWindow(increment);
    if (stream.holdsWrite && stream.sendWindow > 0) {
      this.enqueueBlocked(stream);
      this.flushBlocked();
    }
  }
}

/** What a stream needs of its connection. */
interface StreamOwner {
  readonly peerName: string;
  readonly maxStreamBufferedBytes: number;
  resetStream(stream: H2Stream, code: number): void;
  sendData(stream: H2Stream, chunk: Buffer, end: boolean, callback: (error?: Error | null) => void): void;
  replenish(stream: H2Stream): void;
  credit(bytes: number): void;
  forget(stream: H2Stream): void;
  overflow(stream: H2Stream): void;
  refused(kind: H2LimitKind, scope: H2LimitScope): void;
}

/** Body bytes a stream could not send yet, with the writer's callback. */
interface HeldWrite {
  chunk: Buffer;
  end: boolean;
  callback: (error?: Error | null) => void;
  /** Length of the chunk the writer gave (of which `chunk` is what is left). */
  offered: number;
}

type WriteCallback = (error: Error | null | undefined) => void;

/**
 * One HTTP/2 stream as a Duplex: the writable side is what we send (a request or response body),
 * the readable side what the peer sends. Its protocol state is its own: outside code reads it
 * through getters (`rstCode`, `sentEnd`, `remoteEnded`, `wireClosed`, the windows); the connection
 * changes it through the methods below, which are the stream's contract with its connection.
 * `rstCode` says how a stream that ended early was reset (REFUSED_STREAM: the peer never processed it).
 */
export abstract class H2Stream extends Duplex implements DirectBody {
  protected resetCode: number | undefined;
  protected endSent = false;
  protected endReceived = false;
  /** The stream is no longer open on the connection (ended both ways, reset, or the session died). */
  protected leftWire = false;
  /** The peer reset the stream (RST_STREAM received). */
  protected resetReceived = false;
  private sendCredit: number;
  private receiveCredit: number;
  private unacknowledged = 0;
  private held: HeldWrite | undefined;
  private blockedSince = 0;
  /** The stream waits in its connection's queue for window or queue room. */
  private inWindowQueue = false;
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
    sendWindow: number,
    recvWindow: number,
    sides?: { writable: false },
  ) {
    // Node's Duplex takes `writable: false` (the side starts finished); @types/node 20 does not list it.
    super(sides as DuplexOptions | undefined);
    this.sendCredit = sendWindow;
    this.receiveCredit = recvWindow;
    this.windowTarget = recvWindow;
    if (sides?.writable === false) this.endSent = true;
  }

  /** How the stream was reset, if it was (RST_STREAM sent or received, or the session lost). */
  get rstCode(): number | undefined {
    return this.resetCode;
  }

  /** We sent END_STREAM. */
  get sentEnd(): boolean {
    return this.endSent;
  }

  /** The peer sent END_STREAM. */
  get remoteEnded(): boolean {
    return this.endReceived;
  }

  /** The stream is no longer open on the connection (ended both ways, reset, or the session died). */
  get wireClosed(): boolean {
    return this.leftWire;
  }

  /** The peer reset the stream (RST_STREAM received). */
  get resetByPeer(): boolean {
    return this.resetReceived;
  }

  /** What we may still send on this stream (the peer's window for it). */
  get sendWindow(): number {
    return this.sendCredit;
  }

  /** What the peer may still send on this stream before we give credit back. */
  get recvWindow(): number {
    return this.receiveCredit;
  }

  /** DATA waits for window or queue room. */
  get holdsWrite(): boolean {
    return this.held !== undefined;
  }

  /** When the stream began waiting for flow-control window (performance.now()), 0 when it is not. */
  get windowBlockedSince(): number {
    return this.blockedSince;
  }

  deliverTo(onChunk: (chunk: Buffer) => boolean, onEnd: () => void): boolean {
    if (this.delivery) return false;
    this.delivery = startDelivery(this, this.endReceived, onChunk, onEnd);
    return this.delivery !== undefined;
  }

  resumeDelivery(): void {
    const delivery = this.delivery;
    if (!delivery || !delivery.held) return;
    delivery.held = false;
    if (this.receiveCredit <= this.windowTarget / 2) this.connection.replenish(this);
  }

  /** Headers after the stream opened: a response (client role) or trailers. */
  abstract onHeaders(headers: IncomingHttpHeaders, endStream: boolean, withinLimit: boolean): void;

  /** Why DATA of this length may not arrive now (a flow-control or protocol error), if it may not. */
  abstract refusesData(length: number): { code: number; message: string } | undefined;

  /** We sent END_STREAM. */
  onSentEnd(): void {
    this.endSent = true;
    if (this.endReceived) this.connection.forget(this);
  }

  /** The connection no longer tracks this stream: what waits to be sent never will be. */
  onLeftWire(): void {
    this.leftWire = true;
    this.settlePending();
    this.onWireClosed();
  }

  /** Subclasses: the exchange is over on the wire. */
  protected onWireClosed(): void {}

  /** Resets the stream with `code` (CANCEL when giving up) and destroys it. */
  close(code: number = ErrorCode.CANCEL): void {
    if (this.resetCode === undefined) this.resetCode = code;
    this.connection.resetStream(this, code);
    if (!this.destroyed) this.destroy();
  }

  // Overridden only to watch the writer: one that ignores write()'s false keeps buffering here
  // while the peer reads nothing, and is cut off at maxStreamBufferedBytes.
  override write(chunk: unknown, encoding?: BufferEncoding | WriteCallback, callback?: WriteCallback): boolean {
    const ok = typeof encoding === 'function' ? super.write(chunk, encoding) : super.write(chunk, encoding as BufferEncoding, callback);
    if (!ok && this.writableLength - (this.held?.offered ?? 0) > this.connection.maxStreamBufferedBytes) this.connection.overflow(this);
    return ok;
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.connection.sendData(this, chunk, false, callback);
  }

  override _final(callback: (error?: Error | null) => void): void {
    if (this.endSent) callback();
    else this.connection.sendData(this, EMPTY, true, callback);
  }

  override _read(): void {
    if (this.receiveCredit <= this.windowTarget / 2) this.connection.replenish(this);
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    // Whatever this stream received is read or dropped now: the connection gets it back.
    if (this.unacknowledged > 0) {
      this.connection.credit(this.unacknowledged);
      this.unacknowledged = 0;
    }
    if (!this.leftWire) {
      if (this.resetCode === undefined) this.resetCode = error ? ErrorCode.INTERNAL_ERROR : ErrorCode.CANCEL;
      this.connection.resetStream(this, this.resetCode);
    }
    this.settlePending(error);
    callback(error);
  }

  // ---- the connection's side of the contract ----

  /** `n` bytes went out on this stream: they take window, and the stream is no longer stuck. */
  consumeSendWindow(n: number): void {
    this.sendCredit -= n;
    if (this.blockedSince !== 0) this.blockedSince = 0;
  }

  /** The peer's window for this stream changed (WINDOW_UPDATE, or a new INITIAL_WINDOW_SIZE); returns the window after. */
  addSendWindow(delta: number): number {
    this.sendCredit += delta;
    return this.sendCredit;
  }

  /** The peer got `n` bytes of window back for this stream (our WINDOW_UPDATE went out). */
  growRecvWindow(n: number): void {
    this.receiveCredit += n;
  }

  /** Bytes read by the consumer and not yet credited back to the peer; zero after. */
  takeUnacknowledged(): number {
    const n = this.unacknowledged;
    this.unacknowledged = 0;
    return n;
  }

  holdWrite(chunk: Buffer, offered: number, end: boolean, callback: (error?: Error | null) => void, forWindow: boolean): void {
    this.held = { chunk, end, callback, offered };
    if (forWindow && this.blockedSince === 0) this.blockedSince = performance.now();
  }

  /** True when the stream was not in its connection's wait queue and now is (the queue holds each stream once). */
  enterWindowQueue(): boolean {
    if (this.inWindowQueue) return false;
    this.inWindowQueue = true;
    return true;
  }

  leaveWindowQueue(): void {
    this.inWindowQueue = false;
  }

  takeHeldWrite(): HeldWrite | undefined {
    const held = this.held;
    this.held = undefined;
    return held;
  }

  /** Records how the stream was reset without acting on it (the caller resets it next). */
  noteReset(code: number): void {
    if (this.resetCode === undefined) this.resetCode = code;
  }

  /** The connection ended this stream for a limit: destroys it with that error. */
  failWith(error: Http2Error): void {
    this.noteReset(error.http2Code);
    if (!this.destroyed) this.destroy(error);
  }

  /** DATA from the peer: `counted` (payload with padding) against our window, `data` to the reader. */
  receiveData(data: Buffer, counted: number, endStream: boolean): void {
    this.receiveCredit -= counted;
    this.onBody(data, counted, endStream);
  }

  protected onBody(data: Buffer, counted: number, endStream: boolean): void {
    if (this.destroyed) {
      this.connection.credit(counted);
      return;
    }
    this.unacknowledged += counted;
    const delivery = this.delivery;
    if (delivery) {
      // Handed on: the bytes count as read, and credit goes back unless the relay's sink is full.
      if (data.length > 0 && !delivery.onChunk(data)) delivery.held = true;
      if (endStream) this.onRemoteEnd();
      else if (!delivery.held && this.receiveCredit <= this.windowTarget / 2) this.connection.replenish(this);
      return;
    }
    const wantsMore = data.length === 0 || this.push(data);
    if (endStream) this.onRemoteEnd();
    else if (wantsMore && this.receiveCredit <= this.windowTarget / 2) this.connection.replenish(this);
  }

  onReset(code: number): void {
    this.resetReceived = true;
    if (this.resetCode === undefined) this.resetCode = code;
    this.connection.forget(this);
    if (this.destroyed) return;
    if (code === ErrorCode.NO_ERROR || code === ErrorCode.CANCEL || code === ErrorCode.REFUSED_STREAM) this.destroy();
    else this.destroy(new Http2Error('stream', code, `stream reset by ${this.connection.peerName}: ${errorName(code)}`, 'remote'));
  }

  /** The peer broke the protocol on this stream; the caller has sent (or will send) RST_STREAM with `code`. */
  onProtocolError(message: string, code: number = ErrorCode.PROTOCOL_ERROR): void {
    if (this.resetCode === undefined) this.resetCode = code;
    if (!this.destroyed) this.destroy(new Http2Error('stream', code, `${this.connection.peerName} broke HTTP/2: ${message}`));
  }

  /** A body write waiting for flow-control window will never be sent: release the writer. */
  protected settlePending(error?: Error | null): void {
    const held = this.held;
    if (!held) return;
    this.held = undefined;
    this.blockedSince = 0;
    held.callback(error);
  }

  onSessionLost(reason: Error): void {
    this.leftWire = true;
    this.settlePending(reason);
    if (this.endReceived || this.destroyed) return;
    if (this.resetCode === undefined) this.resetCode = ErrorCode.INTERNAL_ERROR;
    this.destroy(reason);
  }

  protected onRemoteEnd(): void {
    this.endReceived = true;
    // A destroyed stream's body stopped short: neither a reader nor a relay sees its end.
    if (!this.destroyed) {
      if (this.delivery) endDelivery(this, this.delivery);
      else this.push(null);
    }
    if (this.endSent) this.connection.forget(this);
  }
}
