import type { FailureCause } from '../../balancer/outlier-detector.js';
import type { Outcome } from '../request/outcome.js';
import type { FailoverTracker } from './failover-tracker.js';
import type { HealthChecker } from './health-checker.js';
import type { OutlierRegistry } from './outlier-registry.js';

/** What an attempt's outcome says about the cluster it went to: undefined for a success, else the failure's cause. */
export function failureCause(outcome: Outcome): FailureCause | undefined {
  if (outcome.kind === 'failure') {
    const code = outcome.failure.code;
    if (code === 'connect-failed' || code === 'upstream-reset') return 'transport';
    return code === 'timeout' ? 'response' : undefined;
  }
  const status = outcome.response.status;
  return status === 502 || status === 503 || status === 504 ? 'response' : undefined;
}

/**
 * Feeds every attempt's outcome to what judges upstreams: the service's outlier detection, the
 * failover timer, and (for a connect failure to a peer) its health check, which then need not wait
 * for its next interval to count a miss.
 */
export function observeUpstream(parts: { localCluster: string; outliers: OutlierRegistry; health: HealthChecker; failovers: FailoverTracker }) {
  return (exchange: { readonly route: { readonly key: string; readonly targets: readonly unknown[] } }, cluster: string, outcome: Outcome): void => {
    const cause = failureCause(outcome);
    if (cause !== undefined) {
      parts.failovers.failureSeen(cluster);
      if (cluster !== parts.localCluster && outcome.kind === 'failure' && outcome.failure.code === 'connect-failed') parts.health.reportFailure(cluster, outcome.failure.message);
    }
    parts.outliers.record(exchange.route.key, cluster, cause, Math.max(1, exchange.route.targets.length));
  };
}
