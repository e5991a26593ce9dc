import { jest } from '@jest/globals';
import { PassThrough } from 'node:stream';
import { Registry } from '../../admin/metrics.js';
import type { FaultRule } from '../../policy/service-policy.js';
import { NO_TRAILERS, type Outcome } from '../request/outcome.js';
import { GatewayMetrics } from '../request/request-metrics.js';
import { RequestState } from '../request/request.js';
import { faultLayer, type FaultInput } from './fault.js';

interface Ctx extends FaultInput {
  readonly state: RequestState;
}

function exchange(faults: FaultRule[], path = '/pay', headers: Record<string, string> = {}): Ctx {
  return {
    request: { method: 'GET', path, headers, service: { namespace: 'default', name: 'payments', port: 80, key: 'default/payments' } },
    route: { policy: { faults } },
    state: new RequestState(),
  };
}

const ok: Outcome = { kind: 'response', response: { status: 200, headers: {}, body: new PassThrough(), trailers: NO_TRAILERS, cluster: 'a', discard: () => undefined } };

function setup(): { metrics: GatewayMetrics; next: jest.Mock<(ctx: Ctx) => Promise<Outcome>> } {
  return { metrics: new GatewayMetrics(new Registry()), next: jest.fn(async () => ok) };
}

async function injected(metrics: GatewayMetrics, fault: string): Promise<number> {
  return (await metrics.faults.get()).values.filter((v) => v.labels.fault === fault).reduce((sum, v) => sum + v.value, 0);
}

/** A random source that returns these values in turn. */
function rolls(...values: number[]): () => number {
  let i = 0;
  return () => values[i++ % values.length] as number;
}

const abortAll: FaultRule = { origin: 'FaultPolicy default/chaos', matches: [], abort: { status: 503, percent: 100 } };

describe('faultLayer', () => {
  it('passes requests through when the service has no faults or none matches', async () => {
    const { metrics, next } = setup();
    const handler = faultLayer<Ctx>(metrics, () => 0)(next);
    expect(await handler(exchange([]))).toBe(ok);
    const onlyAdmin: FaultRule = { ...abortAll, matches: [{ headers: [], pathPrefix: '/admin' }] };
    expect(await handler(exchange([onlyAdmin], '/pay'))).toBe(ok);
    expect(next).toHaveBeenCalledTimes(2);
  });

  it('aborts with the rule’s status and gRPC status without calling the next stage, naming the policy', async () => {
    const { metrics, next } = setup();
    const rule: FaultRule = { origin: 'FaultPolicy default/chaos', matches: [], abort: { status: 500, grpcStatus: 14, percent: 100 } };
    const outcome = await faultLayer<Ctx>(metrics, () => 0.5)(next)(exchange([rule]));
    expect(outcome).toEqual({ kind: 'failure', failure: { code: 'fault-abort', message: 'aborted by FaultPolicy default/chaos', retriable: false, status: 500, grpcStatus: 14, policy: 'FaultPolicy default/chaos' } });
    expect(next).not.toHaveBeenCalled();
    expect(await injected(metrics, 'abort')).toBe(1);
  });

  it('aborts the share of requests its percentage names, by the random roll', async () => {
    const { metrics, next } = setup();
    const rule: FaultRule = { origin: 'p', matches: [], abort: { status: 503, percent: 30 } };
    // Rolls of 0.00 .. 0.99: exactly the 30 below 0.30 abort.
    const handler = faultLayer<Ctx>(metrics, rolls(...Array.from({ length: 100 }, (_, i) => i / 100)))(next);
    let aborted = 0;
    for (let i = 0; i < 100; i++) if ((await handler(exchange([rule]))).kind === 'failure') aborted += 1;
    expect(aborted).toBe(30);
    expect(next).toHaveBeenCalledTimes(70);
  });

  it('applies the first matching rule only', async () => {
    const { metrics, next } = setup();
    const first: FaultRule = { origin: 'first', matches: [{ headers: [{ name: 'x-chaos', exact: 'on' }] }], abort: { status: 418, percent: 100 } };
    const second: FaultRule = { origin: 'second', matches: [], abort: { status: 500, percent: 100 } };
    const handler = faultLayer<Ctx>(metrics, () => 0)(next);
    expect(await handler(exchange([first, second], '/', { 'x-chaos': 'on' }))).toMatchObject({ failure: { status: 418, policy: 'first' } });
    expect(await handler(exchange([first, second], '/'))).toMatchObject({ failure: { status: 500, policy: 'second' } });
  });

  describe('delay', () => {
    beforeEach(() => jest.useFakeTimers());
    afterEach(() => jest.useRealTimers());

    it('delays a request by the rule’s time, then forwards it', async () => {
      const { metrics, next } = setup();
      const rule: FaultRule = { origin: 'slow', matches: [], delay: { ms: 300, percent: 100 } };
      const pending = faultLayer<Ctx>(metrics, () => 0.99)(next)(exchange([rule]));
      await jest.advanceTimersByTimeAsync(299);
      expect(next).not.toHaveBeenCalled();
      await jest.advanceTimersByTimeAsync(1);
      expect(await pending).toBe(ok);
      expect(await injected(metrics, 'delay')).toBe(1);
    });

    it('rolls delay and abort independently', async () => {
      const { metrics, next } = setup();
      const rule: FaultRule = { origin: 'both', matches: [], delay: { ms: 100, percent: 50 }, abort: { status: 503, percent: 50 } };
      // Delay roll 0.6 (no delay), abort roll 0.1 (abort): aborted at once.
      expect(await faultLayer<Ctx>(metrics, rolls(0.6, 0.1))(next)(exchange([rule]))).toMatchObject({ kind: 'failure', failure: { code: 'fault-abort' } });
      expect(jest.getTimerCount()).toBe(0);
      // Delay roll 0.1 (delay), abort roll 0.6 (no abort): delayed, then forwarded.
      const pending = faultLayer<Ctx>(metrics, rolls(0.1, 0.6))(next)(exchange([rule]));
      await jest.advanceTimersByTimeAsync(100);
      expect(await pending).toBe(ok);
    });

    it('a request that ends during the delay is answered with why it ended and never forwarded', async () => {
      const { metrics, next } = setup();
      const rule: FaultRule = { origin: 'slow', matches: [], delay: { ms: 5000, percent: 100 } };
      for (const reason of ['timeout', 'client-closed'] as const) {
        const ctx = exchange([rule]);
        const pending = faultLayer<Ctx>(metrics, () => 0)(next)(ctx);
        await jest.advanceTimersByTimeAsync(10);
        ctx.state.end(reason);
        expect(await pending).toMatchObject({ kind: 'failure', failure: { code: reason, message: 'request ended during an injected delay of 5000ms' } });
        expect(jest.getTimerCount()).toBe(0);
      }
      expect(next).not.toHaveBeenCalled();
    });
  });
});
