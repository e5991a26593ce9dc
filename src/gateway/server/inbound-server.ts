import type { IncomingHttpHeaders } from 'node:http2';
import type { AddressInfo, Socket } from 'node:net';
import { createServer as createTlsServer, type Server as TlsServer, type TLSSocket } from 'node:tls';
import { errorMessage } from '../../core/errors.js';
import type { Logger } from '../../core/logger.js';
import { parseHostPort } from '../../config/shape.js';
import { normalizePath } from '../../policy/path-normalization.js';
import type { SpiffeId } from '../../model/spiffe-id.js';
import { bindListener } from '../../pki/rotation.js';
import { MTLS_SERVER_OPTIONS, serverSecureContext } from '../../pki/tls-options.js';
import { H2ServerSession, type H2ConnectionLimits, type H2ServerStream } from '../../http2/index.js';
import { ConnectionLimiter, type LimitedConnection } from './connection-limiter.js';
import { PEER_CONNECTION } from '../endpoint/peer-pool.js';
import type { GatewayIdentity } from '../gateway-identity.js';
import type { InboundPeer, InboundStream } from '../inbound/inbound-stream.js';
import { isGrpc } from '../request/headers.js';
import { failure } from '../request/outcome.js';
import type { Handler } from '../request/pipeline.js';
import type { GatewayMetrics } from '../request/request-metrics.js';
import type { ControlView } from '../view/control-view.js';
import { AuthorityMemo } from './authority-memo.js';
import { writeHttp2, type Completion } from './client-writer.js';
import { startAfterRead } from './stream-arrival.js';

/** A connection to the inbound listener, from its TCP accept on: anonymous until its peer is verified. */
class PeerConnection implements LimitedConnection {
  active = 0;
  lastActive = performance.now();
  verified = false;
  session: H2ServerSession | undefined;

  constructor(private readonly socket: Socket) {}

  close(): void {
    if (this.session) this.session.close();
    else this.socket.destroy();
  }
}

export interface InboundOptions {
  listen: string;
  /** Connections held at once, handshakes included; the idlest (anonymous first) makes room past it. */
  maxConnections: number;
  /** Connections one peer cluster may hold (its gateways pool a few each). */
  maxConnectionsPerPeer: number;
  /** Limits of the HTTP/2 connections (the stack's defaults where unset). */
  http2: Partial<H2ConnectionLimits> & { abuseBurst?: number; abuseRatePerSecond?: number };
  /** Counts every refusal of a limit, by kind (fedgate_limit_refusals_total{listener="inbound"}). */
  onLimit: (kind: string) => void;
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
  /** The control view a stream is served under (read when it arrives). */
  view: () => ControlView;
  /** Every stream from a peer: identity, export, blackhole, authorization, local endpoint. */
  handler: Handler<InboundStream>;
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
  private readonly connections: ConnectionLimiter<PeerConnection>;
  private readonly perPeer = new Map<string, ConnectionLimiter<PeerConnection>>();
  private readonly pending = new Map<string, PeerConnection>();
  port = 0;

