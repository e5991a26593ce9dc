import { connect as netConnect, createServer as createNetServer, type AddressInfo, type Server as NetServer, type Socket } from 'node:net';
import { connect as tlsConnect, createServer as createTlsServer, type SecureContextOptions, type TLSSocket } from 'node:tls';
import type { IncomingHttpHeaders } from 'node:http2';
import { HpackDecoder, HpackEncoder } from '../../src/http2/hpack.js';
import { CLIENT_PREFACE, ErrorCode, Flag, frame, FRAME_HEADER_BYTES, FrameType } from '../../src/http2/frames.js';
import { H2ServerSession, type H2ServerOptions, type H2ServerStream } from '../../src/http2/index.js';

/*
 * A client that writes HTTP/2 frames by hand against fedgate's server role on a real socket (TCP
 * or TLS), and reads the server's frames back with their header blocks decoded in order. The
 * attack and conformance tests drive it; nothing in it is smarter than the wire.
 */

export interface RawFrame {
  type: number;
  flags: number;
  streamId: number;
  payload: Buffer;
  /** Decoded header list of a HEADERS frame (set once its block is complete). */
  headers?: Record<string, string | string[]>;
}

export interface Goaway {
  lastStreamId: number;
  code: number;
  debug: string;
}

const TYPE_NAMES = Object.fromEntries(Object.entries(FrameType).map(([name, type]) => [type, name])) as Record<number, string>;
const CODE_NAMES = Object.fromEntries(Object.entries(ErrorCode).map(([name, code]) => [code, name])) as Record<number, string>;

export function codeName(code: number): string {
  return CODE_NAMES[code] ?? `0x${code.toString(16)}`;
}

/** Settings of the client preface, as [id, value] pairs. */
export type SettingsList = ReadonlyArray<readonly [number, number]>;

export function settingsPayload(settings: SettingsList): Buffer {
  const payload = Buffer.allocUnsafe(settings.length * 6);
  settings.forEach(([id, value], i) => {
    payload.writeUInt16BE(id, i * 6);
    payload.writeUInt32BE(value >>> 0, i * 6 + 2);
  });
  return payload;
}

/** Any frame, with any header fields: the raw peer may send what no real client would. */
export function rawFrame(type: number, flags: number, streamId: number, payload: Buffer | string = Buffer.alloc(0), reservedBit = false): Buffer {
  const body = Buffer.from(payload);
  const buf = frame(type, flags, streamId, body.length);
  if (reservedBit) buf[5] = (buf[5] as number) | 0x80;
  body.copy(buf, FRAME_HEADER_BYTES);
  return buf;
}

export function dataFrame(streamId: number, payload: Buffer | string, endStream: boolean): Buffer {
  return rawFrame(FrameType.DATA, endStream ? Flag.END_STREAM : 0, streamId, payload);
}

export function settingsFrameOf(settings: SettingsList, ack = false): Buffer {
  return rawFrame(FrameType.SETTINGS, ack ? Flag.ACK : 0, 0, ack ? Buffer.alloc(0) : settingsPayload(settings));
}

export function pingFrame(data: Buffer, ack = false, streamId = 0): Buffer {
  return rawFrame(FrameType.PING, ack ? Flag.ACK : 0, streamId, data);
}

export function priorityFrame(streamId: number, dependsOn: number, weight = 255, exclusive = false): Buffer {
  const payload = Buffer.allocUnsafe(5);
  payload.writeUInt32BE(((exclusive ? 0x80000000 : 0) | dependsOn) >>> 0, 0);
  payload[4] = weight;
  return rawFrame(FrameType.PRIORITY, 0, streamId, payload);
}

export function rstFrame(streamId: number, code: number): Buffer {
  const payload = Buffer.allocUnsafe(4);
  payload.writeUInt32BE(code >>> 0, 0);
  return rawFrame(FrameType.RST_STREAM, 0, streamId, payload);
}

export function windowUpdate(streamId: number, increment: number): Buffer {
  const payload = Buffer.allocUnsafe(4);
  payload.writeUInt32BE(increment >>> 0, 0);
  return rawFrame(FrameType.WINDOW_UPDATE, 0, streamId, payload);
}

export function goawayFrameOf(lastStreamId: number, code: number, streamId = 0): Buffer {
  const payload = Buffer.allocUnsafe(8);
  payload.writeUInt32BE(lastStreamId, 0);
  payload.writeUInt32BE(code >>> 0, 4);
  return rawFrame(FrameType.GOAWAY, 0, streamId, payload);
}

export const request = (method: string, path: string, extra: readonly string[] = [], authority = 'svc.test'): string[] => [':method', method, ':scheme', 'http', ':authority', authority, ':path', path, ...extra];

