import { jest } from '@jest/globals';
import { createServer as createHttpServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect as h2connect, createServer as createH2Server, type ClientHttp2Session, type Http2Server, type ServerHttp2Stream, type IncomingHttpHeaders } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { PassThrough } from 'node:stream';
import { startH2Server, type TestH2Server } from '../../../test/support/http2-raw-peer.js';
import type { H2ServerStream } from '../../http2/index.js';
import { failure, NO_TRAILERS, type Outcome } from '../request/outcome.js';
import { writeHttp1, writeHttp2, type Completion } from './client-writer.js';

function upstream(status: number, headers: IncomingHttpHeaders, trailers: Promise<IncomingHttpHeaders> = NO_TRAILERS): { outcome: Outcome & { kind: 'response' }; body: PassThrough; discard: jest.Mock } {
  const body = new PassThrough();
  const discard = jest.fn(() => body.destroy());
  return { outcome: { kind: 'response', response: { status, headers, body, trailers, cluster: 'us-west', discard } }, body, discard };
}

describe('writeHttp1 (a real HTTP/1.1 server and client)', () => {
  let server: Server;
  let port: number;
  let answer: (req: IncomingMessage, res: ServerResponse) => void = () => undefined;

  beforeAll(async () => {
    server = createHttpServer((req, res) => answer(req, res));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  function get(): Promise<{ status: number; headers: IncomingHttpHeaders; body: string; complete: boolean }> {
    return new Promise((resolve, reject) => {
      const req = httpRequest({ port, host: '127.0.0.1', path: '/', agent: false }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body, complete: res.complete }));
        res.on('error', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body, complete: false }));
      });
      req.on('error', reject);
      req.end();
    });
  }

  it('writes a failure as its status, reason header and one-line body', async () => {
    const done: Completion[] = [];
    answer = (_req, res) => writeHttp1(res, failure('no-healthy-upstream', 'nothing left', { cluster: 'eu-west' }), (c) => done.push(c));
    const got = await get();
    expect(got.status).toBe(503);
    expect(got.headers['x-fedgate-reason']).toBe('no-healthy-upstream');
    expect(got.body).toBe('no-healthy-upstream: nothing left\n');
    expect(done).toEqual([{ status: 503, cluster: 'eu-west', failureCode: 'no-healthy-upstream' }]);
  });

  it('relays an upstream response with its headers (hop-by-hop removed) and the cluster that served it', async () => {
    const done: Completion[] = [];
    const up = upstream(201, { 'x-app': '1', connection: 'keep-alive', 'keep-alive': 'timeout=5' });
    answer = (_req, res) => {
      writeHttp1(res, up.outcome, (c) => done.push(c));
      up.body.end('created');
    };
    const got = await get();
    expect(got).toMatchObject({ status: 201, body: 'created', complete: true });
    expect(got.headers['x-app']).toBe('1');
    expect(got.headers['keep-alive']).toBeUndefined();
    expect(got.headers['x-fedgate-upstream-cluster']).toBe('us-west');
    await new Promise((resolve) => setImmediate(resolve));
    expect(done).toEqual([{ status: 201, cluster: 'us-west' }]);
    expect(up.discard).not.toHaveBeenCalled();
  });

  it('cuts the client off when the upstream stops mid-body, so it cannot mistake it for a whole response', async () => {
    const up = upstream(200, { 'content-length': '100' });
    const done: Completion[] = [];
    answer = (_req, res) => {
      writeHttp1(res, up.outcome, (c) => done.push(c));
      up.body.write('partial');
      setImmediate(() => up.body.destroy());
    };
    const got = await get();
    expect(got.complete).toBe(false);
    expect(got.body.length).toBeLessThan(100);
  });
});

