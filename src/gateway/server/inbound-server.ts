import type { IncomingHttpHeaders } from 'node:http2';
import { connect as netConnect, type AddressInfo } from 'node:net';
import { createServer as createTlsServer, type Server as TlsServer, type TLSSocket } from 'node:tls';
import { errorMessage } from '../../core/errors.js';
import type { Logger } from '../../core/logger.js';
import { parseHostPort } from '../../config/shape.js';
import { SpiffeId } from '../../model/spiffe-id.js';
import type { DiscoveryState, LocalExport, LocalExportPort } from '../../discovery/provider.js';
import { bindListener } from '../../pki/rotation.js';
import { MTLS_SERVER_OPTIONS, serverSecureContext } from '../../pki/tls-options.js';
import type { ServicePolicy } from '../../policy/service-policy.js';
import { AuthorityMemo } from './authority-memo.js';
import type { GatewayIdentity } from '../gateway-identity.js';
import type { AuthorizationRequest } from '../inbound/authorize.js';
import { writeHttp2, type Completion } from './client-writer.js';
import type { CatalogData } from '../control/catalog-replica.js';
import { ErrorCode, H2ServerSession, type H2ServerStream } from '../../http2/index.js';
import { CALLER_HEADER, forwardableHeaders, isGrpc, isIdempotent } from '../request/headers.js';
import { failure, type Outcome } from '../request/outcome.js';
import type { Handler } from '../request/pipeline.js';
import { endRequest, type RequestContext } from '../request/request.js';
import type { GatewayMetrics } from '../request/request-metrics.js';
import { PEER_CONNECTION } from '../endpoint/peer-pool.js';

/** A verified peer: the gateway of another member cluster. */
export interface InboundPeer {
  id: SpiffeId;
  /** `id` as a string, computed once per session. */
  spiffeId: string;
  cluster: string;
  /** Caller identities this peer asserted, checked once each (a peer asserts the same few on every request). */
  callers: Map<string, string | null>;
}

const MAX_CALLERS_PER_PEER = 1024;

/** The identity a peer may assert for its caller, normalized; undefined when it is outside the peer's trust domain. */
function acceptedCaller(peer: InboundPeer, asserted: string): string | undefined {
  let accepted = peer.callers.get(asserted);
  if (accepted === undefined) {
    const id = SpiffeId.tryParse(asserted);
    accepted = id && id.memberOf(peer.id.trustDomain) ? id.toString() : null;
    if (peer.callers.size >= MAX_CALLERS_PER_PEER) peer.callers.clear();
    peer.callers.set(asserted, accepted);
  }
  return accepted ?? undefined;
}

export interface InboundOptions {
  listen: string;
  handshakeTimeoutMs: number;
  /** A request's header block must be complete within this. */
  headersTimeoutMs: number;
  idleTimeoutMs: number;
  maxConcurrentStreams: number;
  maxHeaderBytes: number;
}

export interface InboundPlane {
  localCluster: string;
  identity: GatewayIdentity;
  catalog: () => CatalogData;
  discovery: () => DiscoveryState;
  policyFor: (namespace: string, name: string) => ServicePolicy;
  /** Inbound pipeline: authorization around the local forward. */
  pipeline: Handler<RequestContext>;
  /** Authorization of a TCP tunnel (checked as method CONNECT with an empty path). */
  authorize: (request: AuthorizationRequest) => Outcome | undefined;
  /** Services this gateway stops answering for (drills). */
  blackholed: (key: string) => boolean;
  metrics: GatewayMetrics;
  log: Logger;
}

/**
 * The listener other clusters' gateways call: HTTP/2 over mutual TLS with the gateway SVID. A peer
 * must be the gateway of a member cluster, bound to that cluster's trust domain; only exported
 * services (and ports) are reachable, never anything else in the cluster. Raw TCP exports ride
 * HTTP/2 CONNECT streams on the same port.
 */
export class InboundServer {
  private readonly server: TlsServer;
  private readonly sessions = new Map<H2ServerSession, InboundPeer>();
  private readonly authorities = new AuthorityMemo();
  private unbind: (() => void) | undefined;
  port = 0;

  constructor(
    private readonly plane: InboundPlane,
    private readonly options: InboundOptions,
  ) {
    const identity = plane.identity;
    // TLS here, HTTP/2 by fedgate's own server role (src/gateway/h2): Node's HTTP/2 server cost
    // about a third of the inbound gateway's CPU per request (docs/benchmarks.md).
    this.server = createTlsServer({
      ...MTLS_SERVER_OPTIONS,
      ...serverSecureContext(identity.svid.current, identity.trust),
      ALPNProtocols: ['h2'],
      handshakeTimeout: options.handshakeTimeoutMs,
    });
    this.unbind = bindListener(this.server, identity.svid, identity.trust);
    this.server.on('secureConnection', (socket: TLSSocket) => this.onConnection(socket));
    this.server.on('tlsClientError', (error) => {
      plane.metrics.rejectedPeers.inc({ reason: 'tls' });
      plane.log.debug({ err: errorMessage(error) }, 'inbound TLS handshake failed');
    });
  }

