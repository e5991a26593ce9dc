import { connect as netConnect } from 'node:net';
import { errorMessage } from '../../core/errors.js';
import type { LocalForwarder } from '../endpoint/local-forwarder.js';
import { relayBody } from '../endpoint/body-relay.js';
import { forwardableHeaders, isIdempotent } from '../request/headers.js';
import { failure, NO_TRAILERS, type Outcome } from '../request/outcome.js';
import type { Handler } from '../request/pipeline.js';
import { RequestState, type Request } from '../request/request.js';
import type { ExportedStream } from './inbound-stream.js';

/**
 * The inbound terminal: a request goes to a local endpoint of the export (HTTP/1.1, h2c or gRPC);
 * a CONNECT to a TCP port becomes a byte pipe to a local endpoint, half-close included, answered
 * as a 200 whose body is the endpoint's bytes.
 */
export function serveLocally(forwarder: LocalForwarder, localCluster: string): Handler<ExportedStream> {
  return (ctx) => (ctx.method === 'CONNECT' ? Promise.resolve(tunnel(ctx, localCluster)) : forward(ctx, forwarder, localCluster));
}

function forward(ctx: ExportedStream, forwarder: LocalForwarder, localCluster: string): Promise<Outcome> {
  const { exported, port, stream } = ctx;
  const request: Request = {
    direction: 'inbound',
    method: ctx.method,
    path: ctx.path,
    authority: `${exported.name}.${exported.namespace}.svc.clusterset.local:${port.port}`,
    service: ctx.service,
    headers: forwardableHeaders(ctx.headers),
    body: ctx.endStream ? null : stream,
    grpc: ctx.grpc,
    idempotent: isIdempotent(ctx.method),
    caller: ctx.caller,
    sourceCluster: ctx.peer.cluster,
    startedAt: Date.now(),
  };
  const state = new RequestState();
  stream.once('close', () => state.end('client-closed'));
  return Promise.resolve(forwarder.forward(request, state, exported, port, localCluster));
}

function tunnel(ctx: ExportedStream, localCluster: string): Outcome | Promise<Outcome> {
  const { exported, port, stream } = ctx;
  if (port.protocol !== 'tcp') return failure('bad-request', `port ${port.port} of ${exported.name}.${exported.namespace} is ${port.protocol}, not tcp`);
  const ready = exported.endpoints.filter((e) => e.ready);
  const endpoint = ready[Math.floor(Math.random() * ready.length)];
  if (!endpoint) return failure('no-healthy-upstream', `${exported.name}.${exported.namespace} has no ready endpoint`);
  return new Promise((resolve) => {
    const socket = netConnect({ host: endpoint.address, port: port.targetPort, allowHalfOpen: true, noDelay: true });
    socket.once('connect', () => {
      if (stream.destroyed) {
        socket.destroy();
        resolve(failure('client-closed', 'the peer closed the tunnel before it was set up'));
        return;
      }
      relayBody(stream, socket);
      stream.once('close', () => socket.destroy());
      resolve({ kind: 'response', response: { status: 200, headers: {}, body: socket, trailers: NO_TRAILERS, cluster: localCluster, discard: () => socket.destroy() } });
    });
    socket.once('error', (error) => resolve(failure('connect-failed', `${endpoint.address}:${port.targetPort}: ${errorMessage(error)}`)));
  });
}
