import { createHash } from 'node:crypto';
import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';
import { createServer as createH2cServer, type Http2Server, type Http2ServerRequest, type Http2ServerResponse } from 'node:http2';
import { createServer as createNetServer, type AddressInfo, type Server as NetServer } from 'node:net';

/**
 * Sample HTTP service: answers every request with who served it, what it received (method, path,
 * body size and SHA-256, caller identity) as JSON. The demo exports it; the tests and drills use it.
 */
export interface BackendOptions {
  h2c?: boolean;
  /** Every n-th request (1: all) answers `failStatus` instead: a flaky or broken service. */
  failEvery?: number;
  failStatus?: number;
}

export async function startHttpBackend(servedBy: string, host: string, port: number, options: BackendOptions = {}): Promise<{ port: number; server: HttpServer | Http2Server; requests: number; close(): Promise<void> }> {
  const state = { requests: 0 };
  const handler = (req: IncomingMessage | Http2ServerRequest, res: ServerResponse | Http2ServerResponse): void => {
    state.requests += 1;
    const number = state.requests;
    const hash = createHash('sha256');
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      hash.update(chunk);
    });
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://backend');
      const failing = options.failEvery !== undefined && number % options.failEvery === 0;
      const status = failing ? (options.failStatus ?? 503) : Number(url.searchParams.get('status') ?? 200);
      const delay = Number(url.searchParams.get('delay') ?? 0);
      const body = JSON.stringify({
        servedBy,
        method: req.method,
        path: req.url,
        bodyBytes: size,
        bodySha256: hash.digest('hex'),
        caller: req.headers['x-fedgate-caller'] ?? null,
        authority: req.headers.host ?? req.headers[':authority'] ?? null,
        protocol: req.httpVersion,
      });
      const reply = (): void => {
        res.writeHead(status, { 'content-type': 'application/json', 'x-served-by': servedBy });
        res.end(body);
      };
      if (delay > 0) setTimeout(reply, delay);
      else reply();
    });
  };
  const server = options.h2c ? createH2cServer(handler as never) : createHttpServer({ keepAliveTimeout: 65_000 }, handler as never);
  await new Promise<void>((resolve) => server.listen(port, host, () => resolve()));
  return {
    port: (server.address() as AddressInfo).port,
    server,
    get requests() {
      return state.requests;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        if ('closeAllConnections' in server) server.closeAllConnections();
      }),
  };
}

/** TCP echo that also shows half-close: after the client's FIN it answers "bye <bytes>" and closes. */
export async function startTcpEchoBackend(host: string, port: number): Promise<{ port: number; server: NetServer; close(): Promise<void> }> {
  const server = createNetServer({ allowHalfOpen: true }, (socket) => {
    let bytes = 0;
    socket.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
      socket.write(chunk);
    });
    socket.on('end', () => socket.end(`bye ${bytes}`));
    socket.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(port, host, () => resolve()));
  return { port: (server.address() as AddressInfo).port, server, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}
