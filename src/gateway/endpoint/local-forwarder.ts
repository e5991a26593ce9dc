import type { IncomingHttpHeaders } from 'node:http2';
import { connect as netConnect } from 'node:net';
import { PassThrough, Readable } from 'node:stream';
import { Pool, type Dispatcher } from 'undici';
import { errorMessage } from '../../core/errors.js';
import type { Logger } from '../../core/logger.js';
import type { LocalExport, LocalExportPort } from '../../discovery/provider.js';
import { canResend, sendRequestBody } from '../request/request-body.js';
import { appendHeaderFields, CALLER_HEADER } from '../request/headers.js';
import { failure, NO_TRAILERS, type Outcome } from '../request/outcome.js';
import type { Request, RequestState } from '../request/request.js';
import { endDelivery, ErrorCode, H2ClientSession, startDelivery, type H2ConnectionLimits, type Delivery, type DirectBody, type H2ClientStream } from '../../http2/index.js';


/**
 * Timeouts are the pipeline's (overall and per-try, until the response headers), as they were with
 * node:http: undici's own header and body timeouts would cut long polls and slow streams. Idle
 * connections keep undici's default of 4 s (longer when the backend's Keep-Alive header says so):
 * shorter than the idle timeout of common servers (Node's 5 s), so a request is rarely sent on a
 * connection the backend is closing.
 */
const LOCAL_POOL_OPTIONS: Pool.Options = { connections: 512, pipelining: 1, headersTimeout: 0, bodyTimeout: 0 };
const NEVER_SENT = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'UND_ERR_CONNECT_TIMEOUT']);

/**
 * A response body fed by undici's callbacks; reading resumes the connection. Relayed, it hands
 * undici's chunks straight to the relay (DirectBody): undici pauses the connection when the
 * relay's sink is full, as it does when a Readable's buffer is.
 */
class Http1Body extends Readable implements DirectBody {
  resumeUpstream: () => void = noop;
  private complete = false;
  private delivery: Delivery | undefined;

  override _read(): void {
    this.resumeUpstream();
  }

  deliverTo(onChunk: (chunk: Buffer) => boolean, onEnd: () => void): boolean {
    if (this.delivery) return false;
    this.delivery = startDelivery(this, this.complete, onChunk, onEnd);
    return this.delivery !== undefined;
  }

  resumeDelivery(): void {
    if (!this.delivery?.held) return;
    this.delivery.held = false;
    this.resumeUpstream();
  }

  /** A chunk from undici; false asks it to pause the connection. */
  offer(chunk: Buffer): boolean {
    const delivery = this.delivery;
    if (!delivery) return this.push(chunk);
    if (this.destroyed) return true;
    if (!delivery.onChunk(chunk)) delivery.held = true;
    return !delivery.held;
  }

  finish(): void {
    this.complete = true;
    if (this.delivery) endDelivery(this, this.delivery);
    else this.push(null);
  }
}

/**
 * One HTTP/1.1 exchange with a local endpoint through undici's dispatch API: the outcome resolves
 * at the response headers, with the body still streaming, like every other forwarder.
 */
class Http1Exchange implements Dispatcher.DispatchHandler {
  private abortUpstream: (error?: Error) => void = noop;
  private body: Http1Body | undefined;
  private settled = false;

  constructor(
    private readonly request: Request,
    private readonly state: RequestState,
    private readonly endpoint: string,
    private readonly cluster: string,
    private readonly resolve: (outcome: Outcome) => void,
  ) {
    state.onAbort((reason) => {
      this.abortUpstream(new Error('attempt abandoned'));
      this.settle(failure(reason === 'timeout' ? 'timeout' : 'client-closed', 'attempt abandoned', { cluster, retriable: false }));
    });
  }

  private settle(outcome: Outcome): void {
    if (this.settled) return;
    this.settled = true;
    this.state.clearAbort();
    this.resolve(outcome);
  }

  onConnect(abort: (error?: Error) => void): void {
    this.abortUpstream = abort;
    if (this.settled) abort(new Error('attempt abandoned'));
  }

  onHeaders(statusCode: number, rawHeaders: Buffer[], resume: () => void): boolean {
    // 1xx (other than a 101 upgrade, which undici refuses) precede the real response.
    if (statusCode < 200) return true;
    const body = new Http1Body();
    body.resumeUpstream = resume;
    this.body = body;
    if (this.settled) {
      this.abortUpstream(new Error('attempt abandoned'));
      return false;
    }
    this.settle({
      kind: 'response',
      response: {
        status: statusCode,
        headers: headersOf(rawHeaders),
        body,
        trailers: NO_TRAILERS,
        cluster: this.cluster,
        discard: () => {
          this.abortUpstream(new Error('response discarded'));
          body.destroy();
        },
      },
    });
    return true;
  }

  onData(chunk: Buffer): boolean {
    return this.body ? this.body.offer(chunk) : true;
  }

  onComplete(): void {
    this.body?.finish();
  }

