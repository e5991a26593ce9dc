import type { RouteRule } from '../../policy/service-policy.js';
import type { Request, RequestState } from '../request/request.js';
import type { RouteEntry } from '../routing/routing-table.js';
import type { ControlView } from '../view/control-view.js';

/**
 * A request on the outbound side once the server stage resolved its service: the view it started
 * under, the request itself, its route and (once the route stage ran) the RoutePolicy rule it
 * matched, and its state. Immutable: a stage that adds something passes on a new exchange.
 */
export interface OutboundExchange {
  readonly view: ControlView;
  readonly request: Request;
  readonly route: RouteEntry;
  readonly rule: RouteRule | undefined;
  readonly state: RequestState;
}
