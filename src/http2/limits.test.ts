import { createServer as createNetServer, connect as netConnect, type AddressInfo, type Socket } from 'node:net';
import {
  codeName,
  dataFrame,
  pingFrame,
  RawPeer,
  rawFrame,
  request,
  rstFrame,
  settingsFrameOf,
  startH2Server,
  until,
  windowUpdate,
  type StreamHandler,
  type TestH2Server,
} from '../../test/support/http2-raw-peer.js';
import { H2ClientSession } from './client-session.js';
import { ErrorCode, Flag, FrameType, Setting } from './frames.js';
import { HpackEncoder } from './hpack.js';
import { Http2Error, Http2ErrorCodes } from './http2-error.js';
import { H2_CONNECTION_LIMIT_DEFAULTS, H2_LIMIT_KINDS, resolveConnectionLimits, TokenBucket, type H2LimitKind } from './limits.js';
import type { H2ServerOptions, H2ServerStream } from './server-session.js';

// Each limit of ./limits.ts and the server role, exceeded on a real socket by a raw peer: what goes
// on the wire, and the 'limit' event the gateway counts. Issue 28's attacks themselves are in
// test/integration/http2-findings.test.ts.

const cleanup: Array<() => void | Promise<void>> = [];
afterEach(async () => {
  for (const undo of cleanup.splice(0).reverse()) await undo();
});

async function server(handler?: StreamHandler, options: Partial<H2ServerOptions> = {}): Promise<TestH2Server> {
  const started = await startH2Server(handler, options);
  cleanup.push(() => started.close());
  return started;
}

async function peer(port: number, settings: ReadonlyArray<readonly [number, number]> = []): Promise<RawPeer> {
  const opened = await RawPeer.handshake({ port }, settings);
  cleanup.push(() => opened.close());
  return opened;
}

const get = (path = '/'): string[] => request('GET', path);
const MiB = 1024 * 1024;

/** Streams `total` bytes as a writer that respects backpressure does. */
function streamBody(total: number, chunk = Buffer.alloc(64 * 1024, 1)): StreamHandler {
  return (stream) => {
    stream.on('error', () => undefined);
    stream.respond({ ':status': 200 });
    let written = 0;
    const pump = (): void => {
      while (written < total && !stream.destroyed) {
        written += chunk.length;
        if (!stream.write(chunk)) {
          stream.once('drain', pump);
          return;
        }
      }
      if (!stream.destroyed) stream.end();
    };
    pump();
  };
}

describe('limit options', () => {
  it('resolves every unset limit to its default, and refuses values that are not positive numbers', () => {
    expect(resolveConnectionLimits({})).toEqual(H2_CONNECTION_LIMIT_DEFAULTS);
    expect(resolveConnectionLimits({ zeroWindowTimeoutMs: 5 }).zeroWindowTimeoutMs).toBe(5);
    expect(() => resolveConnectionLimits({ maxSettingsEntries: 0 })).toThrow('HTTP/2 limit maxSettingsEntries must be a positive number, not 0');
    expect(() => resolveConnectionLimits({ pingRatePerSecond: Number.NaN })).toThrow('pingRatePerSecond must be a positive number');
    expect(() => resolveConnectionLimits({ maxWriteQueueBytes: 8 * MiB })).toThrow('writeQueueHardLimitBytes (4194304) is below maxWriteQueueBytes (8388608)');
  });

  it('a token bucket gives its burst, then refuses, and takes back what good behaviour earns', () => {
    const bucket = new TokenBucket(3, 1e-9);
    expect([bucket.take(), bucket.take(), bucket.take(), bucket.take()]).toEqual([true, true, true, false]);
    bucket.give();
    expect([bucket.take(), bucket.take()]).toEqual([true, false]);
  });

  it('names every kind once, in the documented order', () => {
    const exhaustive = (kind: H2LimitKind): number => {
      switch (kind) {
        case 'write-queue':
        case 'stream-buffer':
        case 'zero-window':
        case 'settings-flood':
        case 'ping-flood':
        case 'rst-flood':
        case 'empty-frames':
        case 'streams':
        case 'header-size':
        case 'headers-timeout':
        case 'idle':
          return 1;
      }
    };
    expect(H2_LIMIT_KINDS.map(exhaustive)).toHaveLength(11);
    expect(new Set(H2_LIMIT_KINDS).size).toBe(11);
  });
});

