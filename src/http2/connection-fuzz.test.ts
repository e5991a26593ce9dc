import fc from 'fast-check';
import type { IncomingHttpHeaders } from 'node:http2';
import { connect as netConnect, createServer as createNetServer, type AddressInfo, type Socket } from 'node:net';
import { H2ClientSession } from './client-session.js';
import { CLIENT_PREFACE, Flag, frame, FRAME_HEADER_BYTES, FrameType, Setting, settingsFrame } from './frames.js';
import { HpackDecoder, HpackEncoder, HpackError } from './hpack.js';
import { Http2Error } from './http2-error.js';
import { H2_CONNECTION_LIMIT_DEFAULTS } from './limits.js';
import { H2ServerSession, type H2ServerStream } from './server-session.js';

/*
 * Property-based tests (issue 28, item 5) over what a peer can send: frame sequences (valid and
 * not, split at random points of the byte stream), HPACK blocks, and header lists. Whatever it
 * sends, a session never throws out of its handlers, never grows past its caps (bytes queued for
 * the socket, open streams, HPACK table), and never hangs: each run ends with the connection
 * either alive (a PING after the input is answered) or closed with a GOAWAY. Real sockets on
 * 127.0.0.1; run counts keep the file to a few seconds.
 */

const MAX_STREAMS = 8;
const HARD_CAP = H2_CONNECTION_LIMIT_DEFAULTS.writeQueueHardLimitBytes;

interface Harness {
  port: number;
  sessions: H2ServerSession[];
  /** What each session emitted as 'error'. */
  errors: Map<H2ServerSession, Error[]>;
  /** Header lists the handler was given: none may carry what would split a header on a later hop. */
  requests: IncomingHttpHeaders[];
  close(): Promise<void>;
}