  constructor(
    private readonly plane: InboundPlane,
    private readonly options: InboundOptions,
  ) {
    const identity = plane.identity;
    // TLS here, HTTP/2 by fedgate's own server role (src/gateway/h2): Node's HTTP/2 server cost
    // about a third of the inbound gateway's CPU per request (docs/perf-notes/dataplane.md).
    this.server = createTlsServer({
      ...MTLS_SERVER_OPTIONS,
      ...serverSecureContext(identity.svid.current, identity.trust),
      ALPNProtocols: ['h2'],
      handshakeTimeout: options.handshakeTimeoutMs,
    });
    this.unbind = bindListener(this.server, identity.svid, identity.trust);
    this.connections = new ConnectionLimiter<PeerConnection>(options.maxConnections, (kind) => options.onLimit(kind));
    this.server.on('connection', (socket: Socket) => this.onAccept(socket));
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
  dropDepartedPeers(view: ControlView): void {
    const clusters = view.catalog.clusters;
    for (const [session, peer] of this.sessions) {
      if (clusters.get(peer.cluster)?.trustDomain !== peer.id.trustDomain) {
        this.plane.log.info({ peer: peer.cluster }, 'closing the connection of a cluster that left');
        session.destroy();
      }
    }
  }

  /** Every TCP connection counts from its accept, so handshakes that never finish cannot take every descriptor. */
  private onAccept(socket: Socket): void {
    const connection = new PeerConnection(socket);
    if (!this.connections.admit(connection)) {
      socket.destroy();
      return;
    }
    const key = `${socket.remoteAddress}|${socket.remotePort}`;
    this.pending.set(key, connection);
    socket.once('close', () => {
      this.connections.release(connection);
      if (this.pending.get(key) === connection) this.pending.delete(key);
    });
  }

  private onConnection(socket: TLSSocket): void {
    const key = `${socket.remoteAddress}|${socket.remotePort}`;
    const connection = this.pending.get(key);
    this.pending.delete(key);
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
    const record = cluster ? this.plane.view().catalog.clusters.get(cluster) : undefined;
    if (!cluster) {
      this.reject(socket, 'not-a-gateway', `${id.toString()} is not a gateway identity`);
      return;
    }
    if (!record || record.trustDomain !== id.trustDomain) {
      this.reject(socket, 'not-a-member', `${id.toString()} is not the gateway of a member cluster`);
      return;
    }
    const peer: InboundPeer = { id, spiffeId: id.toString(), cluster, callers: new Map() };
    if (connection) {
      let limiter = this.perPeer.get(cluster);
      if (!limiter) {
        limiter = new ConnectionLimiter<PeerConnection>(this.options.maxConnectionsPerPeer, (kind) => this.options.onLimit(`per-peer-${kind}`));
        this.perPeer.set(cluster, limiter);
      }
      connection.verified = true;
      if (!limiter.admit(connection)) {
        this.reject(socket, 'too-many-connections', `the gateway of ${cluster} holds ${this.options.maxConnectionsPerPeer} connections already`);
        return;
      }
      const perPeer = limiter;
      socket.once('close', () => perPeer.release(connection));
    }
    const session = new H2ServerSession(socket, {
      ...PEER_CONNECTION,
      ...this.options.http2,
      maxHeaderListSize: this.options.maxHeaderBytes,
      headersTimeoutMs: this.options.headersTimeoutMs,
      maxConcurrentStreams: this.options.maxConcurrentStreams,
      idleTimeoutMs: this.options.idleTimeoutMs,
      peerName: `the gateway of ${cluster}`,
    });
    this.sessions.set(session, peer);
    if (connection) connection.session = session;
    session.on('limit', (kind: string) => this.options.onLimit(kind));
    session.once('close', () => this.sessions.delete(session));
    session.on('error', (error: Error) => this.plane.log.debug({ peer: cluster, err: errorMessage(error) }, 'inbound HTTP/2 connection ended with an error'));
    session.on('malformed', (problem: string) => this.plane.log.warn({ peer: cluster, problem }, 'malformed request from a peer gateway refused'));
    session.on('stream', (stream: H2ServerStream, headers: IncomingHttpHeaders, endStream: boolean) => {
      if (connection) {
        connection.active += 1;
        connection.lastActive = performance.now();
        stream.once('close', () => {
          connection.active -= 1;
          connection.lastActive = performance.now();
        });
      }
      startAfterRead(stream, () => this.onStream(peer, stream, headers, endStream));
    });
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
    const serviceKey = address?.key ?? 'unknown';
    const done = (completion: Completion): void => {
      const code = completion.grpcStatus !== undefined ? `grpc-${completion.grpcStatus}` : String(completion.status);
      this.plane.metrics.request('inbound', peer.cluster, this.plane.localCluster, serviceKey, code, (performance.now() - started) / 1000);
    };
    if (!address || address.port === undefined) {
      writeHttp2(stream, failure('no-route', `"${authority}" is not a clusterset service address with a port`), grpc, done);
      return;
    }
    const method = String(headers[':method'] ?? 'GET');
    const view = this.plane.view();
    // Peers send normalized paths; normalized again here, so no rule of this cluster depends on a
    // peer having done it.
    let path = '';
    if (method !== 'CONNECT') {
      const normalized = normalizePath(String(headers[':path'] ?? '/'), view.defaults.pathNormalization);
      if (!normalized.ok) {
        writeHttp2(stream, failure('bad-request', normalized.reason), grpc, done);
        return;
      }
      path = normalized.path;
    }
    const inbound: InboundStream = {
      view,
      peer,
      stream,
      headers,
      endStream,
      method,
      path,
      grpc,
      service: { namespace: address.namespace, name: address.name, port: address.port, key: address.key },
    };
    this.plane.handler(inbound).then(
      (outcome) => {
        // A blackhole answered nothing, on purpose: count it, write nothing.
        if (outcome.kind === 'failure' && outcome.failure.code === 'blackholed') done({ status: 0, cluster: this.plane.localCluster, failureCode: 'blackholed' });
        else writeHttp2(stream, outcome, grpc, done);
      },
      (error: unknown) => {
        this.plane.log.error({ service: serviceKey, err: errorMessage(error) }, 'inbound request failed unexpectedly');
        writeHttp2(stream, failure('upstream-reset', 'internal error in the gateway'), grpc, done);
      },
    );
  }
}
