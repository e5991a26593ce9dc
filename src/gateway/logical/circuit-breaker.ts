import type { Counter } from '../../admin/metrics.js';
import { failure } from '../request/outcome.js';
import type { Handler, Layer } from '../request/pipeline.js';
import type { RequestContext } from '../request/request.js';

/**
 * Circuit breaking on requests in flight per service: past `maxRequests`, new requests get a fast
 * 503 (`x-fedgate-reason: overflow`) instead of piling onto a struggling service. Pending requests
 * (waiting for a stream to a peer) and connections are bounded in the peer pool.
 */
export function circuitBreakerLayer(overflows: Counter<'service' | 'limit'>): Layer<RequestContext> {
  const inFlight = new Map<string, number>();
  return (next: Handler<RequestContext>) => async (ctx) => {
    const max = (ctx.route?.policy ?? ctx.policy).connectionPool.maxRequests;
    const key = ctx.service.key;
    const current = inFlight.get(key) ?? 0;
    if (current >= max) {
      overflows.inc({ service: key, limit: 'max-requests' });
      return failure('overflow', `circuit open: ${current} requests in flight to ${ctx.service.name}.${ctx.service.namespace} (max ${max})`);
    }
    inFlight.set(key, current + 1);
    try {
      return await next(ctx);
    } finally {
      inFlight.set(key, (inFlight.get(key) ?? 1) - 1);
    }
  };
}