async function startServer(): Promise<Harness> {
  const sessions: H2ServerSession[] = [];
  const errors = new Map<H2ServerSession, Error[]>();
  const requests: IncomingHttpHeaders[] = [];
  const server = createNetServer((socket) => {
    const session = new H2ServerSession(socket, { initialWindowSize: 65_535, sessionWindowSize: 1 << 20, maxHeaderListSize: 8 * 1024, maxConcurrentStreams: MAX_STREAMS, idleTimeoutMs: 60_000, zeroWindowTimeoutMs: 60_000 });
    const own: Error[] = [];
    errors.set(session, own);
    session.on('error', (error: Error) => own.push(error));
    session.on('stream', (stream: H2ServerStream, headers: IncomingHttpHeaders) => {
      requests.push(headers);
      stream.on('error', () => undefined);
      stream.resume();
      stream.on('end', () => {
        if (stream.destroyed) return;
        stream.respond({ ':status': 200 });
        stream.end('fuzz');
      });
    });
    sessions.push(session);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    sessions,
    errors,
    requests,
    close: async () => {
      for (const session of sessions) session.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** A frame with any header fields and payload: `length` may lie about the payload size only through the payload itself. */
function rawFrame(type: number, flags: number, streamId: number, payload: Uint8Array): Buffer {
  const buf = frame(type, flags, streamId >>> 0, payload.length);
  Buffer.from(payload).copy(buf, FRAME_HEADER_BYTES);
  return buf;
}

const streamIds = fc.constantFrom(0, 1, 2, 3, 5, 7, 9, 11, 13, 0x7fffffff);
const flags = fc.oneof(fc.constantFrom(0, Flag.END_STREAM, Flag.END_HEADERS, Flag.END_HEADERS | Flag.END_STREAM, Flag.PADDED, Flag.PRIORITY | Flag.END_HEADERS), fc.integer({ min: 0, max: 255 }));
const smallBytes = fc.uint8Array({ maxLength: 48 });
const u32 = fc.oneof(fc.constantFrom(0, 1, 65_535, 16_384, 16_385, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1), fc.nat());

function u32Payload(values: readonly number[]): Uint8Array {
  const buf = Buffer.alloc(values.length * 4);
  values.forEach((v, i) => buf.writeUInt32BE(v >>> 0, i * 4));
  return buf;
}

/** Request fields, sometimes well-formed, sometimes not. */
const fieldLists = fc.oneof(
  fc.constant([':method', 'GET', ':scheme', 'http', ':authority', 'fuzz.test', ':path', '/']),
  fc.constant([':method', 'POST', ':scheme', 'http', ':authority', 'fuzz.test', ':path', '/upload', 'content-length', '4']),
  fc.array(fc.tuple(fc.constantFrom(':method', ':path', ':scheme', ':authority', ':status', 'x-a', 'X-Up', 'te', 'connection', 'cookie', ''), fc.string({ maxLength: 12 })), { maxLength: 6 }).map((pairs) => pairs.flat()),
);

/** One frame of any type; HEADERS and CONTINUATION carry blocks from the run's own encoder (HPACK state in step) or raw bytes. */
type FrameSpec = (encoder: HpackEncoder) => Buffer;
const frameSpecs: fc.Arbitrary<FrameSpec> = fc.oneof(
  fc.tuple(streamIds, flags, smallBytes).map(([id, f, p]) => () => rawFrame(FrameType.DATA, f, id, p)),
  fc.tuple(streamIds, flags, fieldLists).map(([id, f, fields]) => (encoder: HpackEncoder) => rawFrame(FrameType.HEADERS, f & ~Flag.PADDED & ~Flag.PRIORITY, id, encoder.encode(fields))),
  fc.tuple(streamIds, flags, smallBytes).map(([id, f, p]) => () => rawFrame(FrameType.HEADERS, f, id, p)),
  fc.tuple(streamIds, flags, fieldLists).map(([id, f, fields]) => (encoder: HpackEncoder) => rawFrame(FrameType.CONTINUATION, f, id, encoder.encode(fields))),
  fc.tuple(streamIds, fc.oneof(fc.uint8Array({ minLength: 5, maxLength: 5 }), smallBytes)).map(([id, p]) => () => rawFrame(FrameType.PRIORITY, 0, id, p)),
  fc.tuple(streamIds, u32).map(([id, code]) => () => rawFrame(FrameType.RST_STREAM, 0, id, u32Payload([code]))),
  fc
    .tuple(fc.constantFrom(0, 0, 0, 1), fc.constantFrom(0, 0, Flag.ACK), fc.array(fc.tuple(fc.integer({ min: 0, max: 8 }), u32), { maxLength: 40 }), fc.boolean())
    .map(([id, f, entries, misaligned]) => () => {
      const payload = Buffer.alloc(entries.length * 6 + (misaligned ? 1 : 0));
      entries.forEach(([key, value], i) => {
        payload.writeUInt16BE(key, i * 6);
        payload.writeUInt32BE(value >>> 0, i * 6 + 2);
      });
      return rawFrame(FrameType.SETTINGS, f, id, payload);
    }),
  fc.tuple(fc.constantFrom(0, 0, 1), fc.constantFrom(0, Flag.ACK), fc.oneof(fc.uint8Array({ minLength: 8, maxLength: 8 }), smallBytes)).map(([id, f, p]) => () => rawFrame(FrameType.PING, f, id, p)),
  fc.tuple(fc.constantFrom(0, 0, 3), u32, u32).map(([id, last, code]) => () => rawFrame(FrameType.GOAWAY, 0, id, u32Payload([last, code]))),
  fc.tuple(streamIds, u32).map(([id, increment]) => () => rawFrame(FrameType.WINDOW_UPDATE, 0, id, u32Payload([increment]))),
  fc.tuple(streamIds, smallBytes).map(([id, p]) => () => rawFrame(FrameType.PUSH_PROMISE, Flag.END_HEADERS, id, p)),
  fc.tuple(fc.integer({ min: 10, max: 255 }), streamIds, flags, smallBytes).map(([type, id, f, p]) => () => rawFrame(type, f, id, p)),
);

/** Cuts `bytes` at the given fractions of its length: the server's reads see any split. */
function splitAt(bytes: Buffer, cuts: readonly number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => Math.floor(c * bytes.length)))].filter((p) => p > 0 && p < bytes.length).sort((a, b) => a - b);
  const parts: Buffer[] = [];
  let from = 0;
  for (const point of points) {
    parts.push(bytes.subarray(from, point));
    from = point;
  }
  parts.push(bytes.subarray(from));
  return parts;
}

interface Outcome {
  alive: boolean;
  goaway: boolean;
  closed: boolean;
}

/**
 * Sends the chunks (a turn of the event loop between them), then a PING, and reports whether the
 * PING was answered or the connection closed (and whether a GOAWAY came first). Fails on a hang.
 */
async function exchange(port: number, chunks: readonly Buffer[], handshake = true): Promise<Outcome> {
  const socket = await new Promise<Socket>((resolve, reject) => {
    const s = netConnect({ host: '127.0.0.1', port, noDelay: true }, () => resolve(s));
    s.once('error', reject);
  });
  socket.on('error', () => undefined);
  const marker = Buffer.from('fuzzping');
  let received = Buffer.alloc(0);
  const outcome: Outcome = { alive: false, goaway: false, closed: false };
  let settle: () => void = () => undefined;
  const done = new Promise<void>((resolve) => (settle = resolve));
  socket.on('data', (chunk: Buffer) => {
    received = Buffer.concat([received, chunk]);
    while (received.length >= FRAME_HEADER_BYTES) {
      const length = received.readUIntBE(0, 3);
      if (received.length < FRAME_HEADER_BYTES + length) break;
      const type = received[3] as number;
      const payload = received.subarray(FRAME_HEADER_BYTES, FRAME_HEADER_BYTES + length);
      if (type === FrameType.GOAWAY) outcome.goaway = true;
      if (type === FrameType.PING && ((received[4] as number) & Flag.ACK) !== 0 && payload.equals(marker)) {
        outcome.alive = true;
        settle();
      }
      received = received.subarray(FRAME_HEADER_BYTES + length);
    }
  });
  socket.on('close', () => {
    outcome.closed = true;
    settle();
  });
  if (handshake) socket.write(Buffer.concat([CLIENT_PREFACE, settingsFrame([])]));
  for (const chunk of chunks) {
    if (socket.destroyed) break;
    socket.write(chunk);
    await new Promise((resolve) => setImmediate(resolve));
  }
  if (!socket.destroyed) socket.write(rawFrame(FrameType.PING, 0, 0, marker));
  const timer = setTimeout(settle, 5000);
  await done;
  clearTimeout(timer);
  socket.destroy();
  if (!outcome.alive && !outcome.closed) throw new Error('the connection neither answered the PING nor closed within 5 s (hang)');
  return outcome;
}

/** Forgets what earlier runs left, so each run is checked on its own connection. */
function freshRun(harness: Harness): void {
  harness.sessions.length = 0;
  harness.errors.clear();
  harness.requests.length = 0;
}

/** The run's sessions once they are closed (the client end is gone): every error they will emit is in. */
async function checkInvariants(harness: Harness): Promise<void> {
  for (const session of harness.sessions) {
    expect(session.peakQueuedBytes).toBeLessThanOrEqual(HARD_CAP + 64 * 1024);
    expect(session.openStreams).toBeLessThanOrEqual(MAX_STREAMS);
    expect(session.decoderTableBytes).toBeLessThanOrEqual(4096);
    if (!session.destroyed) await new Promise((resolve) => session.once('close', resolve));
    for (const error of harness.errors.get(session) ?? []) {
      // Every failure is the peer's, named with its RFC code, or the socket's own (a reset):
      // never an internal error of ours.
      if (error instanceof Http2Error) expect(error.http2CodeName).not.toBe('INTERNAL_ERROR');
      else expect((error as NodeJS.ErrnoException).code).toMatch(/^E[A-Z]+$/);
    }
  }
  const smuggled = harness.requests.flatMap((headers) => Object.entries(headers).flatMap(([name, value]) => (Array.isArray(value) ? value : [String(value)]).map((v) => `${name}: ${v}`))).filter((line) => /[\r\n\0]/.test(line));
  expect(smuggled).toEqual([]);
}

function expectAliveOrGoneWithGoaway(outcome: Outcome): void {
  // Closed without a GOAWAY would be a close the peer cannot tell from a network failure.
  expect(outcome.alive || (outcome.closed && outcome.goaway)).toBe(true);
}

describe('fedgate HTTP/2 under property-based fuzzing', () => {
  let harness: Harness;
  beforeAll(async () => {
    harness = await startServer();
  });
  afterAll(() => harness.close());

  it('frame sequences, valid and invalid, split at random points: no crash, bounded state, no hang', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(frameSpecs, { minLength: 1, maxLength: 24 }), fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 6 }), async (specs, cuts) => {
        freshRun(harness);
        const encoder = new HpackEncoder();
        const bytes = Buffer.concat(specs.map((spec) => spec(encoder)));
        const outcome = await exchange(harness.port, splitAt(bytes, cuts));
        expectAliveOrGoneWithGoaway(outcome);
        await checkInvariants(harness);
      }),
      { numRuns: 300 },
    );
  }, 60_000);

  it('the connection preface itself, cut and corrupted: no crash, no hang', async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 0, max: CLIENT_PREFACE.length }), fc.uint8Array({ maxLength: 16 }), fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 4 }), async (keep, tail, cuts) => {
        freshRun(harness);
        const bytes = Buffer.concat([CLIENT_PREFACE.subarray(0, keep), tail, settingsFrame([])]);
        const outcome = await exchange(harness.port, splitAt(bytes, cuts), false);
        expectAliveOrGoneWithGoaway(outcome);
        await checkInvariants(harness);
      }),
      { numRuns: 60 },
    );
  }, 60_000);

  it('HPACK blocks (random bytes, and valid blocks with bytes flipped) in HEADERS: answered, or a COMPRESSION/PROTOCOL error, never a crash', async () => {
    const blocks = fc.oneof(
      fc.uint8Array({ maxLength: 64 }),
      fc.tuple(fieldLists, fc.nat(), fc.integer({ min: 0, max: 255 })).map(([fields, at, byte]) => {
        const block = new HpackEncoder().encode(fields);
        if (block.length > 0) block[at % block.length] = byte;
        return block;
      }),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(blocks, { minLength: 1, maxLength: 4 }), async (list) => {
        freshRun(harness);
        const frames = list.map((block, i) => rawFrame(FrameType.HEADERS, Flag.END_HEADERS | Flag.END_STREAM, 1 + 2 * i, block));
        const outcome = await exchange(harness.port, frames);
        expectAliveOrGoneWithGoaway(outcome);
        await checkInvariants(harness);
      }),
      { numRuns: 200 },
    );
  }, 60_000);

  it('header lists of any names and values: malformed ones cost their stream only, and none reaches the handler with CR, LF or NUL', async () => {
    const anyChar = fc.integer({ min: 0, max: 255 }).map((c) => String.fromCharCode(c));
    const names = fc.oneof(fc.constantFrom(':method', ':path', ':scheme', ':authority', ':protocol', 'content-length', 'te', 'host', 'x-ok'), fc.string({ unit: anyChar, maxLength: 10 }));
    const values = fc.oneof(fc.constantFrom('GET', 'http', '/', 'svc.test', 'trailers', '0', '12'), fc.string({ unit: anyChar, maxLength: 16 }));
    await fc.assert(
      fc.asyncProperty(fc.array(fc.tuple(names, values), { maxLength: 10 }), fc.boolean(), async (pairs, withBase) => {
        freshRun(harness);
        const encoder = new HpackEncoder();
        const base = withBase ? [':method', 'GET', ':scheme', 'http', ':authority', 'svc.test', ':path', '/'] : [];
        const frames = [rawFrame(FrameType.HEADERS, Flag.END_HEADERS | Flag.END_STREAM, 1, encoder.encode([...base, ...pairs.flat()]))];
        const outcome = await exchange(harness.port, frames);
        // Nothing in a header list is a connection error: the PING after it is answered.
        expect(outcome.alive).toBe(true);
        await checkInvariants(harness);
      }),
      { numRuns: 200 },
    );
  }, 60_000);
});

