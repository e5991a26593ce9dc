import type { Clock } from '../../core/clock.js';
import { systemClock } from '../../core/clock.js';
import type { GatewayMetrics } from '../request/request-metrics.js';

/**
 * Times failovers: from the first failure seen at a cluster to the moment traffic has fully moved
 * away from it (its gateway failed its health checks, or outlier detection ejected it), counted
 * once per outage.
 */
export class FailoverTracker {
  private readonly firstFailure = new Map<string, number>();
  /** Clusters traffic has been moved away from, until they recover: one failover per outage. */
  private readonly failedOver = new Set<string>();

  constructor(
    private readonly metrics: Pick<GatewayMetrics, 'failovers' | 'failoverSeconds'>,
    private readonly clock: Clock = systemClock,
  ) {}

  failureSeen(cluster: string): void {
    if (!this.firstFailure.has(cluster)) this.firstFailure.set(cluster, this.clock.now());
  }

  /** Traffic has fully moved away from `cluster`: count it, and time it from the first failure seen. */
  movedAway(cluster: string, reason: 'health-check' | 'outlier-ejection'): void {
    if (this.failedOver.has(cluster)) return;
    this.failedOver.add(cluster);
    const now = this.clock.now();
    const first = this.firstFailure.get(cluster) ?? now;
    this.metrics.failovers.inc({ destination_cluster: cluster, reason });
    this.metrics.failoverSeconds.observe({ destination_cluster: cluster }, (now - first) / 1000);
    this.firstFailure.delete(cluster);
  }

  /** The cluster takes traffic again: its next outage is a new failover. */
  recovered(cluster: string): void {
    this.firstFailure.delete(cluster);
    this.failedOver.delete(cluster);
  }
}
