import type { Logger } from '../../core/logger.js';
import { balanceAndForward } from '../concrete/balance.js';
import type { LocalForwarder } from '../endpoint/local-forwarder.js';
import { forwardToPeer } from '../endpoint/remote-forwarder.js';
import { authorizationOutcome } from '../inbound/authorize.js';
import { failure, type Outcome } from '../request/outcome.js';
import { compose, type Handler } from '../request/pipeline.js';
import type { GatewayMetrics } from '../request/request-metrics.js';
import type { Attempt } from '../request/request.js';
import type { PoolRegistry } from '../registry/pool-registry.js';
import type { RoutingTable } from '../routing/routing-table.js';
import { circuitBreakerLayer } from './circuit-breaker.js';
import { faultLayer } from './fault.js';
import type { OutboundExchange } from './outbound-exchange.js';
import { RetryBudget, retryLayer } from './retry.js';
import { routeChooser, routeLayer } from './route.js';
import { timeoutLayer } from './timeout.js';

export interface OutboundStackDeps {
  localCluster: string;
  routing: RoutingTable;
  pools: PoolRegistry;
  forwarder: LocalForwarder;
  /** Every attempt's outcome, for outlier detection, health and failover timing. */
  observe: (exchange: OutboundExchange, cluster: string, outcome: Outcome) => void;
  metrics: GatewayMetrics;
  log: Logger;
}

/**
 * The outbound request path below the server stage: the logical stages (circuit breaking, route
 * rules, fault injection, the overall timeout, retries on another cluster), then the concrete
 * stage (the cluster for one attempt), then the endpoint (this cluster's own endpoints, or a peer
 * gateway over its pooled HTTP/2 connection).
 */
export function outboundStack(deps: OutboundStackDeps): Handler<OutboundExchange> {
  const budgets = new Map<string, RetryBudget>();
  const budget = (key: string): RetryBudget => {
    let found = budgets.get(key);
    if (!found) {
      found = new RetryBudget();
      budgets.set(key, found);
    }
    return found;
  };
  const forward = (exchange: OutboundExchange, attempt: Attempt): Promise<Outcome> | Outcome => {
    const { view, request, route, state } = exchange;
    if (attempt.cluster === deps.localCluster) {
      if (!route.localExport || !route.localPort) return failure('no-healthy-upstream', `${route.name}.${route.namespace} is not exported here`, { retriable: true });
      // Served here without an inbound hop: the same authorization as for other clusters' callers.
      return authorizationOutcome(deps, view, request) ?? deps.forwarder.forward(request, state, route.localExport, route.localPort, deps.localCluster);
    }
    const pool = deps.pools.pool(view, attempt.cluster, route.key, route.policy);
    if (!pool) return failure('connect-failed', `${attempt.cluster} is not in the catalog`, { cluster: attempt.cluster, retriable: true });
    return forwardToPeer(request, state, attempt, pool);
  };
  const terminal = balanceAndForward({ forward, observe: deps.observe, choose: routeChooser(deps.routing) });
  return compose<OutboundExchange>(
    [circuitBreakerLayer(deps.metrics.overflows), routeLayer(deps.metrics), faultLayer(deps.metrics), timeoutLayer(), retryLayer(budget, deps.metrics.retries)],
    terminal,
  );
}
