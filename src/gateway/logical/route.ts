import { anyRequestMatches, type RequestFacts } from '../../policy/match.js';
import type { RouteDestination, RouteRule, ServicePolicy } from '../../policy/service-policy.js';
import { failure, type Outcome } from '../request/outcome.js';
import type { Handler, Layer } from '../request/pipeline.js';
import type { GatewayMetrics } from '../request/request-metrics.js';
import type { RequestState, ServiceAddress } from '../request/request.js';
import type { RouteEntry, RoutingTable } from '../routing/routing-table.js';
import type { ControlView } from '../view/control-view.js';

/** What the route stage reads: the request's facts, and the service's RoutePolicy rules. */
export interface RouteInput {
  readonly request: RequestFacts & { readonly service: ServiceAddress };
  readonly route: { readonly policy: Pick<ServicePolicy, 'routes'> };
  readonly rule: RouteRule | undefined;
}

/**
 * Finds the RoutePolicy rule a request matches (the first, in order) before timeouts start, so a
 * rule's own timeout applies; the rule rides on in the exchange. Requests no rule matches are
 * balanced as if there were no RoutePolicy.
 */
export function routeLayer<C extends RouteInput>(metrics: GatewayMetrics): Layer<C> {
  return (next: Handler<C>) => (ctx) => {
    const routes = ctx.route.policy.routes;
    if (routes.length > 0) {
      for (const rule of routes) {
        if (anyRequestMatches(rule.matches, ctx.request)) {
          metrics.count(metrics.routeSelections, { service: ctx.request.service.key, route: rule.name, policy: rule.origin });
          return next({ ...ctx, rule });
        }
      }
    }
    return next(ctx);
  };
}

function weightedOrder(destinations: readonly RouteDestination[], random: () => number): RouteDestination[] {
  const live = destinations.filter((d) => d.weight > 0);
  const total = live.reduce((sum, d) => sum + d.weight, 0);
  let roll = random() * total;
  let chosen = live[live.length - 1];
  for (const d of live) {
    roll -= d.weight;
    if (roll < 0) {
      chosen = d;
      break;
    }
  }
  if (!chosen) return [];
  // The chosen destination first; when none of its clusters can take the request, the others by weight.
  return [chosen, ...live.filter((d) => d !== chosen).sort((a, b) => b.weight - a.weight)];
}

function describe(d: RouteDestination): string {
  return d.cluster !== undefined ? `cluster ${d.cluster}` : `clusters labelled ${Object.entries(d.clusterLabels ?? {}).map(([k, v]) => `${k}=${v}`).join(',')}`;
}

/** What choosing a route destination reads. */
export interface DestinationInput {
  readonly view: ControlView;
  readonly route: RouteEntry;
  readonly rule: RouteRule | undefined;
  readonly state: Pick<RequestState, 'tried'>;
}

/**
 * The destination choice of a matched route: a weighted pick among its destinations, then locality
 * and health among the destination's clusters. A destination whose clusters are all down or
 * already tried gives way to the rule's other destinations; one that names no cluster exporting
 * the service is a configuration problem and is reported as such, never silently rerouted.
 * Undefined when no rule matched (the route's own picker decides).
 */
export function routeChooser(table: RoutingTable, random: () => number = Math.random): (ctx: DestinationInput) => string | Outcome | undefined {
  return ({ view, route, rule, state }) => {
    if (!rule) return undefined;
    const order = weightedOrder(rule.destinations, random);
    const first = order[0];
    if (!first) return failure('no-healthy-upstream', `route ${rule.name} of ${rule.origin} has no destination with weight above 0`);
    const firstSubset = table.destination(view, route, first);
    if (firstSubset.clusters.length === 0) {
      return failure('no-route', `route ${rule.name} of ${rule.origin}: no ${describe(first)} exports ${route.name}.${route.namespace} at port ${route.port.port}`);
    }
    const exclude = state.tried.size > 0 ? { exclude: state.tried } : undefined;
    for (const destination of order) {
      const pick = table.destination(view, route, destination).picker.pick(exclude);
      if (pick.type === 'complete') return pick.cluster;
    }
    if (exclude) {
      // Every cluster of the route was tried: a retry may go back to one.
      for (const destination of order) {
        const pick = table.destination(view, route, destination).picker.pick();
        if (pick.type === 'complete') return pick.cluster;
      }
    }
    return failure('no-healthy-upstream', `route ${rule.name} of ${rule.origin}: no healthy cluster among ${order.map(describe).join('; ')}`);
  };
}
