import { constants, createServer, type Http2Server, type IncomingHttpHeaders, type ServerHttp2Session, type ServerHttp2Stream } from 'node:http2';
import { connect as netConnect, createServer as createNetServer, type AddressInfo, type Server as NetServer, type Socket } from 'node:net';
import { H2ClientSession, type H2ClientStream } from './client-session.js';
import { ErrorCode } from './frames.js';

// These tests speak to Node's own HTTP/2 server (nghttp2) in cleartext; the gateway tests run the
// same client over mutual TLS between gateway processes.

type StreamHandler = (stream: ServerHttp2Stream, headers: IncomingHttpHeaders, flags: number) => void;

async function startServer(handler: StreamHandler, settings: Record<string, unknown> = {}): Promise<{ server: Http2Server; port: number }> {
  const server = createServer({ settings: { maxHeaderListSize: 256 * 1024, ...settings }, maxSessionMemory: 64 });
  server.on('stream', handler);
  server.on('sessionError', () => undefined);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as AddressInfo).port };
}

async function open(port: number, options: Partial<{ initialWindowSize: number; sessionWindowSize: number }> = {}): Promise<H2ClientSession> {
  const socket = await new Promise<Socket>((resolve, reject) => {
    const s = netConnect({ host: '127.0.0.1', port }, () => resolve(s));
    s.once('error', reject);
  });
  const session = new H2ClientSession(socket, { initialWindowSize: 4 * 1024 * 1024, sessionWindowSize: 32 * 1024 * 1024, maxHeaderListSize: 64 * 1024, ...options });
  session.on('error', () => undefined);
  await new Promise((resolve, reject) => {
    session.once('connect', resolve);
    session.once('close', () => reject(new Error('closed before settings')));
  });
  return session;
}

interface Received {
  headers: IncomingHttpHeaders;
  body: Buffer;
  trailers: IncomingHttpHeaders | undefined;
  stream: H2ClientStream;
}

function collect(stream: H2ClientStream): Promise<Received> {
  return new Promise((resolve, reject) => {
    let headers: IncomingHttpHeaders | undefined;
    let trailers: IncomingHttpHeaders | undefined;
    const chunks: Buffer[] = [];
    stream.once('response', (h: IncomingHttpHeaders) => (headers = h));
    stream.once('trailers', (t: IncomingHttpHeaders) => (trailers = t));
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    stream.once('end', () => resolve({ headers: headers as IncomingHttpHeaders, body: Buffer.concat(chunks), trailers, stream }));
    stream.once('error', reject);
    stream.once('close', () => {
      if (!stream.readableEnded) reject(new Error(`closed before the end (rst ${String(stream.rstCode)})`));
    });
  });
}

const get = (path: string, extra: string[] = []): string[] => [':method', 'GET', ':scheme', 'http', ':authority', 'svc.test', ':path', path, ...extra];

function closed(stream: H2ClientStream): Promise<void> {
  return new Promise((resolve) => (stream.closed ? resolve() : stream.once('close', () => resolve())));
}

