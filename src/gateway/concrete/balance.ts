import { failure, type Outcome } from '../request/outcome.js';
import type { Handler } from '../request/pipeline.js';
import type { RequestContext } from '../request/request.js';
import type { RouteEntry } from '../routing/routing-table.js';

export interface BalanceTargets {
  localCluster: string;
  /** Forwards to this cluster's own endpoints. */
  local: (ctx: RequestContext, route: RouteEntry) => Promise<Outcome> | Outcome;
  /** Forwards to a remote cluster's gateway. */
  remote: (ctx: RequestContext, route: RouteEntry, cluster: string) => Promise<Outcome> | Outcome;
  /** Called with every attempt's outcome (outlier detection, failover timing). */
  observe: (ctx: RequestContext, cluster: string, outcome: Outcome) => void;
  /** Overrides locality balancing (route rules, traffic split); undefined to use the picker. */
  choose?: (ctx: RequestContext, route: RouteEntry) => string | Outcome | undefined;
}

/** The outbound terminal: pick a cluster (one not tried yet when there is one) and forward to it. */
export function balanceAndForward(targets: BalanceTargets): Handler<RequestContext> {
  return async (ctx) => {
    const route = ctx.route as RouteEntry;
    let cluster: string;
    const chosen = targets.choose?.(ctx, route);
    if (typeof chosen === 'string') {
      cluster = chosen;
    } else if (chosen !== undefined) {
      return chosen;
    } else {
      let pick = route.picker.pick(ctx.tried.size > 0 ? { exclude: ctx.tried } : undefined);
      // A retry prefers another cluster; with every one tried, the same cluster beats giving up.
      if (pick.type !== 'complete' && ctx.tried.size > 0) pick = route.picker.pick();
      if (pick.type !== 'complete') return failure('no-healthy-upstream', `${route.name}.${route.namespace}: ${pick.reason}`, { retriable: false });
      cluster = pick.cluster;
    }
    ctx.cluster = cluster;
    ctx.redial = ctx.tried.has(cluster);
    ctx.tried.add(cluster);
    const outcome = await (cluster === targets.localCluster ? targets.local(ctx, route) : targets.remote(ctx, route, cluster));
    targets.observe(ctx, cluster, outcome);
    return outcome;
  };
}
