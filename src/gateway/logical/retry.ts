import type { Counter } from '../../admin/metrics.js';
import type { RetryOn, ServicePolicy } from '../../policy/service-policy.js';
import { failure, type Outcome } from '../request/outcome.js';
import type { Handler, Layer } from '../request/pipeline.js';
import { canResend, type BodyFacts } from '../request/request-body.js';
import type { RequestState, ServiceAddress } from '../request/request.js';

/** Envoy-style retry budget: retries in flight may not exceed a share of the requests in flight. */
export class RetryBudget {
  active = 0;
  retrying = 0;

  allows(percent: number, minimum: number): boolean {
    return this.retrying < Math.max(minimum, Math.floor((this.active * percent) / 100));
  }
}

/** What retrying reads: the request (service, gRPC, body), the service's retry policy, and the request's state. */
export interface RetryInput {
  readonly request: BodyFacts & { readonly service: ServiceAddress };
  readonly route: { readonly policy: Pick<ServicePolicy, 'retries'> };
  readonly state: Pick<RequestState, 'ended' | 'attempts' | 'bodyStarted' | 'bodyRecording' | 'abortAttempt'>;
}

function shouldRetry(outcome: Outcome, retryOn: ReadonlySet<RetryOn>, ctx: RetryInput): boolean {
  if (outcome.kind === 'failure') {
    const f = outcome.failure;
    if (!f.retriable) return false;
    if (f.code === 'connect-failed') return retryOn.has('connect-failure') || retryOn.has('gateway-error') || retryOn.has('5xx');
    if (f.code === 'upstream-reset') return retryOn.has('reset') || retryOn.has('gateway-error') || retryOn.has('5xx');
    if (f.code === 'no-healthy-upstream') return true;
    if (f.code === 'timeout') return retryOn.has('gateway-error') || retryOn.has('5xx') || retryOn.has('reset');
    return false;
  }
  // A response can only be replaced while the request is replayable: no body, none sent yet, or
  // a recorded one.
  if (!canResend(ctx.request, ctx.state)) return false;
  const status = outcome.response.status;
  if (status === 503) return retryOn.has('unavailable') || retryOn.has('5xx') || retryOn.has('gateway-error');
  if (status === 502 || status === 504) return retryOn.has('gateway-error') || retryOn.has('5xx');
  if (status >= 500) return retryOn.has('5xx');
  if (status === 409 || status === 429) return retryOn.has('retriable-4xx');
  if (ctx.request.grpc && status === 200) {
    const grpcStatus = outcome.response.headers['grpc-status'];
    // UNAVAILABLE in a trailers-only response: the call never reached the application.
    return grpcStatus === '14' && (retryOn.has('unavailable') || retryOn.has('5xx'));
  }
  return false;
}

/**
 * Retries on a different cluster: the balance stage excludes every cluster already tried. A
 * request whose body already went upstream is retried only if it failed before reaching the
 * application (refused stream, connect failure) or its whole body was recorded; per-try timeouts
 * bound each attempt. Retries of requests that reached an upstream are bounded by a retry budget.
 */
export function retryLayer<C extends RetryInput>(budgets: (key: string) => RetryBudget, retries: Counter<'service' | 'reason'>): Layer<C> {
  return (next: Handler<C>) => async (ctx) => {
    const policy = ctx.route.policy.retries;
    const key = ctx.request.service.key;
    const budget = budgets(key);
    budget.active += 1;
    let retrying = false;
    try {
      for (;;) {
        const outcome = await attempt(ctx, next, policy.perTryTimeoutMs);
        if (retrying) {
          budget.retrying -= 1;
          retrying = false;
        }
        if (ctx.state.attempts > policy.attempts || ctx.state.ended !== undefined) return outcome;
        if (!shouldRetry(outcome, policy.retryOn, ctx)) return outcome;
        // The budget guards against retry storms on a struggling upstream. A request that never
        // reached one (connect failure, refused stream), or whose peer gateway connection died
        // under it (the peer crashed), adds no load to a struggling upstream by being retried on
        // another cluster: it is exempt, which is what lets a whole burst fail over when a cluster
        // dies at once. Each request still retries at most `attempts` times.
        const reachedUpstream = !(outcome.kind === 'failure' && (outcome.failure.code === 'connect-failed' || outcome.failure.peerLost === true));
        if (reachedUpstream && !budget.allows(policy.budgetPercent, policy.minRetryConcurrency)) return outcome;
        if (outcome.kind === 'response') outcome.response.discard();
        retries.inc({ service: key, reason: outcome.kind === 'failure' ? outcome.failure.code : `status-${outcome.response.status}` });
        budget.retrying += 1;
        retrying = true;
        ctx.state.attempts += 1;
      }
    } finally {
      if (retrying) budget.retrying -= 1;
      budget.active -= 1;
    }
  };
}

/** One attempt, bounded by the per-try timeout when there is one. */
function attempt<C extends RetryInput>(ctx: C, next: Handler<C>, perTryMs: number | undefined): Promise<Outcome> {
  if (perTryMs === undefined || perTryMs <= 0) return next(ctx);
  return attemptWithin(ctx, next, perTryMs);
}

async function attemptWithin<C extends RetryInput>(ctx: C, next: Handler<C>, perTryMs: number): Promise<Outcome> {
  let expired = false;
  const timer = setTimeout(() => {
    expired = true;
    ctx.state.abortAttempt('timeout');
  }, perTryMs);
  try {
    const outcome = await next(ctx);
    if (!expired || ctx.state.ended !== undefined) return outcome;
    const cluster = outcome.kind === 'response' ? outcome.response.cluster : outcome.failure.cluster;
    if (outcome.kind === 'response') outcome.response.discard();
    // A per-try timeout leaves the overall deadline running: worth another cluster if replayable.
    return failure('timeout', `no response within the per-try timeout of ${perTryMs}ms`, { ...(cluster ? { cluster } : {}), retriable: canResend(ctx.request, ctx.state) });
  } finally {
    clearTimeout(timer);
  }
}