describe('H2ClientSession against Node’s HTTP/2 server', () => {
  let server: Http2Server;
  let port: number;
  const seen: IncomingHttpHeaders[] = [];

  beforeAll(async () => {
    ({ server, port } = await startServer((stream, headers) => {
      stream.on('error', () => undefined);
      seen.push(headers);
      const path = String(headers[':path']);
      if (path === '/echo') {
        stream.respond({ ':status': 200 });
        stream.on('data', (chunk: Buffer) => stream.write(chunk));
        stream.on('end', () => stream.end());
        return;
      }
      if (path === '/big') {
        stream.respond({ ':status': 200 });
        const block = Buffer.alloc(64 * 1024);
        let sent = 0;
        const pump = (): void => {
          while (sent < 80) {
            block.fill(sent % 256);
            sent += 1;
            if (!stream.write(Buffer.from(block))) {
              stream.once('drain', pump);
              return;
            }
          }
          stream.end();
        };
        pump();
        return;
      }
      if (path === '/trailers') {
        stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
        stream.once('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0', 'grpc-message': 'fine' }));
        stream.end(Buffer.from('payload'));
        return;
      }
      if (path === '/refuse') {
        stream.close(constants.NGHTTP2_REFUSED_STREAM);
        return;
      }
      if (path === '/hang') return;
      if (path === '/early') {
        // Answers before reading the upload, as a server that rejects a body does.
        stream.respond({ ':status': 413 }, { endStream: false });
        stream.end('too large');
        return;
      }
      if (path === '/headers') {
        stream.respond({ ':status': 201, 'set-cookie': ['a=1', 'b=2'], 'x-long': 'v'.repeat(5000), 'x-latin1': 'caf\u00e9', 'x-echo': String(headers['x-big']?.length ?? 0) });
        stream.end();
        return;
      }
      stream.respond({ ':status': 200, 'content-type': 'text/plain', 'x-path': path });
      stream.end(`hello ${path}`);
    }));
  });

  afterAll(async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  it('carries many concurrent requests on one session, with headers and bodies intact', async () => {
    const session = await open(port);
    const results = await Promise.all(Array.from({ length: 200 }, (_, i) => collect(session.request(get(`/r${i}`, ['x-index', String(i)]), true))));
    results.forEach((r, i) => {
      expect(r.headers[':status']).toBe(200);
      expect(r.headers['x-path']).toBe(`/r${i}`);
      expect(r.body.toString()).toBe(`hello /r${i}`);
    });
    expect(seen.filter((h) => h['x-index'] !== undefined)).toHaveLength(200);
    await Promise.all(results.map((r) => closed(r.stream)));
    expect(session.openStreams).toBe(0);
    session.destroy();
  });

  it('decodes repeated, long, latin1 and large header blocks (CONTINUATION both ways)', async () => {
    const session = await open(port);
    const big = 'x'.repeat(40_000);
    for (let round = 0; round < 3; round++) {
      const r = await collect(session.request(get('/headers', ['x-big', big]), true));
      expect(r.headers[':status']).toBe(201);
      expect(r.headers['set-cookie']).toEqual(['a=1', 'b=2']);
      expect(r.headers['x-long']).toBe('v'.repeat(5000));
      expect(r.headers['x-latin1']).toBe('caf\u00e9');
      expect(r.headers['x-echo']).toBe('40000');
    }
    session.destroy();
  });

  it('streams a 3 MiB upload through the peer’s 64 KiB windows and reads the echo back', async () => {
    const session = await open(port);
    const stream = session.request([':method', 'POST', ':scheme', 'http', ':authority', 'svc.test', ':path', '/echo'], false);
    const received = collect(stream);
    const parts = Array.from({ length: 48 }, (_, i) => Buffer.alloc(64 * 1024, i));
    for (const part of parts) {
      if (!stream.write(part)) await new Promise((resolve) => stream.once('drain', resolve));
    }
    stream.end();
    const r = await received;
    expect(r.body.length).toBe(3 * 1024 * 1024);
    expect(r.body.equals(Buffer.concat(parts))).toBe(true);
    session.destroy();
  });

  it('gives window back only as a slow reader consumes a 5 MiB response', async () => {
    const session = await open(port, { initialWindowSize: 256 * 1024, sessionWindowSize: 1024 * 1024 });
    const stream = session.request(get('/big'), true);
    const chunks: Buffer[] = [];
    stream.pause();
    await new Promise((resolve) => setTimeout(resolve, 100));
    // Paused: at most the stream window was sent.
    expect(stream.readableLength).toBeLessThanOrEqual(256 * 1024);
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.resume();
    await new Promise((resolve) => stream.once('end', resolve));
    const body = Buffer.concat(chunks);
    expect(body.length).toBe(80 * 64 * 1024);
    for (let i = 0; i < 80; i++) expect(body[i * 64 * 1024 + 17]).toBe(i % 256);
    session.destroy();
  });

  it('keeps what unread streams buffer within the session window, and completes them all once read', async () => {
    const session = await open(port, { initialWindowSize: 512 * 1024, sessionWindowSize: 1024 * 1024 });
    const streams = Array.from({ length: 4 }, () => session.request(get('/big'), true));
    for (const stream of streams) stream.pause();
    await new Promise((resolve) => setTimeout(resolve, 200));
    const buffered = streams.reduce((sum, stream) => sum + stream.readableLength, 0);
    expect(buffered).toBeGreaterThan(0);
    expect(buffered).toBeLessThanOrEqual(1024 * 1024);
    const sizes = await Promise.all(
      streams.map(
        (stream) =>
          new Promise<number>((resolve) => {
            let size = 0;
            stream.on('data', (chunk: Buffer) => (size += chunk.length));
            stream.once('end', () => resolve(size));
            stream.resume();
          }),
      ),
    );
    expect(sizes).toEqual([80 * 64 * 1024, 80 * 64 * 1024, 80 * 64 * 1024, 80 * 64 * 1024]);
    session.destroy();
  });

  it('delivers trailers after the body', async () => {
    const session = await open(port);
    const r = await collect(session.request([':method', 'POST', ':scheme', 'http', ':authority', 'svc.test', ':path', '/trailers', 'content-type', 'application/grpc', 'te', 'trailers'], true));
    expect(r.body.toString()).toBe('payload');
    expect(r.trailers).toMatchObject({ 'grpc-status': '0', 'grpc-message': 'fine' });
    session.destroy();
  });

  it('reports a refused stream by its reset code', async () => {
    const session = await open(port);
    const stream = session.request(get('/refuse'), true);
    let responded = false;
    stream.once('response', () => (responded = true));
    stream.on('error', () => undefined);
    await closed(stream);
    expect(responded).toBe(false);
    expect(stream.rstCode).toBe(ErrorCode.REFUSED_STREAM);
    session.destroy();
  });

  it('cancels a stream the caller gives up on, and the server sees it', async () => {
    const serverSide = new Promise<number>((resolve) => {
      server.once('stream', (s: ServerHttp2Stream) => s.once('close', () => resolve(s.rstCode)));
    });
    const session = await open(port);
    const stream = session.request(get('/hang'), true);
    await new Promise((resolve) => setTimeout(resolve, 50));
    stream.close(ErrorCode.CANCEL);
    await closed(stream);
    expect(await serverSide).toBe(constants.NGHTTP2_CANCEL);
    expect(session.openStreams).toBe(0);
    session.destroy();
  });

  it('reads an early response while the upload is cut short, without an error', async () => {
    const session = await open(port);
    const stream = session.request([':method', 'POST', ':scheme', 'http', ':authority', 'svc.test', ':path', '/early'], false);
    const received = collect(stream);
    const writer = (async () => {
      for (let i = 0; i < 64 && !stream.destroyed; i++) {
        if (!stream.write(Buffer.alloc(64 * 1024, 7))) await new Promise((resolve) => setTimeout(resolve, 5));
      }
      stream.end();
    })();
    const r = await received;
    await writer;
    expect(r.headers[':status']).toBe(413);
    expect(r.body.toString()).toBe('too large');
    session.destroy();
  });

  it('answers PINGs and measures its own', async () => {
    const session = await open(port);
    const rtt = await new Promise<number>((resolve, reject) => {
      const sent = session.ping((error, duration) => (error ? reject(error) : resolve(duration)));
      expect(sent).toBe(true);
    });
    expect(rtt).toBeGreaterThanOrEqual(0);
    const serverRtt = await new Promise<number>((resolve, reject) => {
      server.once('session', () => undefined);
      // Node's server pings through its own session object: find it via a fresh request.
      server.once('stream', (s: ServerHttp2Stream) => s.session?.ping((error, duration) => (error ? reject(error) : resolve(duration))));
      void collect(session.request(get('/ping'), true));
    });
    expect(serverRtt).toBeGreaterThanOrEqual(0);
    session.destroy();
  });

  it('on GOAWAY refuses the streams the server never took and closes once the rest finish', async () => {
    const { server: closing, port: closingPort } = await startServer((stream, headers) => {
      stream.on('error', () => undefined);
      if (headers[':path'] === '/first') {
        // The server stops taking streams after the first one (last stream ID 1), then answers it.
        stream.session?.goaway(constants.NGHTTP2_NO_ERROR, 1);
        setTimeout(() => {
          stream.respond({ ':status': 200 });
          stream.end('first');
        }, 50);
      }
    });
    // After its own GOAWAY, Node's server keeps the session open even past the client's FIN
    // (seen with Node 20): the test closes it itself.
    const serverSessions: ServerHttp2Session[] = [];
    closing.on('session', (s: ServerHttp2Session) => serverSessions.push(s));
    const session = await open(closingPort);
    const goaway = new Promise<number>((resolve) => session.once('goaway', (code: number) => resolve(code)));
    const first = collect(session.request(get('/first'), true));
    const second = session.request(get('/second'), true);
    second.on('error', () => undefined);
    expect(await goaway).toBe(ErrorCode.NO_ERROR);
    await closed(second);
    expect(second.rstCode).toBe(ErrorCode.REFUSED_STREAM);
    expect(session.closed).toBe(true);
    expect(() => session.request(get('/third'), true)).toThrow(/no new streams/);
    expect((await first).body.toString()).toBe('first');
    await new Promise((resolve) => (session.destroyed ? resolve(undefined) : session.once('close', resolve)));
    for (const s of serverSessions) s.destroy();
    await new Promise<void>((resolve) => closing.close(() => resolve()));
  });

  it('close() is graceful: streams in flight finish, then the connection ends', async () => {
    const session = await open(port);
    const pending = collect(session.request(get('/slow-ok'), true));
    session.close();
    expect(() => session.request(get('/after'), true)).toThrow();
    expect((await pending).body.toString()).toBe('hello /slow-ok');
    await new Promise((resolve) => (session.destroyed ? resolve(undefined) : session.once('close', resolve)));
  });

  it('tunnels bytes with half-close over a CONNECT stream', async () => {
    const { server: tunnel, port: tunnelPort } = await startServer((stream, headers) => {
      stream.on('error', () => undefined);
      expect(headers[':method']).toBe('CONNECT');
      stream.respond({ ':status': 200 });
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      // Echoes everything back reversed only once the client half-closed.
      stream.on('end', () => stream.end(Buffer.from(Buffer.concat(chunks).toString().split('').reverse().join(''))));
    });
    const session = await open(tunnelPort);
    const stream = session.request([':method', 'CONNECT', ':authority', 'echo.test:7'], false);
    const received = collect(stream);
    stream.write('abc');
    stream.end('def');
    const r = await received;
    expect(r.headers[':status']).toBe(200);
    expect(r.body.toString()).toBe('fedcba');
    session.destroy();
    await new Promise<void>((resolve) => tunnel.close(() => resolve()));
  });

  it('takes requests before the server’s SETTINGS arrive (they wait in the socket)', async () => {
    const socket = netConnect({ host: '127.0.0.1', port });
    const session = new H2ClientSession(socket, { initialWindowSize: 65_535, sessionWindowSize: 65_535, maxHeaderListSize: 64 * 1024 });
    const r = await collect(session.request(get('/early-bird'), true));
    expect(r.body.toString()).toBe('hello /early-bird');
    session.destroy();
  });

  it('fails a request on a refused connection with the socket’s error', async () => {
    const spare = createNetServer();
    await new Promise<void>((resolve) => spare.listen(0, '127.0.0.1', resolve));
    const deadPort = (spare.address() as AddressInfo).port;
    await new Promise<void>((resolve) => spare.close(() => resolve()));
    const session = new H2ClientSession(netConnect({ host: '127.0.0.1', port: deadPort }), { initialWindowSize: 65_535, sessionWindowSize: 65_535, maxHeaderListSize: 64 * 1024 });
    session.on('error', () => undefined);
    const stream = session.request(get('/nobody'), true);
    const error = await new Promise<Error>((resolve) => stream.once('error', resolve));
    expect(error.message).toMatch(/ECONNREFUSED/);
    await closed(stream);
    expect(session.destroyed).toBe(true);
  });

  it('fails every open stream when the connection drops', async () => {
    const session = await open(port);
    const stream = session.request(get('/hang'), true);
    const error = new Promise<Error>((resolve) => stream.once('error', resolve));
    session.socket.destroy();
    expect((await error).message).toMatch(/closed/);
    await closed(stream);
    expect(session.destroyed).toBe(true);
  });
});

