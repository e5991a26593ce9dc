import { failure, type Outcome } from '../request/outcome.js';
import type { Handler } from '../request/pipeline.js';
import type { Attempt } from '../request/request.js';
import type { OutboundExchange } from '../logical/outbound-exchange.js';

export interface BalanceTargets {
  /** Forwards one attempt to the chosen cluster (this one's own endpoints, or a peer gateway). */
  forward: (exchange: OutboundExchange, attempt: Attempt) => Promise<Outcome> | Outcome;
  /** Called with every attempt's outcome (outlier detection, failover timing). */
  observe: (exchange: OutboundExchange, cluster: string, outcome: Outcome) => void;
  /** Overrides locality balancing (route rules, traffic split); undefined to use the picker. */
  choose?: (exchange: OutboundExchange) => string | Outcome | undefined;
}

/**
 * The concrete stage: picks a cluster for one attempt (one not tried yet when there is one; a
 * matched route rule chooses first) and hands the attempt to the endpoint stage.
 */
export function balanceAndForward(targets: BalanceTargets): Handler<OutboundExchange> {
  return async (exchange) => {
    const { route, state } = exchange;
    let cluster: string;
    const chosen = targets.choose?.(exchange);
    if (typeof chosen === 'string') {
      cluster = chosen;
    } else if (chosen !== undefined) {
      return chosen;
    } else {
      let pick = route.picker.pick(state.tried.size > 0 ? { exclude: state.tried } : undefined);
      // A retry prefers another cluster; with every one tried, the same cluster beats giving up.
      if (pick.type !== 'complete' && state.tried.size > 0) pick = route.picker.pick();
      if (pick.type !== 'complete') return failure('no-healthy-upstream', `${route.name}.${route.namespace}: ${pick.reason}`, { retriable: false });
      cluster = pick.cluster;
    }
    const attempt: Attempt = { cluster, redial: state.tried.has(cluster) };
    state.tried.add(cluster);
    const outcome = await targets.forward(exchange, attempt);
    targets.observe(exchange, cluster, outcome);
    return outcome;
  };
}
