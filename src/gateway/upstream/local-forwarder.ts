import { Agent, request as httpRequest, type IncomingMessage } from 'node:http';
import { connect as h2connect, constants, type ClientHttp2Session, type ClientHttp2Stream, type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http2';
import { connect as netConnect } from 'node:net';
import { errorMessage } from '../../core/errors.js';
import type { Logger } from '../../core/logger.js';
import type { LocalExport, LocalExportPort } from '../../discovery/provider.js';
import { CALLER_HEADER } from '../headers.js';
import { failure, NO_TRAILERS, type Outcome } from '../outcome.js';
import type { RequestContext } from '../request-context.js';

const { NGHTTP2_CANCEL } = constants;

/**
 * Forwards to this cluster's own endpoints: HTTP/1.1 with keep-alive for `http` ports, HTTP/2
 * cleartext (prior knowledge) for `http2` and `grpc` ports. Ready endpoints are used in turn.
 */
export class LocalForwarder {
  private readonly agent = new Agent({ keepAlive: true, maxSockets: 512, maxFreeSockets: 256, scheduling: 'lifo', noDelay: true } as never);
  private readonly h2 = new Map<string, ClientHttp2Session>();
  private readonly cursor = new Map<string, number>();

  constructor(private readonly log: Logger) {}

  forward(ctx: RequestContext, exported: LocalExport, port: LocalExportPort, clusterName: string): Promise<Outcome> | Outcome {
    const ready = exported.endpoints.filter((e) => e.ready);
    if (ready.length === 0) {
      return failure('no-healthy-upstream', `${exported.name}.${exported.namespace} has no ready endpoint in ${clusterName}`, { cluster: clusterName, retriable: true });
    }
    const key = `${exported.namespace}/${exported.name}`;
    const index = ((this.cursor.get(key) ?? -1) + 1) % ready.length;
    this.cursor.set(key, index);
    const endpoint = ready[index] as { address: string };
    const host = endpoint.address;
    const target = host.includes(':') && !host.startsWith('[') ? `[${host}]:${port.targetPort}` : `${host}:${port.targetPort}`;
    if (port.protocol === 'http') return this.http1(ctx, host, port.targetPort, clusterName);
    return this.http2(ctx, target, clusterName);
  }

  private http1(ctx: RequestContext, host: string, targetPort: number, cluster: string): Promise<Outcome> | Outcome {
    if (ctx.ended) return failure(ctx.ended === 'timeout' ? 'timeout' : 'client-closed', 'request ended', { cluster });
    return new Promise((resolve) => {
      let settled = false;
      const settle = (outcome: Outcome): void => {
        if (settled) return;
        settled = true;
        ctx.abortAttempt = undefined;
        resolve(outcome);
      };
      const headers: OutgoingHttpHeaders = { ...ctx.headers, host: ctx.authority, [CALLER_HEADER]: ctx.caller };
      const req = httpRequest({ host, port: targetPort, method: ctx.method, path: ctx.path, headers, agent: this.agent, setHost: false });
      ctx.abortAttempt = (reason) => {
        req.destroy();
        settle(failure(reason === 'timeout' ? 'timeout' : 'client-closed', 'attempt abandoned', { cluster, retriable: false }));
      };
      req.once('response', (res: IncomingMessage) => {
        settle({
          kind: 'response',
          response: { status: res.statusCode ?? 502, headers: res.headers, body: res, trailers: NO_TRAILERS, cluster, discard: () => res.destroy() },
        });
      });
      req.once('error', (error: NodeJS.ErrnoException) => {
        const neverSent = error.code === 'ECONNREFUSED' || error.code === 'EHOSTUNREACH' || error.code === 'ENETUNREACH';
        settle(failure(neverSent ? 'connect-failed' : 'upstream-reset', `${host}:${targetPort}: ${errorMessage(error)}`, { cluster, retriable: neverSent || ctx.body === null || !ctx.bodyStarted }));
      });
      if (ctx.body) {
        ctx.bodyStarted = true;
        ctx.body.pipe(req);
        ctx.body.once('error', () => req.destroy());
      } else {
        req.end();
      }
    });
  }

  private session(target: string): ClientHttp2Session {
    let session = this.h2.get(target);
    if (session && !session.closed && !session.destroyed) return session;
    const [host, port] = splitTarget(target);
    session = h2connect(`http://${target}`, {
      settings: { enablePush: false, initialWindowSize: 4 * 1024 * 1024 },
      // Our own socket, so Nagle can be turned off (the session's socket proxy forbids it).
      createConnection: () => netConnect({ host, port, noDelay: true }),
    });
    session.on('error', (error) => this.log.debug({ target, err: errorMessage(error) }, 'local h2c session error'));
    const created = session;
    session.once('close', () => {
      if (this.h2.get(target) === created) this.h2.delete(target);
    });
    session.once('goaway', () => {
      if (this.h2.get(target) === created) this.h2.delete(target);
    });
    session.unref();
    this.h2.set(target, session);
    return session;
  }

  private http2(ctx: RequestContext, target: string, cluster: string): Promise<Outcome> | Outcome {
    if (ctx.ended) return failure(ctx.ended === 'timeout' ? 'timeout' : 'client-closed', 'request ended', { cluster });
    return new Promise((resolve) => {
      let settled = false;
      const settle = (outcome: Outcome): void => {
        if (settled) return;
        settled = true;
        ctx.abortAttempt = undefined;
        resolve(outcome);
      };
      let stream: ClientHttp2Stream;
      try {
        stream = this.session(target).request(
          { ...ctx.headers, ':method': ctx.method, ':path': ctx.path, ':authority': ctx.authority, ':scheme': 'http', [CALLER_HEADER]: ctx.caller },
          { endStream: ctx.body === null },
        );
      } catch (error) {
        settle(failure('connect-failed', `${target}: ${errorMessage(error)}`, { cluster, retriable: true }));
        return;
      }
      ctx.abortAttempt = (reason) => {
        if (!stream.destroyed) stream.close(NGHTTP2_CANCEL);
        settle(failure(reason === 'timeout' ? 'timeout' : 'client-closed', 'attempt abandoned', { cluster, retriable: false }));
      };
      if (ctx.body) {
        ctx.bodyStarted = true;
        ctx.body.pipe(stream);
        ctx.body.once('error', () => stream.close(NGHTTP2_CANCEL));
      }
      stream.once('response', (headers: IncomingHttpHeaders) => {
        const trailers = ctx.grpc
          ? new Promise<IncomingHttpHeaders>((done) => {
              stream.once('trailers', (t: IncomingHttpHeaders) => done(t));
              stream.once('close', () => done({}));
            })
          : NO_TRAILERS;
        settle({
          kind: 'response',
          response: { status: Number(headers[':status']), headers, body: stream, trailers, cluster, discard: () => !stream.destroyed && stream.close(NGHTTP2_CANCEL) },
        });
      });
      const fail = (reason: string): void => {
        const connectError = /ECONNREFUSED|EHOSTUNREACH/.test(reason);
        settle(failure(connectError ? 'connect-failed' : 'upstream-reset', `${target}: ${reason}`, { cluster, retriable: connectError || !ctx.bodyStarted || ctx.body === null }));
      };
      stream.once('error', (error) => fail(errorMessage(error)));
      stream.once('close', () => fail(`stream closed before a response (code ${stream.rstCode})`));
    });
  }

  close(): void {
    this.agent.destroy();
    for (const session of this.h2.values()) session.destroy();
    this.h2.clear();
  }
}

function splitTarget(target: string): [string, number] {
  const colon = target.lastIndexOf(':');
  const host = target.slice(0, colon).replace(/^\[|\]$/g, '');
  return [host, Number(target.slice(colon + 1))];
}