describe('writeHttp2 (a real node:http2 server and client)', () => {
  let server: Http2Server;
  let client: ClientHttp2Session;
  let answer: (stream: ServerHttp2Stream) => void = () => undefined;

  beforeAll(async () => {
    server = createH2Server();
    server.on('stream', (stream) => {
      // A stream the writer resets reports it as an error on the server side too: the listener handles it.
      stream.on('error', () => undefined);
      answer(stream);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    client = h2connect(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
  });
  afterAll(async () => {
    client.close();
    await new Promise((resolve) => server.close(resolve));
  });

  function call(): Promise<{ headers: IncomingHttpHeaders; trailers: IncomingHttpHeaders | undefined; body: string; rstCode: number }> {
    return new Promise((resolve) => {
      const req = client.request({ ':path': '/', ':method': 'POST' });
      req.end();
      let headers: IncomingHttpHeaders = {};
      let trailers: IncomingHttpHeaders | undefined;
      let body = '';
      req.setEncoding('utf8');
      req.on('response', (h) => (headers = h));
      req.on('trailers', (t) => (trailers = t));
      req.on('data', (c: string) => (body += c));
      req.on('error', () => undefined);
      req.on('close', () => resolve({ headers, trailers, body, rstCode: req.rstCode ?? 0 }));
      req.on('aborted', () => (body += '[aborted]'));
    });
  }

  it('writes a failure as HTTP for HTTP clients and trailers-only for gRPC ones', async () => {
    const done: Completion[] = [];
    answer = (stream) => writeHttp2(stream, failure('timeout', 'too slow'), false, (c) => done.push(c));
    const http = await call();
    expect(http.headers[':status']).toBe(504);
    expect(http.body).toBe('timeout: too slow\n');
    answer = (stream) => writeHttp2(stream, failure('timeout', 'too slow'), true, (c) => done.push(c));
    const grpc = await call();
    expect(grpc.headers).toMatchObject({ ':status': 200, 'grpc-status': '4', 'x-fedgate-reason': 'timeout' });
    expect(done.map((c) => [c.status, c.grpcStatus, c.failureCode])).toEqual([
      [504, undefined, 'timeout'],
      [200, '4', 'timeout'],
    ]);
  });

  it('relays a gRPC response and ends it with the upstream’s trailers', async () => {
    const done: Completion[] = [];
    const up = upstream(200, { 'content-type': 'application/grpc' }, Promise.resolve({ 'grpc-status': '0', 'grpc-message': 'fine' }));
    answer = (stream) => {
      writeHttp2(stream, up.outcome, true, (c) => done.push(c));
      up.body.end('frame');
    };
    const got = await call();
    expect(got.headers).toMatchObject({ ':status': 200, 'x-fedgate-upstream-cluster': 'us-west' });
    expect(got.body).toBe('frame');
    expect(got.trailers).toMatchObject({ 'grpc-status': '0', 'grpc-message': 'fine' });
    expect(done).toEqual([{ status: 200, grpcStatus: '0', cluster: 'us-west' }]);
  });

  it('passes a trailers-only gRPC answer through as one', async () => {
    const up = upstream(200, { 'content-type': 'application/grpc', 'grpc-status': '14' });
    const done: Completion[] = [];
    answer = (stream) => writeHttp2(stream, up.outcome, true, (c) => done.push(c));
    const got = await call();
    expect(got.headers['grpc-status']).toBe('14');
    expect(got.body).toBe('');
    expect(done).toEqual([{ status: 200, grpcStatus: '14', cluster: 'us-west' }]);
  });

  it('resets a gRPC call whose upstream ended without a status, rather than report success', async () => {
    const up = upstream(200, { 'content-type': 'application/grpc' }, Promise.resolve({}));
    answer = (stream) => {
      writeHttp2(stream, up.outcome, true, () => undefined);
      up.body.end();
    };
    const got = await call();
    expect(got.trailers).toBeUndefined();
    expect(got.rstCode).toBe(2); // INTERNAL_ERROR
  });

  it('drops the upstream response when the client stream is already gone', async () => {
    const up = upstream(200, {});
    const done: Completion[] = [];
    answer = (stream) => {
      stream.close();
      writeHttp2(stream, up.outcome, false, (c) => done.push(c));
    };
    await call();
    expect(up.discard).toHaveBeenCalled();
    expect(done).toEqual([{ status: 499, cluster: 'us-west', failureCode: 'client-closed' }]);
  });
});

describe('writeHttp2 on fedgate’s own HTTP/2 server (the inbound listener)', () => {
  let server: TestH2Server;
  let client: ClientHttp2Session;
  let answer: (stream: H2ServerStream) => void = () => undefined;

  beforeAll(async () => {
    server = await startH2Server((stream) => {
      stream.on('error', () => undefined);
      answer(stream);
    });
    client = h2connect(`http://127.0.0.1:${server.port}`);
  });
  afterAll(async () => {
    client.close();
    await server.close();
  });

  function call(): Promise<{ headers: IncomingHttpHeaders; body: string; rstCode: number; ended: boolean }> {
    return new Promise((resolve) => {
      const req = client.request({ ':path': '/', ':method': 'GET' });
      let headers: IncomingHttpHeaders = {};
      let body = '';
      let ended = false;
      req.setEncoding('utf8');
      req.on('response', (h) => (headers = h));
      req.on('data', (c: string) => (body += c));
      req.on('end', () => (ended = true));
      req.on('error', () => undefined);
      req.on('close', () => resolve({ headers, body, rstCode: req.rstCode ?? 0, ended }));
    });
  }

  it('relays a response with the cluster that served it', async () => {
    const up = upstream(200, { 'x-app': 'yes' });
    const done: Completion[] = [];
    answer = (stream) => {
      writeHttp2(stream, up.outcome, false, (c) => done.push(c));
      up.body.end('whole');
    };
    const got = await call();
    expect(got).toMatchObject({ body: 'whole', ended: true, rstCode: 0 });
    expect(got.headers).toMatchObject({ ':status': 200, 'x-app': 'yes', 'x-fedgate-upstream-cluster': 'us-west' });
    expect(done).toEqual([{ status: 200, grpcStatus: undefined, cluster: 'us-west' }]);
  });

  it('resets the client stream (CANCEL) when the upstream body breaks off, so a cut body never looks whole', async () => {
    const up = upstream(200, {});
    answer = (stream) => {
      writeHttp2(stream, up.outcome, false, () => undefined);
      up.body.write('partial');
      setImmediate(() => up.body.destroy());
    };
    const got = await call();
    expect(got.body).toBe('partial');
    // Node's client ends the readable side of a reset stream too: the reset code is what tells.
    expect(got.rstCode).toBe(8);
  });
});
