import type { Logger } from '../../core/logger.js';
import { Closer } from '../../core/lifecycle.js';
import type { ClusterConfig } from '../../config/cluster-config.js';
import { startAdminServer, type AdminServer } from '../../admin/admin-server.js';
import type { Registry } from '../../admin/metrics.js';
import type { H2ConnectionLimits } from '../../http2/index.js';
import type { GatewayIdentity } from '../gateway-identity.js';
import { authorizationOutcome } from '../inbound/authorize.js';
import type { InboundStream } from '../inbound/inbound-stream.js';
import type { OutboundExchange } from '../logical/outbound-exchange.js';
import type { Handler } from '../request/pipeline.js';
import type { GatewayMetrics } from '../request/request-metrics.js';
import type { PoolRegistry } from '../registry/pool-registry.js';
import type { RoutingTable } from '../routing/routing-table.js';
import type { ControlView } from '../view/control-view.js';
import type { CallerIdentities } from './caller-identities.js';
import { InboundServer } from './inbound-server.js';
import { OutboundServer } from './outbound-server.js';
import { TcpImportListener } from './tcp-import.js';

/** The connection and timeout limits of a gateway's listeners (spec.gateway.limits, resolved). */
export interface GatewayLimits {
  headersTimeoutMs: number;
  requestTimeoutMs: number;
  handshakeTimeoutMs: number;
  idleTimeoutMs: number;
  maxHeaderBytes: number;
  maxConcurrentStreams: number;
  connectTimeoutMs: number;
  maxConnections: number;
  maxConnectionsPerPeer: number;
  /** Limits of every HTTP/2 connection, as the HTTP/2 stack takes them. */
  http2: Partial<H2ConnectionLimits> & { abuseBurst?: number; abuseRatePerSecond?: number };
}

/** The limits of spec.gateway.limits, with test or command-line overrides. */
export function resolveLimits(cluster: ClusterConfig, overrides: Partial<GatewayLimits> = {}): GatewayLimits {
  const configured = cluster.spec.gateway.limits;
  const h2 = configured.http2;
  return {
    headersTimeoutMs: configured.headersTimeout,
    requestTimeoutMs: configured.requestTimeout,
    maxHeaderBytes: configured.maxHeaderBytes,
    idleTimeoutMs: configured.idleTimeout,
    handshakeTimeoutMs: configured.handshakeTimeout,
    maxConcurrentStreams: configured.maxConcurrentStreams,
    connectTimeoutMs: 2000,
    maxConnections: configured.maxConnections,
    maxConnectionsPerPeer: configured.maxConnectionsPerPeer,
    http2: {
      maxWriteQueueBytes: h2.writeQueueBytes,
      writeQueueHardLimitBytes: h2.writeQueueHardLimitBytes,
      writeStallTimeoutMs: h2.writeStallTimeout,
      maxStreamBufferedBytes: h2.streamBufferBytes,
      zeroWindowTimeoutMs: h2.zeroWindowTimeout,
      maxSettingsEntries: h2.maxSettingsEntries,
      settingsBurst: h2.settingsBurst,
      settingsRatePerSecond: h2.settingsRatePerSecond,
      pingBurst: h2.pingBurst,
      pingRatePerSecond: h2.pingRatePerSecond,
      abuseBurst: h2.resetBurst,
      abuseRatePerSecond: h2.resetRatePerSecond,
    },
    ...overrides,
  };
}

export interface ListenerDeps {
  cluster: ClusterConfig;
  limits: GatewayLimits;
  identity: GatewayIdentity;
  callers: CallerIdentities;
  view: () => ControlView;
  routing: RoutingTable;
  pools: PoolRegistry;
  inbound: Handler<InboundStream>;
  outbound: Handler<OutboundExchange>;
  metrics: GatewayMetrics;
  registry: Registry;
  readiness: () => { ready: boolean; reason?: string };
  config: () => unknown;
  log: Logger;
}