  onError(error: Error): void {
    if (this.body) {
      // After the headers: the body stops short; the client writer turns that into a reset.
      this.body.destroy(error);
      return;
    }
    const code = (error as NodeJS.ErrnoException).code ?? '';
    const neverSent = NEVER_SENT.has(code);
    this.settle(failure(neverSent ? 'connect-failed' : 'upstream-reset', `${this.endpoint}: ${errorMessage(error)}`, { cluster: this.cluster, retriable: neverSent || canResend(this.request, this.state) }));
  }
}

/** undici's raw header list as node:http presents headers: lower-case names, repeated ones joined (set-cookie kept as a list). */
function headersOf(raw: Buffer[]): IncomingHttpHeaders {
  const headers: IncomingHttpHeaders = {};
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = (raw[i] as Buffer).toString('latin1').toLowerCase();
    const value = (raw[i + 1] as Buffer).toString('latin1');
    const existing = headers[name];
    if (existing === undefined) headers[name] = name === 'set-cookie' ? [value] : value;
    else if (Array.isArray(existing)) existing.push(value);
    else headers[name] = `${existing}, ${value}`;
  }
  return headers;
}

function noop(): void {}

/**
 * Forwards to this cluster's own endpoints: HTTP/1.1 with keep-alive for `http` ports, HTTP/2
 * cleartext (prior knowledge) for `http2` and `grpc` ports. Ready endpoints are used in turn.
 */
export class LocalForwarder {
  /** Keep-alive HTTP/1.1 connections per endpoint (undici: about half the CPU of http.request per exchange). */
  private readonly pools = new Map<string, { pool: Pool; used: boolean }>();
  private readonly sweeper: NodeJS.Timeout;
  /** HTTP/2 cleartext sessions per endpoint, on the same lean client as the gateway-to-gateway hop. */
  private readonly h2 = new Map<string, { session: H2ClientSession; used: boolean }>();
  /** Round-robin position per export (a changed export starts its rotation again). */
  private readonly cursor = new WeakMap<LocalExport, number>();
  private readonly ready = new WeakMap<LocalExport, readonly LocalExport['endpoints'][number][]>();

  /**
   * @param idlePoolMs pools of endpoints that served nothing for this long are closed: endpoints
   *   come and go with pods, and a pool per address ever seen would grow without bound.
   */
  constructor(
    private readonly log: Logger,
    idlePoolMs = 60_000,
    private readonly h2Client: { limits?: Partial<H2ConnectionLimits>; onLimit?: (kind: string) => void } = {},
  ) {
    this.sweeper = setInterval(() => this.closeIdlePools(), idlePoolMs);
    this.sweeper.unref();
  }

  /** Endpoints with an open HTTP/1.1 connection pool. */
  get pooledEndpoints(): number {
    return this.pools.size;
  }

  private closeIdlePools(): void {
    for (const [origin, entry] of this.pools) {
      if (entry.used) {
        entry.used = false;
        continue;
      }
      this.pools.delete(origin);
      void entry.pool.close().catch(() => undefined);
    }
    for (const [target, entry] of this.h2) {
      if (entry.used) {
        entry.used = false;
        continue;
      }
      this.h2.delete(target);
      entry.session.close();
    }
  }

  forward(request: Request, state: RequestState, exported: LocalExport, port: LocalExportPort, clusterName: string): Promise<Outcome> | Outcome {
    const ready = this.readyOf(exported);
    if (ready.length === 0) {
      return failure('no-healthy-upstream', `${exported.name}.${exported.namespace} has no ready endpoint in ${clusterName}`, { cluster: clusterName, retriable: true });
    }
    const index = ((this.cursor.get(exported) ?? -1) + 1) % ready.length;
    this.cursor.set(exported, index);
    const endpoint = ready[index] as { address: string };
    const host = endpoint.address;
    const target = host.includes(':') && !host.startsWith('[') ? `[${host}]:${port.targetPort}` : `${host}:${port.targetPort}`;
    if (port.protocol === 'http') return this.http1(request, state, target, clusterName);
    return this.http2(request, state, target, clusterName);
  }

  /** Ready endpoints of an export; exports are replaced, never changed in place, so one list per export object. */
  private readyOf(exported: LocalExport): readonly LocalExport['endpoints'][number][] {
    let ready = this.ready.get(exported);
    if (!ready) {
      ready = exported.endpoints.filter((e) => e.ready);
      this.ready.set(exported, ready);
    }
    return ready;
  }