describe('H2ClientSession against a broken peer', () => {
  let raw: NetServer;
  let port: number;
  let script: (socket: Socket) => void = () => undefined;

  beforeAll(async () => {
    raw = createNetServer((socket) => {
      socket.on('error', () => undefined);
      socket.once('data', () => script(socket));
    });
    await new Promise<void>((resolve) => raw.listen(0, '127.0.0.1', resolve));
    port = (raw.address() as AddressInfo).port;
  });

  afterAll(async () => {
    await new Promise<void>((resolve) => raw.close(() => resolve()));
  });

  async function sessionTo(): Promise<{ session: H2ClientSession; errors: Error[] }> {
    const socket = await new Promise<Socket>((resolve) => {
      const s = netConnect({ host: '127.0.0.1', port }, () => resolve(s));
    });
    const session = new H2ClientSession(socket, { initialWindowSize: 65_535, sessionWindowSize: 65_535, maxHeaderListSize: 64 * 1024 });
    const errors: Error[] = [];
    session.on('error', (e: Error) => errors.push(e));
    return { session, errors };
  }

  const settings = Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0]);

  it('ends the session with a clear error on a malformed header block, without throwing', async () => {
    script = (socket) => {
      // Empty SETTINGS, then (once the request went out) a HEADERS frame on stream 1 whose block
      // indexes entry 0, which does not exist.
      socket.write(settings);
      setTimeout(() => socket.write(Buffer.from([0, 0, 1, 1, 5, 0, 0, 0, 1, 0x80])), 100);
    };
    const { session, errors } = await sessionTo();
    await new Promise((resolve) => session.once('connect', resolve));
    const stream = session.request(get('/x'), true);
    stream.on('error', () => undefined);
    await new Promise((resolve) => session.once('close', resolve));
    expect(errors[0]?.message).toMatch(/COMPRESSION_ERROR/);
    expect(stream.destroyed).toBe(true);
  });

  it('refuses frames larger than it allows', async () => {
    script = (socket) => {
      const huge = Buffer.alloc(9 + 20_000);
      huge.writeUIntBE(20_000, 0, 3);
      huge[3] = 0; // DATA
      huge.writeUInt32BE(1, 5);
      socket.write(Buffer.concat([settings, huge]));
    };
    const { session, errors } = await sessionTo();
    await new Promise((resolve) => session.once('close', resolve));
    expect(errors[0]?.message).toMatch(/FRAME_SIZE_ERROR/);
  });

  it('refuses server push', async () => {
    script = (socket) => {
      socket.write(Buffer.concat([settings, Buffer.from([0, 0, 4, 5, 4, 0, 0, 0, 1, 0, 0, 0, 2])]));
    };
    const { session, errors } = await sessionTo();
    await new Promise((resolve) => session.once('close', resolve));
    expect(errors[0]?.message).toMatch(/PROTOCOL_ERROR.*PUSH_PROMISE/);
  });
});