describe('HPACK decoder under property-based fuzzing (no socket)', () => {
  it('decodes any bytes to fields or an HpackError, and its table never exceeds its size', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 96 }), { minLength: 1, maxLength: 8 }), (blocks) => {
        const decoder = new HpackDecoder(4096, 16 * 1024);
        for (const block of blocks) {
          try {
            decoder.decode(Buffer.from(block), () => undefined);
          } catch (error) {
            expect(error).toBeInstanceOf(HpackError);
            return;
          }
          expect(decoder.tableSize).toBeLessThanOrEqual(4096);
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('decodes what the encoder encodes, block after block, with the tables in step', () => {
    const field = fc.tuple(fc.string({ minLength: 1, maxLength: 20 }).map((s) => s.toLowerCase()), fc.string({ maxLength: 300 }));
    fc.assert(
      fc.property(fc.array(fc.array(field, { maxLength: 12 }), { minLength: 1, maxLength: 6 }), fc.constantFrom(4096, 256, 0), (lists, tableSize) => {
        const encoder = new HpackEncoder();
        const decoder = new HpackDecoder(4096, 1 << 20);
        encoder.setMaxTableSize(tableSize);
        for (const list of lists) {
          const decoded: string[] = [];
          decoder.decode(encoder.encode(list.flat()), (name, value) => decoded.push(name, value));
          expect(decoded).toEqual(list.flat().map((s) => Buffer.from(s, 'latin1').toString('latin1')));
          expect(decoder.tableSize).toBeLessThanOrEqual(tableSize);
        }
      }),
      { numRuns: 300 },
    );
  });
});

