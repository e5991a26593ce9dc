import { failure, type Outcome } from '../request/outcome.js';
import type { Handler, Layer } from '../request/pipeline.js';
import { endRequest, type RequestContext } from '../request/request.js';

/**
 * The overall timeout: until the response headers arrive, across retries. gRPC calls carry their
 * own deadline (grpc-timeout), which the upstream enforces; the default timeout does not apply to
 * them, so long-lived streams are not cut, but a policy timeout does. A RoutePolicy rule's timeout
 * replaces the service's for the requests it matches.
 */
export function timeoutLayer(): Layer<RequestContext> {
  return (next: Handler<RequestContext>) => (ctx) => {
    const policy = ctx.route?.policy ?? ctx.policy;
    const ruleTimeout = ctx.rule?.timeoutMs;
    const timeoutMs = ruleTimeout ?? policy.timeoutMs;
    if (timeoutMs === undefined || timeoutMs <= 0 || (ctx.grpc && ruleTimeout === undefined && !policy.timeoutExplicit)) return next(ctx);
    return withTimeout(ctx, next, timeoutMs);
  };
}

async function withTimeout(ctx: RequestContext, next: Handler<RequestContext>, timeoutMs: number): Promise<Outcome> {
  const timer = setTimeout(() => endRequest(ctx, 'timeout'), timeoutMs);
  try {
    const outcome = await next(ctx);
    if (ctx.ended === 'timeout') {
      if (outcome.kind === 'response') outcome.response.discard();
      return failure('timeout', `no response within ${timeoutMs}ms`, { cluster: ctx.cluster, retriable: false });
    }
    return outcome;
  } finally {
    clearTimeout(timer);
  }
}
