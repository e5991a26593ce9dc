import { counter, gauge, histogram, HotCounter, HotHistogram, type Counter, type Gauge, type HotCounterSeries, type HotHistogramSeries, type Histogram, type Registry } from '../../admin/metrics.js';

/**
 * The gateway's metrics. Label sets are cached per combination: prom-client resolves labels by
 * hashing on every call, which is measurable at tens of thousands of requests per second.
 */
export class GatewayMetrics {
  /** Per request: recorded without prom-client's per-call label hashing (see HotCounter). */
  readonly requests: HotCounter;
  readonly duration: HotHistogram;
  readonly upstreamHealthy: Gauge<'destination_cluster'>;
  readonly failovers: Counter<'destination_cluster' | 'reason'>;
  readonly failoverSeconds: Histogram<'destination_cluster'>;
  readonly retries: Counter<'service' | 'reason'>;
  readonly overflows: Counter<'service' | 'limit'>;
  readonly rejectedPeers: Counter<'reason'>;
  readonly tcpConnections: Counter<'service' | 'destination_cluster' | 'result'>;
  readonly authorizations: Counter<'service' | 'decision' | 'policy'>;
  readonly faults: Counter<'service' | 'fault' | 'policy'>;
  readonly routeSelections: Counter<'service' | 'route' | 'policy'>;
  readonly policyApplies: Counter<'result'>;
  readonly policyRevision: Gauge<'state'>;
  /** Refusals of a resource limit, by listener (inbound, outbound, outbound-h2c, peer, local-h2c) and limit. */
  readonly limitRefusals: Counter<'listener' | 'limit'>;
  private readonly requestChildren = new Map<string, { counter: HotCounterSeries; duration: HotHistogramSeries }>();
  private readonly counterChildren = new WeakMap<object, Map<string, { inc(): void }>>();

  constructor(registry: Registry) {
    this.requests = new HotCounter(registry, 'fedgate_requests_total', 'Requests handled, by source and destination cluster, service and response code');
    this.duration = new HotHistogram(registry, 'fedgate_request_duration_seconds', 'Time from request to response headers and body', [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]);
    this.upstreamHealthy = gauge(registry, 'fedgate_upstream_healthy', '1 while the remote gateway passes its active health checks', ['destination_cluster']);
    this.failovers = counter(registry, 'fedgate_failovers_total', 'Times traffic was moved away from a cluster', ['destination_cluster', 'reason']);
    this.failoverSeconds = histogram(registry, 'fedgate_failover_seconds', 'From the first failure seen at a cluster to traffic fully moved away from it', ['destination_cluster'], [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30]);
    this.retries = counter(registry, 'fedgate_retries_total', 'Retries, each to a different cluster', ['service', 'reason']);
    this.overflows = counter(registry, 'fedgate_overflow_total', 'Requests refused by circuit breaking', ['service', 'limit']);
    this.rejectedPeers = counter(registry, 'fedgate_inbound_rejected_peers_total', 'Inbound connections refused after the TLS handshake', ['reason']);
    this.tcpConnections = counter(registry, 'fedgate_tcp_connections_total', 'TCP tunnel connections', ['service', 'destination_cluster', 'result']);
    this.authorizations = counter(registry, 'fedgate_authz_decisions_total', 'Authorization decisions at the serving gateway (allow, deny), by deciding policy', ['service', 'decision', 'policy']);
    this.faults = counter(registry, 'fedgate_fault_injections_total', 'Faults injected by FaultPolicies (delay, abort)', ['service', 'fault', 'policy']);
    this.routeSelections = counter(registry, 'fedgate_route_selections_total', 'Requests routed by a RoutePolicy rule', ['service', 'route', 'policy']);
    this.policyApplies = counter(registry, 'fedgate_policy_applies_total', 'Policy sets received, by result (applied, rejected)', ['result']);
    this.policyRevision = gauge(registry, 'fedgate_policy_revision', 'Policy revision applied on this gateway, and the newest one received', ['state']);
    this.limitRefusals = counter(registry, 'fedgate_limit_refusals_total', 'Refusals of a resource limit (connections, HTTP/2 abuse, backpressure), by listener and limit', ['listener', 'limit']);
  }

  /** Counts one event, with the label set's child cached (policy counters run per request). */
  count<L extends string>(metric: Counter<L>, labels: Record<L, string>): void {
    let children = this.counterChildren.get(metric);
    if (!children) {
      children = new Map();
      this.counterChildren.set(metric, children);
    }
    const key = Object.values<string>(labels).join('|');
    let child = children.get(key);
    if (!child) {
      child = metric.labels(labels);
      children.set(key, child);
    }
    child.inc();
  }

  /** Counts one refusal of a resource limit (label sets are few and fixed: listener × kind). */
  limitRefused(listener: string, limit: string): void {
    this.count(this.limitRefusals, { listener, limit });
  }

  request(direction: string, source: string, destination: string, service: string, code: string, seconds: number): void {
    // One key per label combination, holding both children: a request costs one lookup.
    const key = `${direction}|${source}|${destination}|${service}|${code}`;
    let children = this.requestChildren.get(key);
    if (!children) {
      children = {
        counter: this.requests.labels({ direction, source_cluster: source, destination_cluster: destination, service, code }),
        duration: this.duration.labels({ direction, source_cluster: source, destination_cluster: destination, service }),
      };
      this.requestChildren.set(key, children);
    }
    children.counter.value += 1;
    children.duration.observe(seconds);
  }
}
