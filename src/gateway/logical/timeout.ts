import type { RouteRule, ServicePolicy } from '../../policy/service-policy.js';
import { failure, type Outcome } from '../request/outcome.js';
import type { Handler, Layer } from '../request/pipeline.js';
import type { RequestState } from '../request/request.js';

/** What the overall timeout reads: gRPC or not, the service's timeout, the matched rule's, and the request's state. */
export interface TimeoutInput {
  readonly request: { readonly grpc: boolean };
  readonly route: { readonly policy: Pick<ServicePolicy, 'timeoutMs' | 'timeoutExplicit'> };
  readonly rule: Pick<RouteRule, 'timeoutMs'> | undefined;
  readonly state: Pick<RequestState, 'ended' | 'end'>;
}

/**
 * The overall timeout: until the response headers arrive, across retries. gRPC calls carry their
 * own deadline (grpc-timeout), which the upstream enforces; the default timeout does not apply to
 * them, so long-lived streams are not cut, but a policy timeout does. A RoutePolicy rule's timeout
 * replaces the service's for the requests it matches.
 */
export function timeoutLayer<C extends TimeoutInput>(): Layer<C> {
  return (next: Handler<C>) => (ctx) => {
    const policy = ctx.route.policy;
    const ruleTimeout = ctx.rule?.timeoutMs;
    const timeoutMs = ruleTimeout ?? policy.timeoutMs;
    if (timeoutMs === undefined || timeoutMs <= 0 || (ctx.request.grpc && ruleTimeout === undefined && !policy.timeoutExplicit)) return next(ctx);
    return withTimeout(ctx, next, timeoutMs);
  };
}

async function withTimeout<C extends TimeoutInput>(ctx: C, next: Handler<C>, timeoutMs: number): Promise<Outcome> {
  const timer = setTimeout(() => ctx.state.end('timeout'), timeoutMs);
  try {
    const outcome = await next(ctx);
    if (ctx.state.ended === 'timeout') {
      if (outcome.kind === 'response') outcome.response.discard();
      return failure('timeout', `no response within ${timeoutMs}ms`, { ...(outcome.kind === 'response' ? { cluster: outcome.response.cluster } : outcome.failure.cluster ? { cluster: outcome.failure.cluster } : {}), retriable: false });
    }
    return outcome;
  } finally {
    clearTimeout(timer);
  }
}
