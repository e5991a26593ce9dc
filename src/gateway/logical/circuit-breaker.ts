import type { Counter } from '../../admin/metrics.js';
import type { ServicePolicy } from '../../policy/service-policy.js';
import { failure } from '../request/outcome.js';
import type { Handler, Layer } from '../request/pipeline.js';
import type { ServiceAddress } from '../request/request.js';

/** What circuit breaking reads: the service, and its connection-pool policy. */
export interface CircuitBreakerInput {
  readonly request: { readonly service: ServiceAddress };
  readonly route: { readonly policy: Pick<ServicePolicy, 'connectionPool'> };
}

/**
 * Circuit breaking on requests in flight per service: past `maxRequests`, new requests get a fast
 * 503 (`x-fedgate-reason: overflow`) instead of piling onto a struggling service. Pending requests
 * (waiting for a stream to a peer) and connections are bounded in the peer pool.
 */
export function circuitBreakerLayer<C extends CircuitBreakerInput>(overflows: Counter<'service' | 'limit'>): Layer<C> {
  const inFlight = new Map<string, number>();
  return (next: Handler<C>) => async (ctx) => {
    const max = ctx.route.policy.connectionPool.maxRequests;
    const service = ctx.request.service;
    const key = service.key;
    const current = inFlight.get(key) ?? 0;
    if (current >= max) {
      overflows.inc({ service: key, limit: 'max-requests' });
      return failure('overflow', `circuit open: ${current} requests in flight to ${service.name}.${service.namespace} (max ${max})`);
    }
    inFlight.set(key, current + 1);
    try {
      return await next(ctx);
    } finally {
      inFlight.set(key, (inFlight.get(key) ?? 1) - 1);
    }
  };
}
