import { jest } from '@jest/globals';
import { PassThrough } from 'node:stream';
import { counter, Registry } from '../../admin/metrics.js';
import type { RetryOn } from '../../policy/service-policy.js';
import { failure, NO_TRAILERS, type Outcome } from '../request/outcome.js';
import { RequestState } from '../request/request.js';
import { BodyRecording } from '../request/request-body.js';
import { RetryBudget, retryLayer, type RetryInput } from './retry.js';

interface Ctx extends RetryInput {
  readonly state: RequestState;
}

function policy(over: Partial<RetryInput['route']['policy']['retries']> = {}): RetryInput['route']['policy']['retries'] {
  return { attempts: 2, perTryTimeoutMs: undefined, retryOn: new Set<RetryOn>(['connect-failure', 'reset', 'unavailable']), budgetPercent: 20, minRetryConcurrency: 3, ...over };
}

function exchange(retries = policy(), request: Partial<RetryInput['request']> = {}): Ctx {
  return {
    request: { body: null, grpc: false, idempotent: true, service: { namespace: 'default', name: 'payments', port: 8080, key: 'default/payments' }, ...request },
    route: { policy: { retries } },
    state: new RequestState(),
  };
}

function response(status: number, cluster: string, headers: Record<string, string> = {}): Outcome & { kind: 'response' } {
  return { kind: 'response', response: { status, headers, body: new PassThrough(), trailers: NO_TRAILERS, cluster, discard: jest.fn() } };
}

/** The fake next stage: answers each attempt with the next scripted outcome, recording the attempt numbers. */
function scripted(outcomes: Array<Outcome | (() => Promise<Outcome>)>): { next: (ctx: Ctx) => Promise<Outcome>; calls: number[] } {
  const calls: number[] = [];
  const next = async (ctx: Ctx): Promise<Outcome> => {
    calls.push(ctx.state.attempts);
    const o = outcomes[calls.length - 1];
    if (o === undefined) throw new Error(`unexpected attempt ${calls.length}`);
    return typeof o === 'function' ? o() : o;
  };
  return { next, calls };
}

function setup(): { retries: ReturnType<typeof counter<'service' | 'reason'>>; budgets: Map<string, RetryBudget>; budget: (key: string) => RetryBudget } {
  const registry = new Registry();
  const budgets = new Map<string, RetryBudget>();
  return {
    retries: counter(registry, 'fedgate_retries_total', 'retries', ['service', 'reason']),
    budgets,
    budget: (key) => {
      let b = budgets.get(key);
      if (!b) budgets.set(key, (b = new RetryBudget()));
      return b;
    },
  };
}

async function retryCount(retries: ReturnType<typeof counter<'service' | 'reason'>>, reason: string): Promise<number> {
  const metric = await retries.get();
  return metric.values.find((v) => v.labels.reason === reason)?.value ?? 0;
}

