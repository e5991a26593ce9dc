import type { Logger } from '../../core/logger.js';
import { authorize, NO_AUTHORIZATION } from '../../policy/authorization.js';
import { failure, type Outcome } from '../request/outcome.js';
import type { GatewayMetrics } from '../request/request-metrics.js';
import type { ServiceAddress } from '../request/request.js';
import type { Handler } from '../request/pipeline.js';
import type { ControlView } from '../view/control-view.js';
import type { ExportedStream } from './inbound-stream.js';

export interface AuthorizationDeps {
  metrics: GatewayMetrics;
  log: Logger;
}

/** What authorization looks at: a request this gateway serves, or a TCP tunnel (method CONNECT, empty path). */
export interface AuthorizationRequest {
  readonly service: ServiceAddress;
  readonly caller: string;
  readonly sourceCluster: string;
  readonly method: string;
  readonly path: string;
}

/**
 * The authorization decision for a request this gateway serves, under the rules of `view`:
 * undefined to go on, or the 403 (`x-fedgate-reason: denied`, the deciding policy in
 * `x-fedgate-policy`). Decisions are logged at debug level and counted in
 * fedgate_authz_decisions_total. The same decision serves the inbound stage, requests a gateway
 * serves from its own cluster, and TCP tunnels.
 */
export function authorizationOutcome(deps: AuthorizationDeps, view: ControlView, request: AuthorizationRequest): Outcome | undefined {
  const service = request.service;
  const rules = view.authorization(service.namespace, service.name);
  if (rules === NO_AUTHORIZATION) return undefined;
  const decision = authorize(rules, { principal: request.caller, sourceCluster: request.sourceCluster, method: request.method, path: request.path, port: service.port });
  deps.metrics.count(deps.metrics.authorizations, { service: service.key, decision: decision.allowed ? 'allow' : 'deny', policy: decision.policy ?? '' });
  deps.log.debug({ service: service.key, caller: request.caller, cluster: request.sourceCluster, method: request.method, path: request.path, allowed: decision.allowed, reason: decision.reason }, 'authorization decision');
  return decision.allowed ? undefined : failure('denied', decision.reason, { ...(decision.policy ? { policy: decision.policy } : {}) });
}

/** The inbound authorization stage: the caller the identity stage verified, against the rules of the view. */
export function authorizeStage(deps: AuthorizationDeps): (next: Handler<ExportedStream>) => Handler<ExportedStream> {
  return (next) => (ctx) => {
    const denied = authorizationOutcome(deps, ctx.view, { service: ctx.service, caller: ctx.caller, sourceCluster: ctx.peer.cluster, method: ctx.method, path: ctx.path });
    return denied ? Promise.resolve(denied) : next(ctx);
  };
}
