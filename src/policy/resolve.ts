/**
 * What a compiled policy set means for one service on one gateway.
 *
 * Precedence between documents of one kind that select the same service on the same cluster: the
 * more specific wins. Naming the service beats covering its whole namespace; within each, naming
 * the cluster beats covering every cluster. Between two documents equally specific, the one whose
 * name sorts first wins (and `policy validate` warns about the overlap).
 *
 * - TrafficPolicy and FailoverPolicy merge field by field: each field comes from the most specific
 *   document that sets it, then from the federation defaults.
 * - RoutePolicy and FaultPolicy apply whole: the most specific one, alone.
 * - AuthorizationPolicy documents all apply (see authorization.ts).
 */
import type { GatewayDefaults } from '../config/federation-config.js';
import type { AuthorizationRules, AuthorizationPolicyRef } from './authorization.js';
import { NO_AUTHORIZATION } from './authorization.js';
import type { CompiledPolicy, CompiledPolicySet } from './compile.js';
import { compileRequestMatch } from './match.js';
import { defaultServicePolicy, type FaultRule, type RetryOn, type RouteRule, type ServicePolicy } from './service-policy.js';

/** The gateway a policy is resolved for. */
export interface GatewayScope {
  cluster: string;
  region: string;
}

type Of<K extends CompiledPolicy['kind']> = Extract<CompiledPolicy, { kind: K }>;

/** Higher is more specific. */
function specificity(p: CompiledPolicy): number {
  return (p.service !== undefined ? 2 : 0) + (p.clusters !== undefined ? 1 : 0);
}

/** Lowest precedence first, so applying them in order lets the winner write last. */
function byPrecedence(a: CompiledPolicy, b: CompiledPolicy): number {
  return specificity(a) - specificity(b) || b.name.localeCompare(a.name);
}

export function appliesOnCluster(p: CompiledPolicy, cluster: string): boolean {
  return p.clusters === undefined || p.clusters.includes(cluster);
}

export class PolicyIndex {
  static readonly EMPTY = new PolicyIndex({ policies: [] });

  private readonly byNamespace = new Map<string, CompiledPolicy[]>();

  constructor(readonly set: CompiledPolicySet) {
    for (const p of set.policies) {
      const list = this.byNamespace.get(p.namespace) ?? [];
      list.push(p);
      this.byNamespace.set(p.namespace, list);
    }
    for (const list of this.byNamespace.values()) list.sort(byPrecedence);
  }

  /** The documents of one kind in force for a service on a cluster, lowest precedence first. */
  selecting<K extends CompiledPolicy['kind']>(kind: K, namespace: string, name: string, cluster: string): Array<Of<K>> {
    const out: Array<Of<K>> = [];
    for (const p of this.byNamespace.get(namespace) ?? []) {
      if (p.kind === kind && (p.service === undefined || p.service === name) && appliesOnCluster(p, cluster)) out.push(p as Of<K>);
    }
    return out;
  }

  /** Every document a gateway of `cluster` applies to some service. */
  onCluster(cluster: string): CompiledPolicy[] {
    return this.set.policies.filter((p) => appliesOnCluster(p, cluster));
  }