export interface PeerOptions {
  port: number;
  /** TLS with ALPN h2. */
  tls?: boolean;
  /**
   * With `tls`: the CA the server's certificate must chain to. Its name is not checked (a SPIFFE
   * SVID names a URI, not a host); without `ca` the certificate is not verified at all.
   */
  ca?: string;
}

export class RawPeer {
  readonly frames: RawFrame[] = [];
  readonly encoder = new HpackEncoder();
  ended = false;
  readonly closed: Promise<void>;
  private decoder = new HpackDecoder(4096, 1 << 20);
  private buffered: Buffer = Buffer.alloc(0);
  private block: { frame: RawFrame; parts: Buffer[] } | undefined;
  private readonly listeners = new Set<() => void>();
  private pingSeq = 0;

  private constructor(readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    // The server may reset the connection after its GOAWAY; what arrived before stays in frames.
    socket.on('error', () => undefined);
    this.closed = new Promise((resolve) =>
      socket.once('close', () => {
        this.ended = true;
        this.notify();
        resolve();
      }),
    );
  }

  static async connect(options: PeerOptions): Promise<RawPeer> {
    const socket = await new Promise<Socket>((resolve, reject) => {
      const s: Socket = options.tls
        ? tlsConnect(
            { host: '127.0.0.1', port: options.port, ALPNProtocols: ['h2'], ...(options.ca ? { ca: options.ca, checkServerIdentity: () => undefined } : { rejectUnauthorized: false }) },
            () => resolve(s),
          )
        : netConnect({ host: '127.0.0.1', port: options.port }, () => resolve(s));
      s.once('error', reject);
    });
    socket.setNoDelay(true);
    return new RawPeer(socket);
  }

  /** Connects and sends the client preface with a SETTINGS frame. */
  static async open(options: PeerOptions, settings: SettingsList = []): Promise<RawPeer> {
    const peer = await RawPeer.connect(options);
    peer.write(CLIENT_PREFACE, settingsFrameOf(settings));
    return peer;
  }

  /** Connects, exchanges SETTINGS both ways (ours ACKed, the server's ACKed), as h2spec's handshake. */
  static async handshake(options: PeerOptions, settings: SettingsList = []): Promise<RawPeer> {
    const peer = await RawPeer.open(options, settings);
    await peer.waitFor((f) => f.type === FrameType.SETTINGS && (f.flags & Flag.ACK) === 0, 'the server SETTINGS');
    peer.write(settingsFrameOf([], true));
    await peer.waitFor((f) => f.type === FrameType.SETTINGS && (f.flags & Flag.ACK) !== 0, 'the SETTINGS ACK');
    return peer;
  }

  write(...buffers: Buffer[]): void {
    if (!this.socket.destroyed && this.socket.writable) this.socket.write(buffers.length === 1 ? (buffers[0] as Buffer) : Buffer.concat(buffers));
  }

  /** Writes and waits for the socket to take it; false once the connection is gone. */
  async writeAndDrain(buffer: Buffer): Promise<boolean> {
    if (this.socket.destroyed || !this.socket.writable) return false;
    if (this.socket.write(buffer)) return true;
    return new Promise((resolve) => {
      const done = (ok: boolean): void => {
        this.socket.off('drain', onDrain);
        this.socket.off('close', onClose);
        resolve(ok);
      };
      const onDrain = (): void => done(true);
      const onClose = (): void => done(false);
      this.socket.once('drain', onDrain);
      this.socket.once('close', onClose);
    });
  }

  /** Stops reading the socket: what the server sends piles up in its buffers (a slow or hostile reader). */
  stopReading(): void {
    this.socket.pause();
  }

  resumeReading(): void {
    this.socket.resume();
  }

  headersFrame(streamId: number, fields: readonly string[], endStream: boolean, extraFlags = 0): Buffer {
    const block = this.encoder.encode(fields);
    return rawFrame(FrameType.HEADERS, Flag.END_HEADERS | (endStream ? Flag.END_STREAM : 0) | extraFlags, streamId, block);
  }

  request(streamId: number, fields: readonly string[], endStream = true): void {
    this.write(this.headersFrame(streamId, fields, endStream));
  }