describe('the write queue', () => {
  it('ends a connection whose queue stays at the cap past writeStallTimeoutMs (write-queue), with an Http2Error naming it', async () => {
    const target = await server(streamBody(200 * MiB), { writeStallTimeoutMs: 300, initialWindowSize: 1 << 20 });
    const hostile = await peer(target.port, [[Setting.INITIAL_WINDOW_SIZE, 2 ** 31 - 1]]);
    hostile.write(windowUpdate(0, 2 ** 31 - 1 - 65_535));
    hostile.stopReading();
    hostile.request(1, get('/stall'));
    const session = await target.session(0);
    await until(() => session.destroyed, 'the stalled connection to end', 20_000);
    expect(target.limits).toContainEqual({ kind: 'write-queue', scope: 'connection' });
    const error = target.errors[0] as Http2Error;
    expect(error).toBeInstanceOf(Http2Error);
    expect(error).toMatchObject({ code: Http2ErrorCodes.CONNECTION, scope: 'connection', http2Code: ErrorCode.ENHANCE_YOUR_CALM, origin: 'local', limit: 'write-queue' });
    expect(error.message).toMatch(/read nothing for 300 ms/);
    expect(session.peakQueuedBytes).toBeLessThanOrEqual(4 * MiB);
  });

  it('ends a connection whose peer asks for PING answers and reads none, at the hard cap (write-queue)', async () => {
    const target = await server(undefined, { pingBurst: 1e9, pingRatePerSecond: 1e9 });
    const hostile = await peer(target.port);
    hostile.stopReading();
    const flood = Buffer.concat(Array.from({ length: 10_000 }, () => pingFrame(Buffer.alloc(8, 1))));
    const session = await target.session(0);
    for (let i = 0; i < 400 && !session.destroyed; i++) if (!(await hostile.writeAndDrain(flood))) break;
    await until(() => session.destroyed, 'the connection to end');
    expect(target.limits).toContainEqual({ kind: 'write-queue', scope: 'connection' });
    expect(session.peakQueuedBytes).toBeLessThanOrEqual(4 * MiB + 64 * 1024);
  });

  it('sends nothing of a held body before the socket drains, then all of it to a reader that catches up', async () => {
    const total = 24 * MiB;
    const target = await server(streamBody(total), { initialWindowSize: 1 << 20 });
    const slow = await peer(target.port, [[Setting.INITIAL_WINDOW_SIZE, 2 ** 31 - 1]]);
    slow.write(windowUpdate(0, 2 ** 31 - 1 - 65_535));
    slow.stopReading();
    slow.request(1, get('/catch-up'));
    const session = await target.session(0);
    await until(() => session.congested, 'the queue to reach its cap');
    expect(session.queuedBytes).toBeLessThanOrEqual(1 * MiB + 16 * 1024 + 9);
    slow.resumeReading();
    await slow.waitFor((f) => f.type === FrameType.DATA && f.streamId === 1 && (f.flags & Flag.END_STREAM) !== 0, 'the end of the body', 20_000);
    const received = slow.frames.filter((f) => f.type === FrameType.DATA && f.streamId === 1).reduce((sum, f) => sum + f.payload.length, 0);
    expect(received).toBe(total);
    expect(target.limits).toEqual([]);
  });
});

describe('the stream limit while the queue is backlogged', () => {
  it('does not count a stream the peer reset against the limit while the queue is backlogged (the peer may reuse the slot at once)', async () => {
    const opened: number[] = [];
    const body = streamBody(64 * MiB);
    const target = await server(
      (stream, headers, endStream, session) => {
        opened.push(stream.id);
        body(stream, headers, endStream, session);
      },
      { maxConcurrentStreams: 2, initialWindowSize: 1 << 20 },
    );
    const slow = await peer(target.port, [[Setting.INITIAL_WINDOW_SIZE, 2 ** 31 - 1]]);
    slow.write(windowUpdate(0, 2 ** 31 - 1 - 65_535));
    slow.stopReading();
    slow.request(1, get('/one'));
    slow.request(3, get('/two'));
    const session = await target.session(0);
    await until(() => session.congested && opened.length === 2, 'two streams open and the queue at its cap');
    // The peer gives up on stream 3: for it, a slot is free, and it uses it at once.
    slow.write(rstFrame(3, ErrorCode.CANCEL));
    slow.request(5, get('/three'));
    await until(() => opened.length === 3 || target.limits.length > 0, 'stream 5 to be taken or refused');
    expect(opened).toEqual([1, 3, 5]);
    expect(target.limits).toEqual([]);
  });
});

