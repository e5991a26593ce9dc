import type { FaultRule, ServicePolicy } from '../../policy/service-policy.js';
import { anyRequestMatches, type RequestFacts } from '../../policy/match.js';
import { failure, type Outcome } from '../request/outcome.js';
import type { Handler, Layer } from '../request/pipeline.js';
import type { GatewayMetrics } from '../request/request-metrics.js';
import type { RequestState, ServiceAddress } from '../request/request.js';

/** What fault injection reads: the request's facts, the service's FaultPolicy rules, and whether the request ended. */
export interface FaultInput {
  readonly request: RequestFacts & { readonly service: ServiceAddress };
  readonly route: { readonly policy: Pick<ServicePolicy, 'faults'> };
  readonly state: Pick<RequestState, 'ended' | 'onAbort' | 'clearAbort'>;
}

/** Waits `ms` unless the request ends first (client gone, overall timeout). */
function delay(state: FaultInput['state'], ms: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      state.clearAbort();
      resolve();
    }
    state.onAbort(done);
  });
}

/**
 * Fault injection on the calling side (as Istio does): the first FaultPolicy rule the request
 * matches may delay it and may abort it, each with its own percentage, rolled independently. An
 * aborted request never leaves the gateway, and is not retried.
 */
export function faultLayer<C extends FaultInput>(metrics: GatewayMetrics, random: () => number = Math.random): Layer<C> {
  return (next: Handler<C>) => (ctx) => {
    // Not async: most requests match no fault, and an async wrapper around next() costs extra ticks.
    const faults = ctx.route.policy.faults;
    if (faults.length === 0) return next(ctx);
    let fault: FaultRule | undefined;
    for (const f of faults) {
      if (anyRequestMatches(f.matches, ctx.request)) {
        fault = f;
        break;
      }
    }
    if (!fault) return next(ctx);
    return injectFault(ctx, fault, next, metrics, random);
  };
}

async function injectFault<C extends FaultInput>(ctx: C, fault: FaultRule, next: Handler<C>, metrics: GatewayMetrics, random: () => number): Promise<Outcome> {
  const service = ctx.request.service.key;
  if (fault.delay && random() * 100 < fault.delay.percent) {
    metrics.count(metrics.faults, { service, fault: 'delay', policy: fault.origin });
    await delay(ctx.state, fault.delay.ms);
    const ended = ctx.state.ended;
    if (ended !== undefined) return failure(ended === 'timeout' ? 'timeout' : 'client-closed', `request ended during an injected delay of ${fault.delay.ms}ms`);
  }
  if (fault.abort && random() * 100 < fault.abort.percent) {
    metrics.count(metrics.faults, { service, fault: 'abort', policy: fault.origin });
    return failure('fault-abort', `aborted by ${fault.origin}`, { status: fault.abort.status, ...(fault.abort.grpcStatus !== undefined ? { grpcStatus: fault.abort.grpcStatus } : {}), policy: fault.origin });
  }
  return next(ctx);
}