  async start(): Promise<number> {
    const address = parseHostPort(this.options.listen);
    if (!address) throw new Error(`inbound listen address "${this.options.listen}" is not host:port`);
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(address.port, address.host, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    this.port = (this.server.address() as AddressInfo).port;
    return this.port;
  }

  async close(): Promise<void> {
    this.unbind?.();
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const session of this.sessions.keys()) session.destroy();
    await closed;
  }

  /** Closes sessions of peers that are no longer members (a cluster left or was removed). */
  dropDepartedPeers(): void {
    const clusters = this.plane.catalog().clusters;
    for (const [session, peer] of this.sessions) {
      if (clusters.get(peer.cluster)?.trustDomain !== peer.id.trustDomain) {
        this.plane.log.info({ cluster: peer.cluster }, 'closing the connection of a cluster that left');
        session.destroy();
      }
    }
  }

  private onConnection(socket: TLSSocket): void {
    socket.setNoDelay(true);
    socket.on('error', () => undefined);
    if (socket.alpnProtocol !== 'h2') {
      this.reject(socket, 'not-h2', `the peer did not agree to HTTP/2 (ALPN ${socket.alpnProtocol || 'none'})`);
      return;
    }
    let id: SpiffeId;
    try {
      id = this.plane.identity.verifier.verifySocket(socket);
    } catch (error) {
      this.reject(socket, 'untrusted', errorMessage(error));
      return;
    }
    const cluster = id.gatewayCluster;
    const record = cluster ? this.plane.catalog().clusters.get(cluster) : undefined;
    if (!cluster) {
      this.reject(socket, 'not-a-gateway', `${id.toString()} is not a gateway identity`);
      return;
    }
    if (!record || record.trustDomain !== id.trustDomain) {
      this.reject(socket, 'not-a-member', `${id.toString()} is not the gateway of a member cluster`);
      return;
    }
    const peer: InboundPeer = { id, spiffeId: id.toString(), cluster, callers: new Map() };
    const session = new H2ServerSession(socket, {
      ...PEER_CONNECTION,
      maxHeaderListSize: this.options.maxHeaderBytes,
      headersTimeoutMs: this.options.headersTimeoutMs,
      maxConcurrentStreams: this.options.maxConcurrentStreams,
      idleTimeoutMs: this.options.idleTimeoutMs,
      peerName: `the gateway of ${cluster}`,
    });
    this.sessions.set(session, peer);
    session.once('close', () => this.sessions.delete(session));
    session.on('error', (error: Error) => this.plane.log.debug({ cluster, err: errorMessage(error) }, 'inbound HTTP/2 connection ended with an error'));
    session.on('malformed', (problem: string) => this.plane.log.warn({ cluster, problem }, 'malformed request from a peer gateway refused'));
    session.on('stream', (stream: H2ServerStream, headers: IncomingHttpHeaders, endStream: boolean) => this.onStream(peer, stream, headers, endStream));
  }

  private reject(socket: TLSSocket, reason: string, message: string): void {
    this.plane.metrics.rejectedPeers.inc({ reason });
    this.plane.log.warn({ reason, err: message }, 'inbound peer refused');
    socket.destroy();
  }