describe('flow-control windows', () => {
  it('resets a stream stuck on a connection window the peer never opens (zero-window)', async () => {
    const target = await server(streamBody(256 * 1024), { zeroWindowTimeoutMs: 200 });
    // A large stream window, the default 64 KiB connection window, never replenished.
    const stuck = await peer(target.port, [[Setting.INITIAL_WINDOW_SIZE, 1 << 20]]);
    stuck.request(1, get('/stuck'));
    expect(codeName(await stuck.rst(1))).toBe('ENHANCE_YOUR_CALM');
    expect(target.limits).toEqual([{ kind: 'zero-window', scope: 'stream' }]);
    await stuck.ping();
  });

  it('restarts a stream’s zero-window clock whenever the peer’s window lets data out', async () => {
    let served: H2ServerStream | undefined;
    const body = streamBody(64 * 1024, Buffer.alloc(16 * 1024, 2));
    const target = await server((stream, headers, endStream, session) => {
      served = stream;
      body(stream, headers, endStream, session);
    });
    const trickle = await peer(target.port, [[Setting.INITIAL_WINDOW_SIZE, 16 * 1024]]);
    trickle.request(1, get('/trickle'));
    const dataFrames = (): number => trickle.frames.filter((f) => f.type === FrameType.DATA && f.streamId === 1).length;
    await trickle.waitFor(() => dataFrames() >= 1, 'the first DATA frame');
    // The rest of the body waits for window: the clock runs from when it began waiting.
    await until(() => (served?.windowBlockedSince ?? 0) > 0, 'the stream to wait for window');
    const firstWait = served?.windowBlockedSince ?? 0;
    trickle.write(windowUpdate(1, 16 * 1024));
    await trickle.waitFor(() => dataFrames() >= 2, 'the second DATA frame');
    // Data went out: the clock stopped, and started again only when the stream waited anew.
    await until(() => (served?.windowBlockedSince ?? 0) > firstWait, 'the stream to wait again');
    expect(served?.holdsWrite).toBe(true);
    expect(target.limits).toEqual([]);
  });
});

describe('PING and SETTINGS', () => {
  it('ends a connection flooding PINGs while no data flows (ping-flood)', async () => {
    const target = await server(undefined, { pingBurst: 20, pingRatePerSecond: 1 });
    const flooder = await peer(target.port);
    flooder.write(...Array.from({ length: 100 }, (_, i) => pingFrame(Buffer.alloc(8, i))));
    expect(codeName((await flooder.goaway()).code)).toBe('ENHANCE_YOUR_CALM');
    expect(target.limits).toEqual([{ kind: 'ping-flood', scope: 'connection' }]);
    // The burst was answered before the limit hit.
    expect(flooder.frames.filter((f) => f.type === FrameType.PING && (f.flags & Flag.ACK) !== 0).length).toBeGreaterThanOrEqual(19);
  });

  it('answers a PING after each DATA frame it sent (gRPC bandwidth probes) without counting them', async () => {
    const target = await server(streamBody(400 * 16 * 1024, Buffer.alloc(16 * 1024, 3)), { pingBurst: 2, pingRatePerSecond: 1e-3 });
    const prober = await peer(target.port, [[Setting.INITIAL_WINDOW_SIZE, 2 ** 31 - 1]]);
    prober.write(windowUpdate(0, 2 ** 31 - 1 - 65_535));
    // As grpc-go's BDP estimator: one probe at a time, sent when DATA arrives, the next once it is answered.
    let probes = 0;
    let outstanding = false;
    let dataSeen = 0;
    prober.socket.on('data', () => {
      const acks = prober.frames.filter((f) => f.type === FrameType.PING && (f.flags & Flag.ACK) !== 0).length;
      if (outstanding && acks >= probes) outstanding = false;
      const data = prober.frames.filter((f) => f.type === FrameType.DATA).length;
      if (!outstanding && data > dataSeen) {
        dataSeen = data;
        outstanding = true;
        prober.write(pingFrame(Buffer.alloc(8, ++probes & 0xff)));
      }
    });
    prober.request(1, get('/bdp'));
    await prober.response(1, 20_000);
    expect(probes).toBeGreaterThan(2);
    expect(prober.has((f) => f.type === FrameType.GOAWAY)).toBe(false);
    expect(target.limits).toEqual([]);
  });

  it('accepts a SETTINGS frame of exactly maxSettingsEntries, and ends the connection at one more (settings-flood)', async () => {
    const target = await server();
    const within = await peer(target.port);
    within.write(settingsFrameOf(Array.from({ length: 32 }, () => [Setting.MAX_CONCURRENT_STREAMS, 10] as const)));
    await within.ping();
    const beyond = await peer(target.port);
    beyond.write(settingsFrameOf(Array.from({ length: 33 }, () => [Setting.MAX_CONCURRENT_STREAMS, 10] as const)));
    expect(codeName((await beyond.goaway()).code)).toBe('ENHANCE_YOUR_CALM');
    expect(target.limits).toEqual([{ kind: 'settings-flood', scope: 'connection' }]);
  });

  it('the client role refuses a SETTINGS flood from the server too', async () => {
    const listener = createNetServer((socket) => {
      socket.on('error', () => undefined);
      socket.once('data', () => socket.write(settingsFrameOf(Array.from({ length: 40 }, () => [Setting.INITIAL_WINDOW_SIZE, 0] as const))));
    });
    await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
    cleanup.push(() => new Promise<void>((resolve) => listener.close(() => resolve())));
    const socket = netConnect({ host: '127.0.0.1', port: (listener.address() as AddressInfo).port });
    const client = new H2ClientSession(socket, { initialWindowSize: 65_535, sessionWindowSize: 65_535 });
    cleanup.push(() => client.destroy());
    const limits: Array<[string, string]> = [];
    client.on('limit', (kind: string, scope: string) => limits.push([kind, scope]));
    const error = await new Promise<Error>((resolve) => client.once('error', resolve));
    expect(error).toMatchObject({ scope: 'connection', http2Code: ErrorCode.ENHANCE_YOUR_CALM, limit: 'settings-flood' });
    expect(limits).toEqual([['settings-flood', 'connection']]);
  });
});