  private http1(request: Request, state: RequestState, target: string, cluster: string): Promise<Outcome> | Outcome {
    if (state.ended) return failure(state.ended === 'timeout' ? 'timeout' : 'client-closed', 'request ended', { cluster });
    const origin = `http://${target}`;
    let entry = this.pools.get(origin);
    if (!entry) {
      const created = new Pool(origin, LOCAL_POOL_OPTIONS);
      created.on('connectionError', () => undefined);
      entry = { pool: created, used: true };
      this.pools.set(origin, entry);
    }
    entry.used = true;
    const pool = entry.pool;
    const headers: Record<string, string | string[] | number | undefined> = { ...request.headers, host: request.authority, [CALLER_HEADER]: request.caller };
    // undici refuses `expect` (100-continue is answered by the client side, never needed upstream).
    if (headers.expect !== undefined) delete headers.expect;
    return new Promise((resolve) => {
      const exchange = new Http1Exchange(request, state, target, cluster, resolve);
      let body: PassThrough | null = null;
      if (request.body) {
        // undici destroys the body stream it was given once sent; the client's stream (an HTTP/2
        // stream on the inbound side) must outlive it to carry the response, so it gets a copy.
        body = new PassThrough();
        sendRequestBody(request, state, body);
      }
      pool.dispatch({ path: request.path, method: request.method as Dispatcher.HttpMethod, headers: headers as Record<string, string>, body, blocking: false }, exchange);
    });
  }

  private session(target: string): H2ClientSession {
    const existing = this.h2.get(target);
    if (existing && !existing.session.closed && !existing.session.destroyed) {
      existing.used = true;
      return existing.session;
    }
    const [host, port] = splitTarget(target);
    // Requests are written before the connection is up (they wait in the socket); a refused
    // connection fails them with ECONNREFUSED, which the caller treats as a connect failure.
    const socket = netConnect({ host, port, noDelay: true });
    const session = new H2ClientSession(socket, { initialWindowSize: 4 * 1024 * 1024, sessionWindowSize: 32 * 1024 * 1024, maxHeaderListSize: 64 * 1024, ...this.h2Client.limits });
    if (this.h2Client.onLimit) session.on('limit', this.h2Client.onLimit);
    session.on('error', (error: Error) => this.log.debug({ target, err: errorMessage(error) }, 'local h2c session error'));
    const forget = (): void => {
      if (this.h2.get(target)?.session === session) this.h2.delete(target);
    };
    session.once('close', forget);
    session.once('goaway', forget);
    session.unref();
    this.h2.set(target, { session, used: true });
    return session;
  }

  private http2(request: Request, state: RequestState, target: string, cluster: string): Promise<Outcome> | Outcome {
    if (state.ended) return failure(state.ended === 'timeout' ? 'timeout' : 'client-closed', 'request ended', { cluster });
    return new Promise((resolve) => {
      let settled = false;
      const settle = (outcome: Outcome): void => {
        if (settled) return;
        settled = true;
        state.clearAbort();
        resolve(outcome);
      };
      let stream: H2ClientStream;
      try {
        const fields = [':method', request.method, ':scheme', 'http', ':authority', request.authority, ':path', request.path, CALLER_HEADER, request.caller];
        appendHeaderFields(fields, request.headers);
        stream = this.session(target).request(fields, request.body === null);
      } catch (error) {
        settle(failure('connect-failed', `${target}: ${errorMessage(error)}`, { cluster, retriable: true }));
        return;
      }
      state.onAbort((reason) => {
        if (!stream.destroyed) stream.close(ErrorCode.CANCEL);
        settle(failure(reason === 'timeout' ? 'timeout' : 'client-closed', 'attempt abandoned', { cluster, retriable: false }));
      });
      const body = request.body;
      if (body) {
        const first = !state.bodyStarted;
        sendRequestBody(request, state, stream);
        if (first) body.once('error', () => stream.close(ErrorCode.CANCEL));
      }
      stream.once('response', (headers: IncomingHttpHeaders) => {
        const trailers = request.grpc
          ? new Promise<IncomingHttpHeaders>((done) => {
              stream.once('trailers', (t: IncomingHttpHeaders) => done(t));
              stream.once('close', () => done({}));
            })
          : NO_TRAILERS;
        settle({
          kind: 'response',
          response: { status: Number(headers[':status']), headers, body: stream, trailers, cluster, discard: () => !stream.destroyed && stream.close(ErrorCode.CANCEL) },
        });
      });
      const fail = (reason: string): void => {
        // Every stream closes, answered or not: only an unanswered one is a failure to describe.
        if (settled) return;
        const connectError = /ECONNREFUSED|EHOSTUNREACH/.test(reason);
        settle(failure(connectError ? 'connect-failed' : 'upstream-reset', `${target}: ${reason}`, { cluster, retriable: connectError || canResend(request, state) }));
      };
      stream.once('error', (error) => fail(errorMessage(error)));
      stream.once('close', () => !settled && fail(`stream closed before a response (code ${String(stream.rstCode)})`));
    });
  }

  close(): void {
    clearInterval(this.sweeper);
    for (const { pool } of this.pools.values()) void pool.destroy().catch(() => undefined);
    this.pools.clear();
    for (const { session } of this.h2.values()) session.destroy();
    this.h2.clear();
  }
}

function splitTarget(target: string): [string, number] {
  const colon = target.lastIndexOf(':');
  const host = target.slice(0, colon).replace(/^\[|\]$/g, '');
  return [host, Number(target.slice(colon + 1))];
}
