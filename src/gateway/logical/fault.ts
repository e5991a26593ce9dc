import type { FaultRule } from '../../policy/service-policy.js';
import { anyRequestMatches } from '../../policy/match.js';
import { failure, type Outcome } from '../request/outcome.js';
import type { Handler, Layer } from '../request/pipeline.js';
import type { RequestContext } from '../request/request.js';
import type { GatewayMetrics } from '../request/request-metrics.js';

/** Waits `ms` unless the request ends first (client gone, overall timeout). */
function delay(ctx: RequestContext, ms: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      ctx.abortAttempt = undefined;
      resolve();
    }
    ctx.abortAttempt = done;
  });
}

/**
 * Fault injection on the calling side (as Istio does): the first FaultPolicy rule the request
 * matches may delay it and may abort it, each with its own percentage, rolled independently. An
 * aborted request never leaves the gateway, and is not retried.
 */
export function faultLayer(metrics: GatewayMetrics, random: () => number = Math.random): Layer<RequestContext> {
  return (next: Handler<RequestContext>) => (ctx) => {
    // Not async: most requests match no fault, and an async wrapper around next() costs extra ticks.
    const faults = ctx.route?.policy.faults;
    if (!faults || faults.length === 0) return next(ctx);
    let fault: FaultRule | undefined;
    for (const f of faults) {
      if (anyRequestMatches(f.matches, ctx)) {
        fault = f;
        break;
      }
    }
    if (!fault) return next(ctx);
    return injectFault(ctx, fault, next, metrics, random);
  };
}

async function injectFault(ctx: RequestContext, fault: FaultRule, next: Handler<RequestContext>, metrics: GatewayMetrics, random: () => number): Promise<Outcome> {
  if (fault.delay && random() * 100 < fault.delay.percent) {
    metrics.count(metrics.faults, { service: ctx.service.key, fault: 'delay', policy: fault.origin });
    await delay(ctx, fault.delay.ms);
    if (ctx.ended !== undefined) return failure(ctx.ended === 'timeout' ? 'timeout' : 'client-closed', `request ended during an injected delay of ${fault.delay.ms}ms`);
  }
  if (fault.abort && random() * 100 < fault.abort.percent) {
    metrics.count(metrics.faults, { service: ctx.service.key, fault: 'abort', policy: fault.origin });
    return failure('fault-abort', `aborted by ${fault.origin}`, { status: fault.abort.status, ...(fault.abort.grpcStatus !== undefined ? { grpcStatus: fault.abort.grpcStatus } : {}), policy: fault.origin });
  }
  return next(ctx);
}