describe('streams and abuse budgets of the server role', () => {
  const blocked: StreamHandler = (stream) => {
    stream.on('error', () => undefined);
    stream.respond({ ':status': 200 });
    stream.end('held by a zero window');
  };

  it('refuses a stream above maxConcurrentStreams (streams, stream) and ends a peer that keeps opening them (streams, connection)', async () => {
    const target = await server(blocked, { maxConcurrentStreams: 2, abuseBurst: 5, abuseRatePerSecond: 1e-3 });
    const greedy = await peer(target.port, [[Setting.INITIAL_WINDOW_SIZE, 0]]);
    greedy.request(1, get());
    greedy.request(3, get());
    greedy.request(5, get());
    expect(codeName(await greedy.rst(5))).toBe('REFUSED_STREAM');
    for (let id = 7; id < 7 + 2 * 10; id += 2) greedy.request(id, get());
    expect(codeName((await greedy.goaway()).code)).toBe('ENHANCE_YOUR_CALM');
    expect(target.limits.filter((l) => l.scope === 'stream').every((l) => l.kind === 'streams')).toBe(true);
    expect(target.limits.at(-1)).toEqual({ kind: 'streams', scope: 'connection' });
  });

  it('ends a rapid-reset peer past its budget (rst-flood)', async () => {
    const target = await server((stream) => stream.on('error', () => undefined), { abuseBurst: 10, abuseRatePerSecond: 1e-3 });
    const resetter = await peer(target.port);
    const frames: Buffer[] = [];
    for (let id = 1; id < 1 + 2 * 20; id += 2) frames.push(resetter.headersFrame(id, request('POST', '/'), false), rstFrame(id, ErrorCode.CANCEL));
    resetter.write(...frames);
    expect(codeName((await resetter.goaway()).code)).toBe('ENHANCE_YOUR_CALM');
    expect(target.limits).toEqual([{ kind: 'rst-flood', scope: 'connection' }]);
  });

  it('ends a peer flooding empty DATA frames (empty-frames)', async () => {
    const target = await server((stream) => stream.on('error', () => undefined), { abuseBurst: 10, abuseRatePerSecond: 1e-3 });
    const flooder = await peer(target.port);
    flooder.request(1, request('POST', '/'), false);
    flooder.write(...Array.from({ length: 20 }, () => dataFrame(1, '', false)));
    expect(codeName((await flooder.goaway()).code)).toBe('ENHANCE_YOUR_CALM');
    expect(target.limits).toEqual([{ kind: 'empty-frames', scope: 'connection' }]);
  });
});

