import type { Logger } from '../../core/logger.js';
import { SpiffeId } from '../../model/spiffe-id.js';
import { clientConnectionOptions, expectId } from '../../pki/tls-options.js';
import type { ServicePolicy } from '../../policy/service-policy.js';
import type { H2ConnectionLimits } from '../../http2/index.js';
import { PeerPool } from '../endpoint/peer-pool.js';
import type { GatewayIdentity } from '../gateway-identity.js';
import type { ControlView } from '../view/control-view.js';

/** How a pool is sized: the federation's defaults (shared pool), or a policy's (a service's own). */
interface Sizing {
  maxConnections: number;
  maxPending: number;
  maxRequestsPerConnection: number;
}

interface PoolEntry {
  pool: PeerPool;
  trustDomain: string;
  addresses: string;
  sizing: Sizing;
}

/** The pools to one peer cluster: the shared one, and those of services a policy sized. */
interface PeerPools {
  shared: PoolEntry | undefined;
  byService: Map<string, PoolEntry>;
}

function sameSizing(a: Sizing, b: Sizing): boolean {
  return a.maxConnections === b.maxConnections && a.maxPending === b.maxPending && a.maxRequestsPerConnection === b.maxRequestsPerConnection;
}

/**
 * Connections to peer gateways: one shared pool per peer cluster, and a service's own pool when a
 * policy sized its connections (so one service's circuit-breaking limits never starve another's
 * traffic). Follows the control view: a cluster that left loses its pools, one whose addresses
 * changed recycles them, a pool whose sizing changed is replaced (its streams in flight finish).
 */
export class PoolRegistry {
  private readonly peers = new Map<string, PeerPools>();

  constructor(
    private readonly options: {
      identity: GatewayIdentity;
      /** The current control view: a pool dials the addresses it gives at the moment it connects. */
      view: () => ControlView;
      connectTimeoutMs: number;
      http2?: Partial<H2ConnectionLimits>;
      onLimit?: (kind: string) => void;
      log: Logger;
    },
  ) {}

  /** The pool for a request to `cluster` (for `service` under `policy`, when a policy sizes it); undefined when the cluster is unknown. */
  pool(view: ControlView, cluster: string, service?: string, policy?: ServicePolicy): PeerPool | undefined {
    const record = view.catalog.clusters.get(cluster);
    if (!record) return undefined;
    const dedicated = service !== undefined && policy?.connectionPool.dedicated === true;
    const own = dedicated ? policy.connectionPool : undefined;
    const d = view.defaults.connectionPool;
    const sizing: Sizing = own
      ? { maxConnections: own.maxConnectionsPerPeer, maxPending: own.maxPendingRequests, maxRequestsPerConnection: own.maxRequestsPerConnection }
      : { maxConnections: d.maxConnectionsPerPeer, maxPending: d.maxPendingRequests, maxRequestsPerConnection: 0 };
    let peer = this.peers.get(cluster);
    if (!peer) {
      peer = { shared: undefined, byService: new Map() };
      this.peers.set(cluster, peer);
    }
    const existing = dedicated ? peer.byService.get(service) : peer.shared;
    if (existing) {
      if (sameSizing(existing.sizing, sizing)) return existing.pool;
      existing.pool.retire();
    }
    const expected = SpiffeId.gateway(record.trustDomain, record.name);
    const identity = this.options.identity;
    const entry: PoolEntry = {
      pool: new PeerPool({
        cluster,
        addresses: () => this.addressesOf(cluster),
        tls: () => clientConnectionOptions(identity.svid.current, identity.trust, identity.verifier, expectId(expected)),
        maxConnections: sizing.maxConnections,
        maxPending: sizing.maxPending,
        maxRequestsPerConnection: sizing.maxRequestsPerConnection,
        connectTimeoutMs: this.options.connectTimeoutMs,
        http2: this.options.http2,
        onLimit: this.options.onLimit,
        log: this.options.log.child({ peer: cluster, ...(dedicated ? { service } : {}) }),
      }),
      trustDomain: record.trustDomain,
      addresses: record.gatewayAddresses.join(','),
      sizing,
    };
    if (dedicated) peer.byService.set(service, entry);
    else peer.shared = entry;
    return entry.pool;
  }

  /** A new control view: pools of clusters that left close, pools of clusters that moved recycle. */
  onView(view: ControlView): void {
    for (const [cluster, peer] of this.peers) {
      const record = view.catalog.clusters.get(cluster);
      for (const [service, entry] of [...peer.byService, ['', peer.shared] as const]) {
        if (!entry) continue;
        if (!record || record.trustDomain !== entry.trustDomain || record.state === 'left') {
          entry.pool.close('left the federation');
          if (service === '') peer.shared = undefined;
          else peer.byService.delete(service);
        } else if (record.gatewayAddresses.join(',') !== entry.addresses) {
          entry.pool.recycle();
          entry.addresses = record.gatewayAddresses.join(',');
        }
      }
      if (!peer.shared && peer.byService.size === 0) this.peers.delete(cluster);
    }
  }

  /** An active health check of a peer gateway, over its shared pool. */
  ping(view: ControlView, cluster: string, timeoutMs: number): Promise<number> {
    const pool = this.pool(view, cluster);
    if (!pool) return Promise.reject(new Error(`${cluster} is not in the catalog`));
    return pool.ping(timeoutMs);
  }

  close(reason: string): void {
    for (const peer of this.peers.values()) {
      peer.shared?.pool.close(reason);
      for (const entry of peer.byService.values()) entry.pool.close(reason);
    }
    this.peers.clear();
  }

  private addressesOf(cluster: string): readonly string[] {
    return this.options.view().catalog.clusters.get(cluster)?.gatewayAddresses ?? [];
  }
}