describe('the client role under property-based fuzzing', () => {
  it('a server that answers with random frames: the client session never crashes or hangs, and stays bounded', async () => {
    const marker = Buffer.from('fuzzping');
    await fc.assert(
      fc.asyncProperty(fc.array(frameSpecs, { minLength: 1, maxLength: 16 }), fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 4 }), async (specs, cuts) => {
        const encoder = new HpackEncoder();
        const reply = Buffer.concat([settingsFrame([[Setting.MAX_CONCURRENT_STREAMS, 100]]), ...specs.map((spec) => spec(encoder)), rawFrame(FrameType.PING, 0, 0, marker)]);
        // The raw server sends the reply, then watches for the client's answer to its final PING
        // (the client is alive and processed everything); otherwise the client session must close.
        // (Not the raw server's socket closing: the client may see its own close a moment later.)
        let answered = false;
        let settle: () => void = () => undefined;
        const finished = new Promise<void>((resolve) => (settle = resolve));
        const server = createNetServer((socket) => {
          socket.on('error', () => undefined);
          let inbound = Buffer.alloc(0);
          let prefaceSeen = false;
          let started = false;
          socket.on('data', (chunk: Buffer) => {
            inbound = Buffer.concat([inbound, chunk]);
            if (!prefaceSeen) {
              if (inbound.length < CLIENT_PREFACE.length) return;
              prefaceSeen = true;
              inbound = inbound.subarray(CLIENT_PREFACE.length);
            }
            while (inbound.length >= FRAME_HEADER_BYTES) {
              const length = inbound.readUIntBE(0, 3);
              if (inbound.length < FRAME_HEADER_BYTES + length) break;
              const isAck = inbound[3] === FrameType.PING && ((inbound[4] as number) & Flag.ACK) !== 0;
              if (isAck && inbound.subarray(FRAME_HEADER_BYTES, FRAME_HEADER_BYTES + length).equals(marker)) {
                answered = true;
                settle();
              }
              inbound = inbound.subarray(FRAME_HEADER_BYTES + length);
            }
            if (started) return;
            started = true;
            void (async () => {
              for (const part of splitAt(reply, cuts)) {
                if (socket.destroyed) return;
                socket.write(part);
                await new Promise((resolve) => setImmediate(resolve));
              }
            })();
          });
        });
        await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
        const socket = netConnect({ host: '127.0.0.1', port: (server.address() as AddressInfo).port, noDelay: true });
        const session = new H2ClientSession(socket, { initialWindowSize: 65_535, sessionWindowSize: 1 << 20, maxHeaderListSize: 8 * 1024 });
        const errors: Error[] = [];
        session.on('error', (error: Error) => errors.push(error));
        let closed = false;
        session.once('close', () => {
          closed = true;
          settle();
        });
        try {
          const stream = session.request([':method', 'GET', ':scheme', 'http', ':authority', 'fuzz.test', ':path', '/'], true);
          stream.on('error', () => undefined);
          stream.resume();
          const timer = setTimeout(settle, 5000);
          await finished;
          clearTimeout(timer);
          if (!answered && !closed && !session.destroyed) throw new Error(`the client session neither answered the PING nor closed within 5 s (hang) ${JSON.stringify({ c: session.closed, o: session.openStreams, q: session.queuedBytes, rs: session.remoteSettings, sd: socket.destroyed, w: socket.bytesWritten, r: socket.bytesRead, reply: reply.length, errors: errors.map((e) => e.message) })}`);
          expect(session.peakQueuedBytes).toBeLessThanOrEqual(HARD_CAP + 64 * 1024);
          expect(session.decoderTableBytes).toBeLessThanOrEqual(4096);
          for (const error of errors) {
            if (error instanceof Http2Error) expect(error.http2CodeName).not.toBe('INTERNAL_ERROR');
          }
        } finally {
          session.destroy();
          await new Promise<void>((resolve) => server.close(() => resolve()));
        }
      }),
      { numRuns: 60 },
    );
  }, 60_000);
});
