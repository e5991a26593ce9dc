import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';
import type { IncomingHttpHeaders } from 'node:http2';
import { createServer as createNetServer, type AddressInfo, type Server as NetServer, type Socket } from 'node:net';
import { errorMessage } from '../../core/errors.js';
import type { Logger } from '../../core/logger.js';
import { parseHostPort } from '../../config/shape.js';
import { normalizePath } from '../../policy/path-normalization.js';
import { AuthorityMemo } from './authority-memo.js';
import { writeHttp1, writeHttp2, type Completion } from './client-writer.js';
import { startAfterRead } from './stream-arrival.js';
import { CLIENT_PREFACE, H2ServerSession, type H2ConnectionLimits, type H2ServerStream } from '../../http2/index.js';
import { ConnectionLimiter, type LimitedConnection } from './connection-limiter.js';
import { forwardableHeaders, isGrpc, isIdempotent } from '../request/headers.js';
import { failure, type Outcome } from '../request/outcome.js';
import type { Handler } from '../request/pipeline.js';
import { RequestState, type Request } from '../request/request.js';
import type { OutboundExchange } from '../logical/outbound-exchange.js';
import type { ControlView } from '../view/control-view.js';
import type { GatewayMetrics } from '../request/request-metrics.js';
import type { RoutingTable } from '../routing/routing-table.js';


function hostCount(raw: readonly string[]): number {
  let count = 0;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as string;
    if (name.length === 4 && name.toLowerCase() === 'host') count += 1;
  }
  return count;
}

/** A client connection of the outbound listener: its requests in flight, for the connection cap. */
class ClientConnection implements LimitedConnection {
  active = 0;
  lastActive = performance.now();
  session: H2ServerSession | undefined;

  constructor(readonly socket: Socket) {}

  started(): void {
    this.active += 1;
    this.lastActive = performance.now();
  }

  finished(): void {
    this.active -= 1;
    this.lastActive = performance.now();
  }

  close(): void {
    if (this.session) this.session.close();
    else this.socket.destroy();
  }
}

export interface OutboundOptions {
  listen: string;
  /** Client connections held at once (HTTP/1.1 and h2c together); the idlest makes room past it. */
  maxConnections: number;
  /** Limits of h2c connections (the HTTP/2 stack's defaults where unset). */
  http2: Partial<H2ConnectionLimits> & { abuseBurst?: number; abuseRatePerSecond?: number };
  /** Counts every refusal of a limit, by kind (fedgate_limit_refusals_total). */
  onLimit: (listener: 'outbound' | 'outbound-h2c', kind: string) => void;
  headersTimeoutMs: number;
  requestTimeoutMs: number;
  maxHeaderBytes: number;
  idleTimeoutMs: number;
  /** Concurrent streams per h2c connection. */
  maxConcurrentStreams: number;
}

export interface OutboundPlane {
  localCluster: string;
  /** The identity this gateway asserts for a local caller at this address. */
  callerIdentity: (remoteAddress: string | undefined) => string;
  routing: RoutingTable;
  /** The control view a request is served under (read when it arrives). */
  view: () => ControlView;
  /** The logical stages and everything below them. */
  handler: Handler<OutboundExchange>;
  metrics: GatewayMetrics;
  log: Logger;
}

/**
 * The listener local clients call: HTTP/1.1 and HTTP/2 cleartext (prior knowledge) on one port,
 * told apart by the HTTP/2 connection preface. Requests are routed by Host / :authority
 * (`name.namespace.svc.clusterset.local[:port]`) to the clusterset service.
 */
export class OutboundServer {
  private readonly net: NetServer;
  private readonly http1: HttpServer;
  private readonly h2c = new Set<H2ServerSession>();
  private readonly clients: ConnectionLimiter<ClientConnection>;
  private readonly bySocket = new WeakMap<Socket, ClientConnection>();
  private readonly authorities = new AuthorityMemo();
  port = 0;