  waitFor(predicate: (f: RawFrame) => boolean, what: string, ms = 5000): Promise<RawFrame> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        finish();
        reject(new Error(`timed out waiting for ${what}; frames: ${this.describe()}`));
      }, ms);
      const finish = (): void => {
        clearTimeout(timer);
        this.listeners.delete(listener);
      };
      const check = (): boolean => {
        const found = this.frames.find(predicate);
        if (found) {
          finish();
          resolve(found);
          return true;
        }
        if (this.ended) {
          finish();
          reject(new Error(`the connection closed before ${what}; frames: ${this.describe()}`));
          return true;
        }
        return false;
      };
      const listener = (): void => void check();
      if (!check()) this.listeners.add(listener);
    });
  }

  async goaway(ms = 5000): Promise<Goaway> {
    const f = await this.waitFor((x) => x.type === FrameType.GOAWAY, 'GOAWAY', ms);
    return { lastStreamId: f.payload.readUInt32BE(0) & 0x7fffffff, code: f.payload.readUInt32BE(4), debug: f.payload.subarray(8).toString() };
  }

  async rst(streamId: number, ms = 5000): Promise<number> {
    const f = await this.waitFor((x) => x.type === FrameType.RST_STREAM && x.streamId === streamId, `RST_STREAM on stream ${streamId}`, ms);
    return f.payload.readUInt32BE(0);
  }

  /**
   * The first error the server signalled: a RST_STREAM on `streamId` or a GOAWAY with a code other
   * than NO_ERROR, whichever came first (h2spec's "stream error" accepts either).
   */
  async firstError(streamId: number, ms = 5000): Promise<{ kind: 'stream' | 'connection'; code: number }> {
    const f = await this.waitFor(
      (x) => (x.type === FrameType.RST_STREAM && x.streamId === streamId) || (x.type === FrameType.GOAWAY && x.payload.readUInt32BE(4) !== ErrorCode.NO_ERROR),
      `an error on stream ${streamId} or the connection`,
      ms,
    );
    return f.type === FrameType.GOAWAY ? { kind: 'connection', code: f.payload.readUInt32BE(4) } : { kind: 'stream', code: f.payload.readUInt32BE(0) };
  }

  /** Sends a PING and waits for its ACK: the connection is alive and processed everything before it. */
  async ping(ms = 5000): Promise<void> {
    const data = Buffer.alloc(8);
    data.write('rawpeer', 0, 'latin1');
    data[7] = ++this.pingSeq & 0xff;
    this.write(pingFrame(data));
    await this.waitFor((f) => f.type === FrameType.PING && (f.flags & Flag.ACK) !== 0 && f.payload.equals(data), 'the PING ACK', ms);
  }

  /** A complete response on the stream: headers and body up to END_STREAM (or a reset). */
  async response(streamId: number, ms = 5000): Promise<{ headers: Record<string, string | string[]>; body: string; reset: number | undefined }> {
    await this.waitFor(
      (f) => f.streamId === streamId && (f.type === FrameType.RST_STREAM || ((f.flags & Flag.END_STREAM) !== 0 && (f.type === FrameType.DATA || (f.type === FrameType.HEADERS && f.headers !== undefined)))),
      `the response on stream ${streamId}`,
      ms,
    );
    const own = this.frames.filter((f) => f.streamId === streamId);
    const rst = own.find((f) => f.type === FrameType.RST_STREAM);
    const head = own.find((f) => f.type === FrameType.HEADERS);
    const body = Buffer.concat(own.filter((f) => f.type === FrameType.DATA).map((f) => f.payload)).toString();
    return { headers: head?.headers ?? {}, body, reset: rst?.payload.readUInt32BE(0) };
  }

  has(predicate: (f: RawFrame) => boolean): boolean {
    return this.frames.some(predicate);
  }

  describe(): string {
    const shown = this.frames.length > 40 ? [...this.frames.slice(0, 20), ...this.frames.slice(-20)] : this.frames;
    return shown
      .map((f) => `${TYPE_NAMES[f.type] ?? f.type}(${f.streamId}${f.type === FrameType.RST_STREAM || f.type === FrameType.GOAWAY ? `, ${codeName(f.payload.readUInt32BE(f.type === FrameType.GOAWAY ? 4 : 0))}` : ''})`)
      .join(' ');
  }

  close(): void {
    this.socket.destroy();
  }

  private onData(chunk: Buffer): void {
    this.buffered = this.buffered.length === 0 ? chunk : Buffer.concat([this.buffered, chunk]);
    while (this.buffered.length >= FRAME_HEADER_BYTES) {
      const length = this.buffered.readUIntBE(0, 3);
      if (this.buffered.length < FRAME_HEADER_BYTES + length) break;
      const f: RawFrame = {
        type: this.buffered[3] as number,
        flags: this.buffered[4] as number,
        streamId: this.buffered.readUInt32BE(5) & 0x7fffffff,
        payload: Buffer.from(this.buffered.subarray(FRAME_HEADER_BYTES, FRAME_HEADER_BYTES + length)),
      };
      this.buffered = this.buffered.subarray(FRAME_HEADER_BYTES + length);
      this.decode(f);
      // A flood's answers would fill memory with frames nobody looks at: keep only what tests read.
      if (f.type !== FrameType.DATA || this.frames.length < 100_000) this.frames.push(f);
    }
    this.notify();
  }

  private decode(f: RawFrame): void {
    if (f.type === FrameType.HEADERS) {
      let fragment = f.payload;
      if ((f.flags & Flag.PADDED) !== 0) fragment = fragment.subarray(1, fragment.length - (fragment[0] as number));
      if ((f.flags & Flag.PRIORITY) !== 0) fragment = fragment.subarray(5);
      if ((f.flags & Flag.END_HEADERS) !== 0) this.decodeBlock(f, fragment);
      else this.block = { frame: f, parts: [fragment] };
    } else if (f.type === FrameType.CONTINUATION && this.block) {
      this.block.parts.push(f.payload);
      if ((f.flags & Flag.END_HEADERS) !== 0) {
        const block = this.block;
        this.block = undefined;
        this.decodeBlock(block.frame, Buffer.concat(block.parts));
      }
    }
  }

  private decodeBlock(target: RawFrame, block: Buffer): void {
    const headers: Record<string, string | string[]> = {};
    try {
      this.decoder.decode(block, (name, value) => {
        const previous = headers[name];
        if (previous === undefined) headers[name] = value;
        else headers[name] = Array.isArray(previous) ? [...previous, value] : [previous, value];
      });
    } catch (error) {
      headers[':hpack-error'] = (error as Error).message;
    }
    target.headers = headers;
  }

  private notify(): void {
    for (const listener of [...this.listeners]) listener();
  }
}