/** A gateway's listeners: inbound (:15443), outbound (:15001), one per TCP import, and admin (:15021). */
export class GatewayListeners {
  private readonly closer = new Closer();
  private inboundServer: InboundServer | undefined;
  private outboundServer: OutboundServer | undefined;
  private readonly tcpImports: TcpImportListener[] = [];
  private adminServer: AdminServer | undefined;

  constructor(private readonly deps: ListenerDeps) {}

  get ports(): { inbound: number; outbound: number; admin: number; tcp: number[] } {
    return { inbound: this.inboundServer?.port ?? 0, outbound: this.outboundServer?.port ?? 0, admin: this.adminServer?.port ?? 0, tcp: this.tcpImports.map((t) => t.port) };
  }

  get inbound(): InboundServer | undefined {
    return this.inboundServer;
  }

  async start(): Promise<void> {
    const { cluster, limits, log } = this.deps;
    const gateway = cluster.spec.gateway;
    const local = cluster.metadata.name;
    const callerIdentity = (remoteAddress: string | undefined): string => this.deps.callers.of(remoteAddress, this.deps.identity.spiffeId.toString());
    const inbound = new InboundServer(
      { localCluster: local, identity: this.deps.identity, view: this.deps.view, handler: this.deps.inbound, metrics: this.deps.metrics, log: log.child({ component: 'inbound' }) },
      {
        listen: gateway.inbound,
        handshakeTimeoutMs: limits.handshakeTimeoutMs,
        headersTimeoutMs: limits.headersTimeoutMs,
        idleTimeoutMs: limits.idleTimeoutMs,
        maxConcurrentStreams: limits.maxConcurrentStreams,
        maxHeaderBytes: limits.maxHeaderBytes,
        maxConnections: limits.maxConnections,
        maxConnectionsPerPeer: limits.maxConnectionsPerPeer,
        http2: limits.http2,
        onLimit: (kind) => this.deps.metrics.limitRefused('inbound', kind),
      },
    );
    await inbound.start();
    this.inboundServer = inbound;
    this.closer.add('inbound', () => inbound.close());
    const outbound = new OutboundServer(
      { localCluster: local, callerIdentity, routing: this.deps.routing, view: this.deps.view, handler: this.deps.outbound, metrics: this.deps.metrics, log: log.child({ component: 'outbound' }) },
      {
        listen: gateway.outbound,
        headersTimeoutMs: limits.headersTimeoutMs,
        requestTimeoutMs: limits.requestTimeoutMs,
        maxHeaderBytes: limits.maxHeaderBytes,
        idleTimeoutMs: limits.idleTimeoutMs,
        maxConcurrentStreams: limits.maxConcurrentStreams,
        maxConnections: limits.maxConnections,
        http2: limits.http2,
        onLimit: (listener, kind) => this.deps.metrics.limitRefused(listener, kind),
      },
    );
    await outbound.start();
    this.outboundServer = outbound;
    this.closer.add('outbound', () => outbound.close());
    const authz = { metrics: this.deps.metrics, log: log.child({ component: 'authz' }) };
    for (const tcp of gateway.tcpImports) {
      const listener = new TcpImportListener(
        {
          localCluster: local,
          routing: this.deps.routing,
          view: this.deps.view,
          pool: (view, peer) => this.deps.pools.pool(view, peer),
          metrics: this.deps.metrics,
          log: log.child({ component: 'tcp', service: tcp.service }),
          connectTimeoutMs: limits.connectTimeoutMs,
          callerIdentity,
          authorize: (view, request) => authorizationOutcome(authz, view, request),
        },
        { service: tcp.service, port: tcp.port, listen: tcp.listen, attempts: 3 },
      );
      await listener.start();
      this.tcpImports.push(listener);
      this.closer.add(`tcp ${tcp.service}`, () => listener.close());
    }
    const admin = await startAdminServer({ listen: gateway.admin, registry: this.deps.registry, log: log.child({ component: 'admin' }), readiness: this.deps.readiness, config: this.deps.config });
    this.adminServer = admin;
    this.closer.add('admin', () => admin.close());
  }

  close(log: Logger): Promise<void> {
    return this.closer.close(log);
  }
}
