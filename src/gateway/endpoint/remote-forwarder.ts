import type { IncomingHttpHeaders } from 'node:http2';
import { errorMessage } from '../../core/errors.js';
import { canResend, sendRequestBody } from '../request/request-body.js';
import { appendHeaderFields, CALLER_HEADER } from '../request/headers.js';
import { failure, NO_TRAILERS, type Outcome } from '../request/outcome.js';
import type { Attempt, Request, RequestState } from '../request/request.js';
import { ErrorCode, type H2ClientStream } from '../../http2/index.js';
import { PoolError, type PeerPool, type PeerSession } from './peer-pool.js';


/**
 * Forwards a request to the chosen cluster's gateway over a pooled HTTP/2 stream. Resolves as soon
 * as the response headers arrive, with the body still unread, so the retry layer can still replace
 * a 503 with an answer from another cluster.
 */
export function forwardToPeer(request: Request, state: RequestState, attempt: Attempt, pool: PeerPool): Promise<Outcome> | Outcome {
  const acquired = pool.acquire(attempt.redial);
  if (acquired instanceof Promise) {
    return acquired.then(
      (peer) => send(request, state, pool, peer),
      (error: unknown) => acquireFailure(pool.cluster, error),
    );
  }
  return send(request, state, pool, acquired);
}

function acquireFailure(cluster: string, error: unknown): Outcome {
  if (error instanceof PoolError && error.code === 'overflow') return failure('overflow', error.message, { cluster, retriable: false });
  return failure('connect-failed', errorMessage(error), { cluster, retriable: true });
}

function ended(state: RequestState, cluster: string): Outcome {
  return failure(state.ended === 'timeout' ? 'timeout' : 'client-closed', state.ended === 'timeout' ? 'timed out' : 'the client went away', { cluster, retriable: false });
}

function send(request: Request, state: RequestState, pool: PeerPool, peer: PeerSession): Promise<Outcome> | Outcome {
  if (state.ended) {
    pool.release(peer);
    return ended(state, pool.cluster);
  }
  let stream: H2ClientStream;
  try {
    stream = peer.session.request(requestFields(request), request.body === null);
  } catch (error) {
    pool.release(peer);
    return failure('connect-failed', `cannot open a stream to ${pool.cluster}: ${errorMessage(error)}`, { cluster: pool.cluster, retriable: true });
  }
  return new Promise<Outcome>((resolve) => {
    let settled = false;
    const settle = (outcome: Outcome): void => {
      if (settled) return;
      settled = true;
      state.clearAbort();
      resolve(outcome);
    };
    state.onAbort((reason) => {
      if (!stream.destroyed) stream.close(ErrorCode.CANCEL);
      settle(failure(reason === 'timeout' ? 'timeout' : 'client-closed', 'attempt abandoned', { cluster: pool.cluster, retriable: false }));
    });
    // Errors after the response belong to whoever reads the body; this keeps them from crashing.
    stream.on('error', noop);
    // The pool's slot is free once the exchange is over on the wire: a client slow to read the body
    // (or one that never reads, bench:hostile) must not hold the streams every caller of this peer
    // shares; what it has not read is held by its own stream's flow control, not by the pool.
    let released = false;
    const release = (): void => {
      if (released) return;
      released = true;
      pool.release(peer);
    };
    stream.once('wireclosed', release);
    stream.once('close', () => {
      release();
      if (settled) return;
      // A refused stream never reached the application: always safe to retry elsewhere.
      const refused = stream.rstCode === ErrorCode.REFUSED_STREAM;
      const replayable = refused || canResend(request, state);
      const peerLost = peer.session.destroyed || peer.session.closed;
      settle(failure(refused ? 'connect-failed' : 'upstream-reset', `${pool.cluster}: ${peerLost ? 'connection to the gateway lost' : 'stream closed'} before a response (code ${stream.rstCode})`, { cluster: pool.cluster, retriable: replayable, peerLost }));
    });
    stream.once('response', (responseHeaders: IncomingHttpHeaders) => {
      const trailers = request.grpc ? trailersOf(stream) : NO_TRAILERS;
      const answer = (): void =>
        settle({
          kind: 'response',
          response: {
            status: Number(responseHeaders[':status']),
            headers: responseHeaders,
            body: stream,
            trailers,
            cluster: pool.cluster,
            discard: () => {
              if (!stream.destroyed) stream.close(ErrorCode.CANCEL);
            },
          },
        });
      // A gRPC call that could be replayed is answered once its trailers are in (a unary answer
      // comes whole, at once), or after a short hold: a peer that dies between its headers and
      // its trailers then costs a retry on another cluster, not a call the client sees fail.
      if (!request.grpc || stream.readableEnded || !canResend(request, state)) {
        answer();
        return;
      }
      const hold = setTimeout(answer, GRPC_RESPONSE_HOLD_MS);
      stream.once('trailers', () => {
        clearTimeout(hold);
        answer();
      });
      stream.once('close', () => clearTimeout(hold));
    });
    const body = request.body;
    if (body) {
      const first = !state.bodyStarted;
      sendRequestBody(request, state, stream);
      if (first) body.once('error', () => !stream.destroyed && stream.close(ErrorCode.CANCEL));
    }
  });
}

/**
 * How long the answer of a replayable gRPC call waits for its trailers before it is passed on as
 * a stream (a server-streaming call's first message is delayed by at most this). 50 ms was too
 * short on a loaded two-core machine: 2,667 of about 8,000 answers in one kill-and-restart test
 * had no trailers 50 ms after their message, and a kill in that gap failed calls that could
 * have been replayed.
 */
const GRPC_RESPONSE_HOLD_MS = 200;

function trailersOf(stream: H2ClientStream): Promise<IncomingHttpHeaders> {
  return new Promise((done) => {
    stream.once('trailers', (t: IncomingHttpHeaders) => done(t));
    stream.once('close', () => done({}));
  });
}

/** The request's header block as the HTTP/2 client takes it: pseudo-headers first, then the rest. */
function requestFields(request: Request): string[] {
  const fields = [':method', request.method, ':scheme', 'https', ':authority', request.authority, ':path', request.path, CALLER_HEADER, request.caller];
  appendHeaderFields(fields, request.headers);
  return fields;
}

function noop(): void {}