export type StreamHandler = (stream: H2ServerStream, headers: IncomingHttpHeaders, endStream: boolean, session: H2ServerSession) => void;

/** Answers every request with 200 and a short body once the request body is in. */
export const answerOk: StreamHandler = (stream, headers) => {
  stream.on('error', () => undefined);
  const chunks: Buffer[] = [];
  stream.on('data', (chunk: Buffer) => chunks.push(chunk));
  stream.on('end', () => {
    if (stream.destroyed) return;
    stream.respond({ ':status': 200, 'content-type': 'text/plain' });
    stream.end(`ok ${String(headers[':path'])} ${Buffer.concat(chunks).length}`);
  });
};

export interface LimitEvent {
  kind: string;
  scope: string;
}

export interface TestH2Server {
  port: number;
  sessions: H2ServerSession[];
  /** What the sessions emitted as 'error' (the peer broke the protocol, or the socket failed). */
  errors: Error[];
  /** Every 'limit' event of every session, in order. */
  limits: LimitEvent[];
  /** The index-th session accepted, once it exists. */
  session(index?: number): Promise<H2ServerSession>;
  close(): Promise<void>;
}

export const TEST_SERVER_OPTIONS: H2ServerOptions = { initialWindowSize: 65_535, sessionWindowSize: 1 << 20, maxHeaderListSize: 16 * 1024, maxConcurrentStreams: 100, idleTimeoutMs: 60_000 };

/** A listener on 127.0.0.1 that runs fedgate's server role on each connection (TLS with `tls`). */
export async function startH2Server(handler: StreamHandler = answerOk, overrides: Partial<H2ServerOptions> = {}, tls?: SecureContextOptions): Promise<TestH2Server> {
  const sessions: H2ServerSession[] = [];
  const errors: Error[] = [];
  const limits: LimitEvent[] = [];
  const waiters: Array<() => void> = [];
  const accept = (socket: Socket): void => {
    socket.setNoDelay(true);
    const session = new H2ServerSession(socket, { ...TEST_SERVER_OPTIONS, ...overrides });
    session.on('error', (error: Error) => errors.push(error));
    session.on('limit', (kind: string, scope: string) => limits.push({ kind, scope }));
    session.on('stream', (stream: H2ServerStream, headers: IncomingHttpHeaders, endStream: boolean) => handler(stream, headers, endStream, session));
    sessions.push(session);
    for (const wake of waiters.splice(0)) wake();
  };
  const server: NetServer = tls
    ? createTlsServer({ ...tls, ALPNProtocols: ['h2'] }, (socket: TLSSocket) => accept(socket))
    : createNetServer((socket) => accept(socket));
  server.on('tlsClientError', () => undefined);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const session = async (index = 0): Promise<H2ServerSession> => {
    const deadline = Date.now() + 5000;
    while (sessions.length <= index) {
      if (Date.now() > deadline) throw new Error(`no server session ${index}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 100);
        waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    return sessions[index] as H2ServerSession;
  };
  return {
    port: (server.address() as AddressInfo).port,
    sessions,
    errors,
    limits,
    session,
    close: async () => {
      for (const s of sessions) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Polls until the condition holds (for state that no event announces), or fails naming it. */
export async function until(condition: () => boolean, what: string, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