describe('header limits and timeouts', () => {
  it('answers a header list above maxHeaderListSize with 431 (header-size, stream)', async () => {
    const target = await server(undefined, { maxHeaderListSize: 1024 });
    const big = await peer(target.port);
    big.request(1, get('/big').concat(['x-big', 'b'.repeat(2000)]));
    expect((await big.response(1)).headers[':status']).toBe('431');
    expect(target.limits).toEqual([{ kind: 'header-size', scope: 'stream' }]);
    await big.ping();
  });

  it('ends a connection whose header block spans more than 16 CONTINUATION frames (header-size, connection)', async () => {
    const target = await server();
    const flood = await peer(target.port);
    const block = new HpackEncoder().encode(get());
    flood.write(rawFrame(FrameType.HEADERS, Flag.END_STREAM, 1, block.subarray(0, 1)), ...Array.from({ length: 20 }, () => rawFrame(FrameType.CONTINUATION, 0, 1, Buffer.alloc(0))));
    expect(codeName((await flood.goaway()).code)).toBe('ENHANCE_YOUR_CALM');
    expect(target.limits).toEqual([{ kind: 'header-size', scope: 'connection' }]);
  });

  it('ends a connection that leaves a header block unfinished past headersTimeoutMs (headers-timeout)', async () => {
    const target = await server(undefined, { headersTimeoutMs: 200 });
    const slow = await peer(target.port);
    slow.write(rawFrame(FrameType.HEADERS, Flag.END_STREAM, 1, new HpackEncoder().encode(get())));
    expect(codeName((await slow.goaway()).code)).toBe('PROTOCOL_ERROR');
    expect(target.limits).toEqual([{ kind: 'headers-timeout', scope: 'connection' }]);
  });

  it('closes an idle connection gracefully after idleTimeoutMs (idle)', async () => {
    const target = await server(undefined, { idleTimeoutMs: 200 });
    const quiet = await peer(target.port);
    expect(codeName((await quiet.goaway()).code)).toBe('NO_ERROR');
    await quiet.closed;
    expect(target.limits).toEqual([{ kind: 'idle', scope: 'connection' }]);
  });
});

describe('errors the stack raises', () => {
  it('a stream the peer resets fails with an Http2Error of origin remote carrying the RFC code', async () => {
    let streamError: Error | undefined;
    const target = await server((stream) => stream.on('error', (error: Error) => (streamError = error)));
    const resetting = await peer(target.port);
    resetting.request(1, request('POST', '/'), false);
    await until(() => target.sessions[0]?.openStreams === 1, 'the stream to open');
    resetting.write(rstFrame(1, ErrorCode.INTERNAL_ERROR));
    await until(() => streamError !== undefined, 'the stream error');
    expect(streamError).toBeInstanceOf(Http2Error);
    expect(streamError).toMatchObject({ code: Http2ErrorCodes.STREAM, scope: 'stream', http2Code: ErrorCode.INTERNAL_ERROR, origin: 'remote', http2CodeName: 'INTERNAL_ERROR' });
  });

  it('a connection error is an Http2Error with the code sent in the GOAWAY', async () => {
    const target = await server();
    const broken = await peer(target.port);
    broken.write(windowUpdate(0, 0));
    const goaway = await broken.goaway();
    await until(() => target.errors.length > 0, 'the session error');
    expect(target.errors[0]).toMatchObject({ scope: 'connection', http2Code: goaway.code, origin: 'local', limit: undefined });
  });

  it('keeps the socket’s own failures as the socket raised them (ECONNREFUSED for the gateway to recognise)', async () => {
    const unused = createNetServer();
    await new Promise<void>((resolve) => unused.listen(0, '127.0.0.1', resolve));
    const port = (unused.address() as AddressInfo).port;
    await new Promise<void>((resolve) => unused.close(() => resolve()));
    const socket: Socket = netConnect({ host: '127.0.0.1', port });
    const client = new H2ClientSession(socket, { initialWindowSize: 65_535, sessionWindowSize: 65_535 });
    const error = await new Promise<Error>((resolve) => client.once('error', resolve));
    expect(error).not.toBeInstanceOf(Http2Error);
    expect(error.message).toMatch(/ECONNREFUSED/);
  });
});
