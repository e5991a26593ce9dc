import type { ServerResponse } from 'node:http';
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http2';
import type { Writable } from 'node:stream';
import { relayBody } from '../endpoint/body-relay.js';
import { ErrorCode } from '../../http2/index.js';
import { responseHeaders } from '../request/headers.js';
import type { Outcome } from '../request/outcome.js';
import { failureResponse, UPSTREAM_CLUSTER_HEADER } from '../request/respond.js';

/**
 * What an HTTP/2 response is written to: Node's ServerHttp2Stream (the outbound h2c listener) and
 * fedgate's H2ServerStream (the inbound listener) both have this shape.
 */
export interface Http2ResponseStream extends Writable {
  readonly headersSent: boolean;
  readonly closed: boolean;
  respond(headers: OutgoingHttpHeaders, options?: { endStream?: boolean; waitForTrailers?: boolean }): void;
  sendTrailers(headers: OutgoingHttpHeaders): void;
  close(code?: number): void;
}

/** What a finished request reports for metrics and logs. */
export interface Completion {
  status: number;
  /** gRPC status when the call was gRPC and one was seen. */
  grpcStatus?: string;
  cluster: string | undefined;
  failureCode?: string;
}

/** Writes an outcome to an HTTP/1.1 client; `done` runs once the exchange is over. */
export function writeHttp1(res: ServerResponse, outcome: Outcome, done: (completion: Completion) => void): void {
  if (outcome.kind === 'failure') {
    const f = failureResponse(outcome.failure, false);
    res.writeHead(f.status, f.headers);
    res.end(f.body);
    done({ status: f.status, cluster: outcome.failure.cluster, failureCode: outcome.failure.code });
    return;
  }
  const r = outcome.response;
  const headers = responseHeaders(r.headers);
  headers[UPSTREAM_CLUSTER_HEADER] = r.cluster;
  res.writeHead(r.status, headers as OutgoingHttpHeaders);
  relayBody(r.body, res);
  let finished = false;
  const finish = (): void => {
    if (finished) return;
    finished = true;
    done({ status: r.status, cluster: r.cluster });
  };
  r.body.once('error', () => res.destroy());
  r.body.once('close', () => {
    // An upstream that stops mid-body must not look like a complete response to the client.
    if (!r.body.readableEnded) res.destroy();
  });
  res.once('close', () => {
    if (!res.writableFinished) r.discard();
    finish();
  });
}

/**
 * Writes an outcome to an HTTP/2 client stream. gRPC responses end with the upstream's trailers
 * (grpc-status); a trailers-only response (status in the headers) is passed through as one.
 */
export function writeHttp2(stream: Http2ResponseStream, outcome: Outcome, grpc: boolean, done: (completion: Completion) => void): void {
  if (stream.destroyed || stream.closed) {
    if (outcome.kind === 'response') outcome.response.discard();
    done({ status: 499, cluster: outcome.kind === 'response' ? outcome.response.cluster : outcome.failure.cluster, failureCode: 'client-closed' });
    return;
  }
  if (outcome.kind === 'failure') {
    const f = failureResponse(outcome.failure, grpc);
    stream.respond({ ':status': f.status, ...f.headers }, { endStream: f.body === '' });
    if (f.body !== '') stream.end(f.body);
    done({ status: f.status, grpcStatus: f.grpc ? f.headers['grpc-status'] : undefined, cluster: outcome.failure.cluster, failureCode: outcome.failure.code });
    return;
  }
  const r = outcome.response;
  const headers: OutgoingHttpHeaders = responseHeaders(r.headers);
  headers[':status'] = r.status;
  headers[UPSTREAM_CLUSTER_HEADER] = r.cluster;
  let grpcStatus: string | undefined = typeof r.headers['grpc-status'] === 'string' ? r.headers['grpc-status'] : undefined;
  let finished = false;
  const finish = (): void => {
    if (finished) return;
    finished = true;
    done({ status: r.status, grpcStatus, cluster: r.cluster });
  };
  stream.once('close', () => {
    if (!r.body.readableEnded) r.discard();
    finish();
  });
  if (grpc && grpcStatus !== undefined) {
    // Trailers-only: the whole answer is in the headers.
    stream.respond(headers, { endStream: true });
    r.body.resume();
    return;
  }
  stream.respond(headers, { waitForTrailers: grpc });
  if (grpc) {
    stream.once('wantTrailers', () => {
      void r.trailers.then((trailers: IncomingHttpHeaders) => {
        if (stream.destroyed) return;
        const out = responseHeaders(trailers);
        if (out['grpc-status'] === undefined) {
          // The upstream ended without a status: that is an error for a gRPC client, not success.
          stream.close(ErrorCode.INTERNAL_ERROR);
          return;
        }
        grpcStatus = String(out['grpc-status']);
        stream.sendTrailers(out);
      });
    });
  }
  relayBody(r.body, stream);
  r.body.once('error', () => !stream.destroyed && stream.close(ErrorCode.INTERNAL_ERROR));
  r.body.once('close', () => {
    if (!r.body.readableEnded && !stream.destroyed) stream.close(ErrorCode.CANCEL);
  });
}