  servicePolicy(defaults: GatewayDefaults, namespace: string, name: string, scope: GatewayScope): ServicePolicy {
    const base = defaultServicePolicy(defaults);
    const sources = ['defaults'];
    const retries = { ...base.retries };
    const connectionPool = { ...base.connectionPool };
    const outlierDetection = { ...base.outlierDetection };
    const failover = { ...base.failover };
    let timeoutMs = base.timeoutMs;
    let timeoutExplicit = false;

    for (const p of this.selecting('TrafficPolicy', namespace, name, scope.cluster)) {
      const s = p.spec;
      sources.push(p.origin);
      if (s.timeout !== undefined) {
        timeoutMs = s.timeout;
        timeoutExplicit = true;
      }
      if (s.retries) {
        retries.attempts = s.retries.attempts;
        if (s.retries.perTryTimeout !== undefined) retries.perTryTimeoutMs = s.retries.perTryTimeout;
        if (s.retries.retryOn) retries.retryOn = new Set<RetryOn>(s.retries.retryOn);
      }
      const pool = s.connectionPool;
      if (pool) {
        if (pool.maxConnections !== undefined) connectionPool.maxConnectionsPerPeer = pool.maxConnections;
        if (pool.maxPendingRequests !== undefined) connectionPool.maxPendingRequests = pool.maxPendingRequests;
        if (pool.maxRequests !== undefined) connectionPool.maxRequests = pool.maxRequests;
        if (pool.maxRequestsPerConnection !== undefined) connectionPool.maxRequestsPerConnection = pool.maxRequestsPerConnection;
        if (pool.maxConnections !== undefined || pool.maxRequestsPerConnection !== undefined || pool.maxPendingRequests !== undefined) connectionPool.dedicated = true;
      }
      const od = s.outlierDetection;
      if (od) {
        if (od.consecutiveErrors !== undefined) outlierDetection.consecutiveErrors = od.consecutiveErrors;
        if (od.interval !== undefined) outlierDetection.intervalMs = od.interval;
        if (od.baseEjectionTime !== undefined) outlierDetection.baseEjectionTimeMs = od.baseEjectionTime;
        if (od.maxEjectionPercent !== undefined) outlierDetection.maxEjectionPercent = od.maxEjectionPercent;
        outlierDetection.dedicated = true;
      }
    }

    for (const p of this.selecting('FailoverPolicy', namespace, name, scope.cluster)) {
      const s = p.spec;
      sources.push(p.origin);
      const order = s.failover?.find((f) => f.from === scope.region);
      if (order) failover.regionOrder = order.to;
      const shares = s.distribute?.find((d) => d.from === scope.region);
      if (shares) failover.distribute = new Map(Object.entries(shares.to));
      if (s.overprovisioningFactor !== undefined) failover.overprovisioningFactor = s.overprovisioningFactor;
      if (s.panicThreshold !== undefined) failover.panicThreshold = s.panicThreshold;
    }

    const route = this.selecting('RoutePolicy', namespace, name, scope.cluster).at(-1);
    const routes: RouteRule[] = route
      ? route.spec.routes.map((r) => ({
          name: r.name,
          origin: route.origin,
          matches: r.match.map(compileRequestMatch),
          destinations: r.destinations.map((d) => ({ ...(d.cluster !== undefined ? { cluster: d.cluster } : {}), ...(d.labels !== undefined ? { clusterLabels: d.labels } : {}), weight: d.weight ?? 100 })),
          ...(r.timeout !== undefined ? { timeoutMs: r.timeout } : {}),
        }))
      : [];
    if (route) sources.push(route.origin);

    const fault = this.selecting('FaultPolicy', namespace, name, scope.cluster).at(-1);
    const faults: FaultRule[] = fault
      ? fault.spec.faults.map((f) => ({
          origin: fault.origin,
          matches: f.match.map(compileRequestMatch),
          ...(f.delay ? { delay: { ms: f.delay.fixedDelay, percent: f.delay.percentage } } : {}),
          ...(f.abort ? { abort: { status: f.abort.httpStatus, ...(f.abort.grpcStatus !== undefined ? { grpcStatus: f.abort.grpcStatus } : {}), percent: f.abort.percentage } } : {}),
        }))
      : [];
    if (fault) sources.push(fault.origin);

    return { timeoutMs, timeoutExplicit, retries, connectionPool, outlierDetection, failover, routes, faults, sources };
  }

  /** Authorization for a service at the gateway of `cluster` (which serves it). */
  authorization(namespace: string, name: string, cluster: string): AuthorizationRules {
    const all = this.selecting('AuthorizationPolicy', namespace, name, cluster);
    if (all.length === 0) return NO_AUTHORIZATION;
    // Most specific first: the policy named in a decision is the one an operator would look at.
    const ordered = [...all].reverse();
    const ref = (p: Of<'AuthorizationPolicy'>): AuthorizationPolicyRef => ({ origin: p.origin, spec: p.spec });
    return {
      deny: ordered.filter((p) => p.spec.action === 'DENY').map(ref),
      allow: ordered.filter((p) => p.spec.action === 'ALLOW').map(ref),
    };
  }
}
