import { createHash } from 'node:crypto';
import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';
import { createServer as createH2cServer, type Http2Server, type Http2ServerRequest, type Http2ServerResponse } from 'node:http2';
import { createServer as createNetServer, type AddressInfo, type Server as NetServer } from 'node:net';
import type { ClusterConfig } from '../config/cluster-config.js';
import { startEchoServer } from '../proto/echo-service.js';

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

/** One sample service listening for a cluster's export. */
export interface ExportBackend {
  cluster: string;
  service: string;
  protocol: string;
  address: string;
  close(): Promise<void>;
}

/**
 * The demo's stand-in services for a cluster file's exports: one per exported port on
 * 127.0.0.1:<targetPort> (where the gateway forwards), HTTP answering JSON that names the
 * cluster, gRPC serving fedgate.test.Echo. Used by the loopback demo in-process and, in a lab, by
 * `fedgate demo backends` inside the cluster's namespace.
 */
export async function startExportBackends(cluster: ClusterConfig): Promise<ExportBackend[]> {
  const started: ExportBackend[] = [];
  const name = cluster.metadata.name;
  try {
    for (const e of cluster.spec.exports) {
      for (const port of e.ports) {
        const targetPort = port.targetPort ?? port.port;
        const address = `127.0.0.1:${targetPort}`;
        const service = `${e.namespace}/${e.service}`;
        if (port.protocol === 'grpc') {
          const server = await startEchoServer(name, address);
          started.push({ cluster: name, service, protocol: 'grpc', address, close: () => server.close() });
        } else if (port.protocol !== 'tcp') {
          const server: HttpServer = createHttpServer((request, response) => {
            response.writeHead(200, { 'content-type': 'application/json', 'x-served-by': name });
            response.end(`${JSON.stringify({ service: e.service, namespace: e.namespace, cluster: name, path: request.url })}\n`);
          });
          await new Promise<void>((done, fail) => {
            server.once('error', fail);
            server.listen(targetPort, '127.0.0.1', () => done());
          });
          started.push({ cluster: name, service, protocol: port.protocol, address, close: () => new Promise<void>((done) => server.close(() => done())) });
        }
      }
    }
  } catch (error) {
    await Promise.all(started.map((b) => b.close()));
    throw error;
  }
  return started;
}