  constructor(
    private readonly plane: OutboundPlane,
    private readonly options: OutboundOptions,
  ) {
    this.http1 = createHttpServer(
      {
        headersTimeout: options.headersTimeoutMs,
        requestTimeout: options.requestTimeoutMs,
        maxHeaderSize: options.maxHeaderBytes,
        keepAliveTimeout: 65_000,
        connectionsCheckingInterval: 1000,
        noDelay: true,
      },
      (req, res) => this.onHttp1(req, res),
    );
    this.clients = new ConnectionLimiter<ClientConnection>(options.maxConnections, (kind) => options.onLimit('outbound', kind));
    this.net = createNetServer({ noDelay: true, pauseOnConnect: false }, (socket) => this.accept(socket));
  }

  async start(): Promise<number> {
    const address = parseHostPort(this.options.listen);
    if (!address) throw new Error(`outbound listen address "${this.options.listen}" is not host:port`);
    await new Promise<void>((resolve, reject) => {
      this.net.once('error', reject);
      this.net.listen(address.port, address.host, () => {
        this.net.off('error', reject);
        resolve();
      });
    });
    this.port = (this.net.address() as AddressInfo).port;
    // The HTTP/1.1 server never listens itself (connections arrive through the preface sniffer),
    // but its headersTimeout/requestTimeout checks start on 'listening': without them slowloris
    // clients would only be cut by the keep-alive timeout.
    this.http1.emit('listening');
    return this.port;
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => this.net.close(() => resolve()));
    this.http1.closeAllConnections();
    for (const session of this.h2c) session.destroy();
  }

  private accept(socket: Socket): void {
    const client = new ClientConnection(socket);
    if (!this.clients.admit(client)) {
      socket.destroy();
      return;
    }
    this.bySocket.set(socket, client);
    socket.once('close', () => this.clients.release(client));
    this.sniff(socket, client);
  }

  /** Reads just enough of the first bytes to tell HTTP/2 prior knowledge from HTTP/1.1. */
  private sniff(socket: Socket, client: ClientConnection): void {
    socket.setNoDelay(true);
    let seen: Buffer = Buffer.alloc(0);
    const timer = setTimeout(() => socket.destroy(), this.options.headersTimeoutMs);
    const onData = (chunk: Buffer): void => {
      seen = seen.length === 0 ? chunk : Buffer.concat([seen, chunk]);
      const n = Math.min(seen.length, CLIENT_PREFACE.length);
      const looksH2 = seen.subarray(0, n).equals(CLIENT_PREFACE.subarray(0, n));
      if (looksH2 && seen.length < CLIENT_PREFACE.length) return;
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('error', onError);
      socket.pause();
      socket.unshift(seen);
      if (looksH2) this.openH2c(socket, client);
      else this.http1.emit('connection', socket);
      // The HTTP/1.1 server reads the native handle directly; flowing again hands it (or the h2c
      // session) the bytes read so far.
      process.nextTick(() => socket.resume());
    };
    const onError = (): void => {
      clearTimeout(timer);
      socket.destroy();
    };
    socket.on('data', onData);
    socket.on('error', onError);
  }

  private onHttp1(req: IncomingMessage, res: ServerResponse): void {
    const headers = req.headers;
    const client = this.bySocket.get(req.socket);
    if (client) {
      client.started();
      res.once('close', () => client.finished());
    }
    // RFC 9112 §3.2: more than one Host is a 400; node:http would keep the first, and the gateway
    // rewrites Host upstream, so the conflict would be invisible to every later hop.
    if (hostCount(req.rawHeaders) > 1) {
      req.resume();
      writeHttp1(res, failure('bad-request', 'more than one Host header'), () => undefined);
      return;
    }
    const hasBody = headers['transfer-encoding'] !== undefined || (headers['content-length'] !== undefined && headers['content-length'] !== '0');
    if (!hasBody) req.resume();
    const state = this.handle(req.method ?? 'GET', req.url ?? '/', headers.host ?? '', headers, hasBody ? req : null, req.socket.remoteAddress, (outcome, done) => writeHttp1(res, outcome, done));
    if (state) {
      res.once('close', () => {
        if (!res.writableFinished) state.end('client-closed');
      });
    }
  }

  /** h2c with prior knowledge, on fedgate's own HTTP/2 server role (as the inbound listener). */
  private openH2c(socket: Socket, client: ClientConnection): void {
    const session = new H2ServerSession(socket, {
      ...this.options.http2,
      initialWindowSize: 1024 * 1024,
      sessionWindowSize: 16 * 1024 * 1024,
      maxHeaderListSize: this.options.maxHeaderBytes,
      headersTimeoutMs: this.options.headersTimeoutMs,
      maxConcurrentStreams: this.options.maxConcurrentStreams,
      idleTimeoutMs: this.options.idleTimeoutMs,
      peerName: 'the local client',
    });
    const remoteAddress = socket.remoteAddress;
    client.session = session;
    this.h2c.add(session);
    session.on('limit', (kind: string) => this.options.onLimit('outbound-h2c', kind));
    session.once('close', () => this.h2c.delete(session));
    session.on('error', (error: Error) => this.plane.log.debug({ err: errorMessage(error) }, 'outbound h2c connection ended with an error'));
    session.on('malformed', (problem: string) => this.plane.log.debug({ problem }, 'malformed h2c request refused'));
    session.on('stream', (stream: H2ServerStream, headers: IncomingHttpHeaders, endStream: boolean) => {
      client.started();
      stream.once('close', () => client.finished());
      this.onHttp2(stream, headers, endStream, remoteAddress);
    });
  }

  private onHttp2(stream: H2ServerStream, headers: IncomingHttpHeaders, endStream: boolean, remoteAddress: string | undefined): void {
    startAfterRead(stream, () => {
      const grpc = isGrpc(headers['content-type']);
      const state = this.handle(String(headers[':method'] ?? 'GET'), String(headers[':path'] ?? '/'), String(headers[':authority'] ?? headers.host ?? ''), headers, endStream ? null : stream, remoteAddress, (outcome, done) =>
        writeHttp2(stream, outcome, grpc, done),
      );
      if (state) stream.once('close', () => state.end('client-closed'));
    });
  }

  private handle(
    method: string,
    path: string,
    authority: string,
    rawHeaders: IncomingHttpHeaders,
    body: Request['body'],
    remoteAddress: string | undefined,
    write: (outcome: Outcome, done: (completion: Completion) => void) => void,
  ): RequestState | undefined {
    const started = performance.now();
    const plane = this.plane;
    const record = (service: string, completion: Completion): void => {
      const code = completion.grpcStatus !== undefined ? `grpc-${completion.grpcStatus}` : String(completion.status);
      plane.metrics.request('outbound', plane.localCluster, completion.cluster ?? 'none', service, code, (performance.now() - started) / 1000);
    };
    const address = this.authorities.parse(authority);
    if (!address) {
      write(failure('no-route', `"${authority}" is not a clusterset service name (name.namespace.svc.clusterset.local[:port])`), (c) => record('unknown', c));
      return undefined;
    }
    const view = plane.view();
    const route = plane.routing.resolveKey(view, address.routeKey, address.namespace, address.name, address.port);
    const key = address.key;
    if (!('targets' in route)) {
      write({ kind: 'failure', failure: route }, (c) => record(key, c));
      return undefined;
    }
    // Routing rules and authorization see the path the upstream will get: normalized once, here.
    const normalized = normalizePath(path, view.defaults.pathNormalization);
    if (!normalized.ok) {
      write(failure('bad-request', normalized.reason), (c) => record(key, c));
      return undefined;
    }
    const request: Request = {
      direction: 'outbound',
      method,
      path: normalized.path,
      authority: route.authority,
      service: { namespace: route.namespace, name: route.name, port: route.port.port, key },
      headers: forwardableHeaders(rawHeaders),
      body,
      grpc: isGrpc(rawHeaders['content-type']),
      idempotent: isIdempotent(method),
      caller: plane.callerIdentity(remoteAddress),
      sourceCluster: plane.localCluster,
      startedAt: Date.now(),
    };
    const state = new RequestState();
    plane.handler({ view, request, route, rule: undefined, state }).then(
      (outcome) => {
        if (outcome.kind === 'failure' && outcome.failure.code !== 'client-closed') {
          plane.log.debug({ service: key, code: outcome.failure.code, reason: outcome.failure.message, tried: [...state.tried], attempts: state.attempts }, 'request failed');
        }
        write(outcome, (c) => record(key, c));
      },
      (error: unknown) => {
        plane.log.error({ service: key, err: errorMessage(error) }, 'outbound request failed unexpectedly');
        write(failure('upstream-reset', 'internal error in the gateway'), (c) => record(key, c));
      },
    );
    return state;
  }
}