describe('retryLayer', () => {
  it('retries a connect failure and returns the next attempt’s response, counting the retry by reason', async () => {
    const { retries, budget } = setup();
    const ok = response(200, 'us-west');
    const fake = scripted([failure('connect-failed', 'refused', { cluster: 'us-east', retriable: true }), ok]);
    const ctx = exchange();
    const outcome = await retryLayer<Ctx>(budget, retries)(fake.next)(ctx);
    expect(outcome).toBe(ok);
    expect(fake.calls).toEqual([1, 2]);
    expect(ctx.state.attempts).toBe(2);
    expect(await retryCount(retries, 'connect-failed')).toBe(1);
  });

  it('stops after `attempts` retries and returns the last failure', async () => {
    const { retries, budget } = setup();
    const reset = (cluster: string): Outcome => failure('upstream-reset', 'reset', { cluster, retriable: true });
    const fake = scripted([reset('a'), reset('b'), reset('c'), reset('d')]);
    const outcome = await retryLayer<Ctx>(budget, retries)(fake.next)(exchange(policy({ attempts: 2 })));
    expect(fake.calls).toEqual([1, 2, 3]);
    expect(outcome.kind === 'failure' && outcome.failure.cluster).toBe('c');
  });

  it('does not retry failures that are not retriable, nor codes outside retryOn', async () => {
    const { retries, budget } = setup();
    const denied = failure('denied', 'no', { retriable: false });
    let fake = scripted([denied]);
    expect(await retryLayer<Ctx>(budget, retries)(fake.next)(exchange())).toBe(denied);
    expect(fake.calls).toEqual([1]);

    // A reset is retried only with reset, gateway-error or 5xx in retryOn.
    const reset = failure('upstream-reset', 'reset', { retriable: true });
    fake = scripted([reset]);
    expect(await retryLayer<Ctx>(budget, retries)(fake.next)(exchange(policy({ retryOn: new Set<RetryOn>(['connect-failure']) })))).toBe(reset);
    expect(fake.calls).toEqual([1]);

    // A retriable failure of a code retry knows nothing about (overflow) is returned as it is.
    const overflow = failure('overflow', 'full', { retriable: true });
    fake = scripted([overflow]);
    expect(await retryLayer<Ctx>(budget, retries)(fake.next)(exchange())).toBe(overflow);
  });

  it('always retries no-healthy-upstream when retriable; timeouts only with gateway-error, 5xx or reset', async () => {
    const { retries, budget } = setup();
    let fake = scripted([failure('no-healthy-upstream', 'none', { retriable: true }), response(200, 'b')]);
    await retryLayer<Ctx>(budget, retries)(fake.next)(exchange(policy({ retryOn: new Set<RetryOn>() })));
    expect(fake.calls).toEqual([1, 2]);

    const timeout = failure('timeout', 'slow', { retriable: true });
    fake = scripted([timeout]);
    expect(await retryLayer<Ctx>(budget, retries)(fake.next)(exchange(policy({ retryOn: new Set<RetryOn>(['connect-failure', 'unavailable']) })))).toBe(timeout);
    fake = scripted([timeout, response(200, 'b')]);
    await retryLayer<Ctx>(budget, retries)(fake.next)(exchange(policy({ retryOn: new Set<RetryOn>(['gateway-error']) })));
    expect(fake.calls).toEqual([1, 2]);
  });

  it.each<[number, RetryOn[], boolean]>([
    [503, ['unavailable'], true],
    [503, ['connect-failure'], false],
    [502, ['gateway-error'], true],
    [504, ['5xx'], true],
    [502, ['unavailable'], false],
    [500, ['5xx'], true],
    [500, ['gateway-error'], false],
    [429, ['retriable-4xx'], true],
    [409, ['retriable-4xx'], true],
    [404, ['5xx', 'retriable-4xx'], false],
    [200, ['5xx'], false],
  ])('a %d response with retryOn %j is retried: %s, and a replaced response is discarded', async (status, retryOn, retried) => {
    const { retries, budget } = setup();
    const first = response(status, 'a');
    const fake = scripted([first, response(200, 'b')]);
    const outcome = await retryLayer<Ctx>(budget, retries)(fake.next)(exchange(policy({ retryOn: new Set(retryOn) })));
    expect(fake.calls.length).toBe(retried ? 2 : 1);
    expect(outcome === first).toBe(!retried);
    expect(first.response.discard).toHaveBeenCalledTimes(retried ? 1 : 0);
  });

  it('retries a trailers-only gRPC UNAVAILABLE (grpc-status 14 with HTTP 200), not other gRPC statuses', async () => {
    const { retries, budget } = setup();
    let fake = scripted([response(200, 'a', { 'grpc-status': '14' }), response(200, 'b', { 'grpc-status': '0' })]);
    const outcome = await retryLayer<Ctx>(budget, retries)(fake.next)(exchange(policy(), { grpc: true }));
    expect(fake.calls).toEqual([1, 2]);
    expect(outcome.kind === 'response' && outcome.response.cluster).toBe('b');
    expect(await retryCount(retries, 'status-200')).toBe(1);

    fake = scripted([response(200, 'a', { 'grpc-status': '13' })]);
    await retryLayer<Ctx>(budget, retries)(fake.next)(exchange(policy(), { grpc: true }));
    expect(fake.calls).toEqual([1]);
  });

  it('does not replace a response once a body went upstream without a complete recording', async () => {
    const { retries, budget } = setup();
    const ctx = exchange(policy(), { body: new PassThrough() });
    ctx.state.bodyStarted = true;
    const first = response(503, 'a');
    const fake = scripted([first]);
    expect(await retryLayer<Ctx>(budget, retries)(fake.next)(ctx)).toBe(first);
    expect(first.response.discard).not.toHaveBeenCalled();

    // A body recorded whole can be sent again.
    const recorded = exchange(policy(), { body: new PassThrough() });
    recorded.state.bodyStarted = true;
    const recording = new BodyRecording(1024);
    recording.add(Buffer.from('x'));
    recording.finish();
    recorded.state.bodyRecording = recording;
    const again = scripted([response(503, 'a'), response(200, 'b')]);
    await retryLayer<Ctx>(budget, retries)(again.next)(recorded);
    expect(again.calls).toEqual([1, 2]);
  });

  it('returns at once when the request ended (client gone, overall timeout), whatever the outcome', async () => {
    const { retries, budget } = setup();
    const ctx = exchange();
    const reset = failure('upstream-reset', 'reset', { retriable: true });
    const fake = scripted([
      async () => {
        ctx.state.end('client-closed');
        return reset;
      },
    ]);
    expect(await retryLayer<Ctx>(budget, retries)(fake.next)(ctx)).toBe(reset);
    expect(fake.calls).toEqual([1]);
  });

  describe('retry budget', () => {
    it('allows retries up to the larger of minRetryConcurrency and budgetPercent of the requests in flight', () => {
      const b = new RetryBudget();
      b.active = 100;
      b.retrying = 19;
      expect(b.allows(20, 3)).toBe(true);
      b.retrying = 20;
      expect(b.allows(20, 3)).toBe(false);
      b.active = 1;
      b.retrying = 2;
      expect(b.allows(20, 3)).toBe(true);
      b.retrying = 3;
      expect(b.allows(20, 3)).toBe(false);
    });

    it('an exhausted budget stops retries of requests that reached an upstream, but not of connect failures or lost peers', async () => {
      const { retries, budget, budgets } = setup();
      const exhausted = budget('default/payments');
      exhausted.retrying = 5; // other requests' retries in flight, over minRetryConcurrency 3 and 20 % of the active ones
      const reset = failure('upstream-reset', 'reset', { cluster: 'a', retriable: true });
      let fake = scripted([reset]);
      expect(await retryLayer<Ctx>(budget, retries)(fake.next)(exchange())).toBe(reset);
      expect(fake.calls).toEqual([1]);

      fake = scripted([failure('connect-failed', 'refused', { retriable: true }), response(200, 'b')]);
      await retryLayer<Ctx>(budget, retries)(fake.next)(exchange());
      expect(fake.calls).toEqual([1, 2]);

      fake = scripted([failure('upstream-reset', 'peer died', { retriable: true, peerLost: true }), response(200, 'b')]);
      await retryLayer<Ctx>(budget, retries)(fake.next)(exchange());
      expect(fake.calls).toEqual([1, 2]);

      // Every request handed back what it took from the budget.
      expect(budgets.get('default/payments')).toMatchObject({ active: 0, retrying: 5 });
    });

    it('counts a retry in flight against the budget only while it runs', async () => {
      const { retries, budget } = setup();
      const b = budget('default/payments');
      let seen: { active: number; retrying: number } | undefined;
      const fake = scripted([
        failure('upstream-reset', 'reset', { retriable: true }),
        async () => {
          seen = { active: b.active, retrying: b.retrying };
          return failure('upstream-reset', 'reset again', { retriable: true });
        },
        response(200, 'c'),
      ]);
      await retryLayer<Ctx>(budget, retries)(fake.next)(exchange());
      expect(seen).toEqual({ active: 1, retrying: 1 });
      expect(b).toMatchObject({ active: 0, retrying: 0 });
    });

    it('gives the budget back when the next stage throws', async () => {
      const { retries, budget } = setup();
      const fake = scripted([
        failure('upstream-reset', 'reset', { retriable: true }),
        () => Promise.reject(new Error('bug below')),
      ]);
      await expect(retryLayer<Ctx>(budget, retries)(fake.next)(exchange())).rejects.toThrow('bug below');
      expect(budget('default/payments')).toMatchObject({ active: 0, retrying: 0 });
    });
  });

  describe('per-try timeout', () => {
    beforeEach(() => jest.useFakeTimers());
    afterEach(() => jest.useRealTimers());

    it('abandons an attempt that outlives the per-try timeout and tries another cluster', async () => {
      const { retries, budget } = setup();
      const ctx = exchange(policy({ perTryTimeoutMs: 100, retryOn: new Set<RetryOn>(['reset']) }));
      const slow = response(200, 'us-east');
      let aborted: string | undefined;
      const fake = scripted([
        () =>
          new Promise<Outcome>((resolve) => {
            // What a forwarder does: give the attempt up when asked, answering with what it has.
            ctx.state.onAbort((reason) => {
              aborted = reason;
              resolve(slow);
            });
          }),
        response(200, 'us-west'),
      ]);
      const pending = retryLayer<Ctx>(budget, retries)(fake.next)(ctx);
      await jest.advanceTimersByTimeAsync(99);
      expect(aborted).toBeUndefined();
      await jest.advanceTimersByTimeAsync(1);
      const outcome = await pending;
      expect(aborted).toBe('timeout');
      expect(slow.response.discard).toHaveBeenCalled();
      expect(fake.calls).toEqual([1, 2]);
      expect(outcome.kind === 'response' && outcome.response.cluster).toBe('us-west');
      expect(await retryCount(retries, 'timeout')).toBe(1);
    });

    it('a per-try timeout of a request whose body cannot be sent again is final', async () => {
      const { retries, budget } = setup();
      const ctx = exchange(policy({ perTryTimeoutMs: 50, retryOn: new Set<RetryOn>(['5xx']) }), { body: new PassThrough(), idempotent: false });
      const fake = scripted([
        () =>
          new Promise<Outcome>((resolve) => {
            ctx.state.bodyStarted = true;
            ctx.state.onAbort(() => resolve(failure('upstream-reset', 'aborted', { cluster: 'us-east', retriable: true })));
          }),
      ]);
      const pending = retryLayer<Ctx>(budget, retries)(fake.next)(ctx);
      await jest.advanceTimersByTimeAsync(50);
      const outcome = await pending;
      expect(outcome).toEqual(failure('timeout', 'no response within the per-try timeout of 50ms', { cluster: 'us-east', retriable: false }));
      expect(fake.calls).toEqual([1]);
    });

    it('an attempt answering in time is returned as it is, and leaves no timer behind', async () => {
      const { retries, budget } = setup();
      const ok = response(200, 'a');
      const fake = scripted([ok]);
      expect(await retryLayer<Ctx>(budget, retries)(fake.next)(exchange(policy({ perTryTimeoutMs: 100 })))).toBe(ok);
      expect(jest.getTimerCount()).toBe(0);
    });
  });
});