  private onStream(peer: InboundPeer, stream: H2ServerStream, headers: IncomingHttpHeaders, endStream: boolean): void {
    stream.on('error', () => undefined);
    const started = performance.now();
    const grpc = isGrpc(headers['content-type']);
    const authority = String(headers[':authority'] ?? '');
    const address = this.authorities.parse(authority);
    let serviceKey = 'unknown';
    const done = (completion: Completion): void => {
      const code = completion.grpcStatus !== undefined ? `grpc-${completion.grpcStatus}` : String(completion.status);
      this.plane.metrics.request('inbound', peer.cluster, this.plane.localCluster, serviceKey, code, (performance.now() - started) / 1000);
    };
    const refuse = (outcome: Outcome): void => writeHttp2(stream, outcome, grpc, done);
    if (!address || address.port === undefined) {
      refuse(failure('no-route', `"${authority}" is not a clusterset service address with a port`));
      return;
    }
    serviceKey = address.key;
    const exported = this.plane.discovery().exports.get(serviceKey);
    if (!exported) {
      refuse(failure('service-not-exported', `${address.name}.${address.namespace} is not exported by ${this.plane.localCluster}`));
      return;
    }
    const port = exported.ports.find((p) => p.port === address.port);
    if (!port) {
      refuse(failure('port-not-exported', `${address.name}.${address.namespace} exports no port ${address.port}`));
      return;
    }
    if (exported.consumers.length > 0 && !exported.consumers.includes(peer.cluster)) {
      refuse(failure('consumer-not-allowed', `${address.name}.${address.namespace} is exported to ${exported.consumers.join(', ')} only, not to ${peer.cluster}`));
      return;
    }
    if (this.plane.blackholed(serviceKey)) {
      // A blackhole answers nothing: the caller sees what a dead network path looks like.
      stream.once('close', () => done({ status: 0, cluster: this.plane.localCluster, failureCode: 'blackholed' }));
      return;
    }
    // A peer of trust domain A may only assert identities of trust domain A.
    let caller = peer.spiffeId;
    const asserted = headers[CALLER_HEADER];
    if (typeof asserted === 'string' && asserted !== '') {
      const accepted = acceptedCaller(peer, asserted);
      if (accepted === undefined) {
        this.plane.log.warn({ cluster: peer.cluster, asserted }, 'peer asserted an identity outside its trust domain');
        refuse(failure('identity-rejected', `the gateway of ${peer.cluster} may only assert identities of ${peer.id.trustDomain}`));
        return;
      }
      caller = accepted;
    }
    if (headers[':method'] === 'CONNECT') {
      this.tunnel(stream, exported, port, caller, peer.cluster, done);
      return;
    }
    const hasBody = !endStream;
    const method = String(headers[':method'] ?? 'GET');
    const policy = this.plane.policyFor(exported.namespace, exported.name);
    const ctx: RequestContext = {
      direction: 'inbound',
      method,
      path: String(headers[':path'] ?? '/'),
      authority: `${exported.name}.${exported.namespace}.svc.clusterset.local:${port.port}`,
      service: { namespace: exported.namespace, name: exported.name, port: port.port, key: serviceKey },
      headers: forwardableHeaders(headers),
      body: hasBody ? stream : null,
      grpc,
      idempotent: isIdempotent(method),
      caller,
      sourceCluster: peer.cluster,
      startedAt: Date.now(),
      ended: undefined,
      abortAttempt: undefined,
      bodyStarted: false,
      bodyRecording: undefined,
      tried: new Set(),
      redial: false,
      cluster: this.plane.localCluster,
      route: undefined,
      policy,
      rule: undefined,
      attempts: 1,
    };
    stream.once('close', () => endRequest(ctx, 'client-closed'));
    this.plane.pipeline(ctx).then(
      (outcome) => writeHttp2(stream, outcome, grpc, done),
      (error: unknown) => {
        this.plane.log.error({ service: serviceKey, err: errorMessage(error) }, 'inbound request failed unexpectedly');
        writeHttp2(stream, failure('upstream-reset', 'internal error in the gateway'), grpc, done);
      },
    );
  }

  /** A TCP export: the CONNECT stream becomes a byte pipe to a local endpoint, half-close included. */
  private tunnel(stream: H2ServerStream, exported: LocalExport, port: LocalExportPort, caller: string, sourceCluster: string, done: (c: Completion) => void): void {
    const service = `${exported.namespace}/${exported.name}`;
    const denied = this.plane.authorize({ service: { namespace: exported.namespace, name: exported.name, port: port.port, key: service }, caller, sourceCluster, method: 'CONNECT', path: '' });
    if (denied) {
      writeHttp2(stream, denied, false, done);
      return;
    }
    if (port.protocol !== 'tcp') {
      writeHttp2(stream, failure('bad-request', `port ${port.port} of ${exported.name}.${exported.namespace} is ${port.protocol}, not tcp`), false, done);
      return;
    }
    const ready = exported.endpoints.filter((e) => e.ready);
    const endpoint = ready[Math.floor(Math.random() * ready.length)];
    if (!endpoint) {
      writeHttp2(stream, failure('no-healthy-upstream', `${exported.name}.${exported.namespace} has no ready endpoint`), false, done);
      return;
    }
    const socket = netConnect({ host: endpoint.address, port: port.targetPort, allowHalfOpen: true, noDelay: true });
    socket.once('connect', () => {
      if (stream.destroyed) {
        socket.destroy();
        return;
      }
      stream.respond({ ':status': 200 });
      stream.pipe(socket);
      socket.pipe(stream);
      this.plane.metrics.tcpConnections.inc({ service, destination_cluster: this.plane.localCluster, result: 'connected' });
    });
    socket.once('error', (error) => {
      if (!stream.headersSent) {
        writeHttp2(stream, failure('connect-failed', `${endpoint.address}:${port.targetPort}: ${errorMessage(error)}`), false, done);
        return;
      }
      stream.close(ErrorCode.CONNECT_ERROR);
    });
    stream.once('close', () => {
      socket.destroy();
      if (stream.headersSent) done({ status: 200, cluster: this.plane.localCluster });
    });
  }
}
