import type { Logger } from '../../core/logger.js';
import type { GatewayMetrics } from '../request/request-metrics.js';
import type { ControlView, ControlViewPublisher } from '../view/control-view.js';
import type { FailoverTracker } from './failover-tracker.js';
import { healthCheckConfig, type HealthChecker } from './health-checker.js';
import type { OutlierRegistry } from './outlier-registry.js';

/**
 * How the health of peer gateways reaches the rest: a peer that fails its checks leaves the view
 * (and its failover is timed); one that comes back ends every ejection of it; one that answers a
 * check lifts the ejections that transport failures caused (failback driven by health). The
 * checker follows the view: its peers are the catalog's clusters, its settings the defaults.
 */
export function connectPeerHealth(parts: { health: HealthChecker; outliers: OutlierRegistry; failovers: FailoverTracker; views: ControlViewPublisher; metrics: GatewayMetrics; log: Logger }): void {
  const { health, outliers, failovers, views, metrics, log } = parts;
  health.onChange((peer, alive, reason) => {
    metrics.upstreamHealthy.set({ destination_cluster: peer }, alive ? 1 : 0);
    if (alive) {
      failovers.recovered(peer);
      outliers.unejectAll(peer);
    } else {
      failovers.movedAway(peer, 'health-check');
      log.warn({ cluster: peer, reason }, 'traffic moved away from an unhealthy cluster');
    }
    views.update({ unhealthy: health.unhealthy() });
  });
  health.onPass((peer) => {
    if (outliers.gatewayPassedCheck(peer)) log.info({ cluster: peer }, 'ejection lifted: the peer gateway passed its health check');
  });
  outliers.onEjection((cluster, _service, ejected) => {
    if (ejected) metrics.failovers.inc({ destination_cluster: cluster, reason: 'outlier-ejection' });
  });
  views.watch((view: ControlView, previous: ControlView) => {
    if (view.catalog !== previous.catalog) {
      const peers = [...view.catalog.clusters.values()].filter((c) => c.name !== view.local.cluster && c.state !== 'left').map((c) => c.name);
      health.setPeers(peers);
      for (const peer of peers) metrics.upstreamHealthy.set({ destination_cluster: peer }, health.isAlive(peer) ? 1 : 0);
    }
    if (view.defaults !== previous.defaults) health.configure(healthCheckConfig(view.defaults));
  });
}
