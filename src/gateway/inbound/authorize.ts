import type { Logger } from '../../core/logger.js';
import { authorize, NO_AUTHORIZATION, type AuthorizationRules } from '../../policy/authorization.js';
import { failure, type Outcome } from '../request/outcome.js';
import type { Handler, Layer } from '../request/pipeline.js';
import type { RequestContext } from '../request/request.js';
import type { GatewayMetrics } from '../request/request-metrics.js';

export interface AuthorizationDeps {
  /** The rules in force on this gateway for a service it serves. */
  rules: (namespace: string, name: string) => AuthorizationRules;
  metrics: GatewayMetrics;
  log: Logger;
}

/** What authorization looks at: a pipeline request, or a TCP tunnel (method CONNECT, empty path). */
export type AuthorizationRequest = Pick<RequestContext, 'service' | 'caller' | 'sourceCluster' | 'method' | 'path'>;

/**
 * The authorization decision for a request this gateway serves: undefined to go on, or the 403
 * (`x-fedgate-reason: denied`, the deciding policy in `x-fedgate-policy`). Decisions are logged
 * at debug level and counted in fedgate_authz_decisions_total.
 */
export function authorizationOutcome(deps: AuthorizationDeps, ctx: AuthorizationRequest): Outcome | undefined {
  const rules = deps.rules(ctx.service.namespace, ctx.service.name);
  if (rules === NO_AUTHORIZATION) return undefined;
  const decision = authorize(rules, { principal: ctx.caller, sourceCluster: ctx.sourceCluster, method: ctx.method, path: ctx.path, port: ctx.service.port });
  deps.metrics.count(deps.metrics.authorizations, { service: ctx.service.key, decision: decision.allowed ? 'allow' : 'deny', policy: decision.policy ?? '' });
  deps.log.debug({ service: ctx.service.key, caller: ctx.caller, cluster: ctx.sourceCluster, method: ctx.method, path: ctx.path, allowed: decision.allowed, reason: decision.reason }, 'authorization decision');
  return decision.allowed ? undefined : failure('denied', decision.reason, { ...(decision.policy ? { policy: decision.policy } : {}) });
}

export function authorizeLayer(deps: AuthorizationDeps): Layer<RequestContext> {
  return (next: Handler<RequestContext>) => (ctx) => authorizationOutcomeAsync(deps, ctx) ?? next(ctx);
}

function authorizationOutcomeAsync(deps: AuthorizationDeps, ctx: RequestContext): Promise<Outcome> | undefined {
  const outcome = authorizationOutcome(deps, ctx);
  return outcome ? Promise.resolve(outcome) : undefined;
}
