import { counter, Registry } from '../../admin/metrics.js';
import { NO_TRAILERS, type Outcome } from '../request/outcome.js';
import { PassThrough } from 'node:stream';
import { circuitBreakerLayer, type CircuitBreakerInput } from './circuit-breaker.js';

function exchange(name: string, maxRequests: number): CircuitBreakerInput {
  return { request: { service: { namespace: 'default', name, port: 80, key: `default/${name}` } }, route: { policy: { connectionPool: { maxConnectionsPerPeer: 1, maxPendingRequests: 1, maxRequests, maxRequestsPerConnection: 0, dedicated: false } } } };
}

const ok: Outcome = { kind: 'response', response: { status: 200, headers: {}, body: new PassThrough(), trailers: NO_TRAILERS, cluster: 'a', discard: () => undefined } };

describe('circuitBreakerLayer', () => {
  it('refuses requests past maxRequests in flight per service with overflow, and admits again once one finishes', async () => {
    const registry = new Registry();
    const overflows = counter(registry, 'fedgate_overflow_total', 'overflows', ['service', 'limit']);
    const releases: Array<() => void> = [];
    let calls = 0;
    const handler = circuitBreakerLayer<CircuitBreakerInput>(overflows)(
      () =>
        new Promise<Outcome>((resolve) => {
          calls += 1;
          releases.push(() => resolve(ok));
        }),
    );
    const first = handler(exchange('payments', 2));
    const second = handler(exchange('payments', 2));
    const refused = await handler(exchange('payments', 2));
    expect(refused).toMatchObject({ kind: 'failure', failure: { code: 'overflow', retriable: false, message: 'circuit open: 2 requests in flight to payments.default (max 2)' } });
    expect(calls).toBe(2);
    // Another service has its own count.
    const other = handler(exchange('orders', 2));
    expect(calls).toBe(3);
    expect((await overflows.get()).values).toEqual([{ value: 1, labels: { service: 'default/payments', limit: 'max-requests' } }]);

    releases[0]?.();
    expect(await first).toBe(ok);
    const third = handler(exchange('payments', 2));
    expect(calls).toBe(4);
    for (const release of releases.slice(1)) release();
    await Promise.all([second, other, third]);
  });

  it('releases the slot when the next stage throws', async () => {
    const registry = new Registry();
    const overflows = counter(registry, 'fedgate_overflow_total', 'overflows', ['service', 'limit']);
    let fail = true;
    const handler = circuitBreakerLayer<CircuitBreakerInput>(overflows)(async () => {
      if (fail) throw new Error('bug below');
      return ok;
    });
    await expect(handler(exchange('payments', 1))).rejects.toThrow('bug below');
    fail = false;
    expect(await handler(exchange('payments', 1))).toBe(ok);
  });
});
