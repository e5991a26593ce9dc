import type { GatewayDefaults } from '../config/federation-config.js';

export const RETRY_ON = ['connect-failure', 'reset', 'unavailable', '5xx', 'gateway-error', 'retriable-4xx'] as const;
export type RetryOn = (typeof RETRY_ON)[number];

/** Everything the data plane applies to one clusterset service, resolved from defaults and policies. */
export interface ServicePolicy {
  /** Time until the response headers arrive; undefined: no timeout (gRPC streams rely on their deadline). */
  timeoutMs: number | undefined;
  /** A policy set the timeout (the default one is not applied to gRPC calls, which carry deadlines). */
  timeoutExplicit: boolean;
  retries: {
    /** Retries after the first attempt. */
    attempts: number;
    perTryTimeoutMs: number | undefined;
    retryOn: ReadonlySet<RetryOn>;
    budgetPercent: number;
    minRetryConcurrency: number;
  };
  connectionPool: {
    maxConnectionsPerPeer: number;
    maxPendingRequests: number;
    maxRequests: number;
    /** Requests over one connection before it is replaced; 0: unlimited. */
    maxRequestsPerConnection: number;
    /**
     * A policy sized the connections: the service gets connections of its own to each peer
     * (a bulkhead), instead of sharing the gateway's pool with every other service.
     */
    dedicated: boolean;
  };
  outlierDetection: {
    consecutiveErrors: number;
    intervalMs: number;
    baseEjectionTimeMs: number;
    maxEjectionPercent: number;
    /** A policy set these: the service's clusters are ejected by their own counts, not the gateway-wide ones. */
    dedicated: boolean;
  };
  failover: {
    overprovisioningFactor: number;
    panicThreshold: number;
    /** Regions to fail over to, in order, after the local region. */
    regionOrder: readonly string[];
    /**
     * Fixed traffic shares (percent) by region or cluster name (distribute). The clusters with a
     * share come first; the others keep their locality order after them and take what the shared
     * clusters cannot (so distribute and failover work together).
     */
    distribute: ReadonlyMap<string, number> | undefined;
  };
  /** Traffic split and header/path routing (RoutePolicy). */
  routes: readonly RouteRule[];
  /** Injected faults (FaultPolicy). */
  faults: readonly FaultRule[];
  /** Where the policy parts came from, for /config. */
  sources: readonly string[];
}

export interface HeaderMatch {
  name: string;
  exact?: string;
  prefix?: string;
  regex?: RegExp;
  present?: boolean;
}

export interface RequestMatch {
  headers: readonly HeaderMatch[];
  pathExact?: string;
  pathPrefix?: string;
  pathRegex?: RegExp;
  methods?: readonly string[];
}

/** A destination of a route: a cluster, or every cluster exporting a version label. */
export interface RouteDestination {
  cluster?: string;
  /** Clusters whose labels match (e.g. version: v2). */
  clusterLabels?: Readonly<Record<string, string>>;
  weight: number;
}

export interface RouteRule {
  name: string;
  /** The policy document it comes from, for metrics and /config. */
  origin: string;
  /** Empty matches every request. */
  matches: readonly RequestMatch[];
  destinations: readonly RouteDestination[];
  timeoutMs?: number;
}

export interface FaultRule {
  origin: string;
  matches: readonly RequestMatch[];
  delay?: { ms: number; percent: number };
  abort?: { status: number; grpcStatus?: number; percent: number };
}

export function defaultServicePolicy(defaults: GatewayDefaults): ServicePolicy {
  return {
    timeoutMs: defaults.timeout,
    timeoutExplicit: false,
    retries: {
      attempts: defaults.retries.attempts,
      perTryTimeoutMs: defaults.retries.perTryTimeout,
      retryOn: new Set<RetryOn>(['connect-failure', 'reset', 'unavailable']),
      budgetPercent: defaults.retries.budgetPercent,
      minRetryConcurrency: defaults.retries.minRetryConcurrency,
    },
    connectionPool: {
      maxConnectionsPerPeer: defaults.connectionPool.maxConnectionsPerPeer,
      maxPendingRequests: defaults.connectionPool.maxPendingRequests,
      maxRequests: defaults.connectionPool.maxRequests,
      maxRequestsPerConnection: 0,
      dedicated: false,
    },
    outlierDetection: {
      consecutiveErrors: defaults.outlierDetection.consecutiveErrors,
      intervalMs: defaults.outlierDetection.interval,
      baseEjectionTimeMs: defaults.outlierDetection.baseEjectionTime,
      maxEjectionPercent: defaults.outlierDetection.maxEjectionPercent,
      dedicated: false,
    },
    failover: {
      overprovisioningFactor: defaults.failover.overprovisioningFactor,
      panicThreshold: defaults.failover.panicThreshold,
      regionOrder: [],
      distribute: undefined,
    },
    routes: [],
    faults: [],
    sources: ['defaults'],
  };
}
