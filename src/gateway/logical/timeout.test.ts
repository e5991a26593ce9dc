import { jest } from '@jest/globals';
import { PassThrough } from 'node:stream';
import { failure, NO_TRAILERS, type Outcome } from '../request/outcome.js';
import { RequestState } from '../request/request.js';
import { timeoutLayer, type TimeoutInput } from './timeout.js';

interface Ctx extends TimeoutInput {
  readonly state: RequestState;
}

function exchange(timeoutMs: number | undefined, opts: { grpc?: boolean; explicit?: boolean; ruleTimeoutMs?: number } = {}): Ctx {
  return {
    request: { grpc: opts.grpc ?? false },
    route: { policy: { timeoutMs, timeoutExplicit: opts.explicit ?? false } },
    rule: opts.ruleTimeoutMs !== undefined ? { timeoutMs: opts.ruleTimeoutMs } : undefined,
    state: new RequestState(),
  };
}

function response(cluster: string): Outcome & { kind: 'response' } {
  return { kind: 'response', response: { status: 200, headers: {}, body: new PassThrough(), trailers: NO_TRAILERS, cluster, discard: jest.fn() } };
}

/** A next stage that answers only when the request is ended (as forwarders do) or when released. */
function hanging(ctx: Ctx, answer: Outcome): { next: () => Promise<Outcome>; release: () => void; calls: () => number } {
  let calls = 0;
  let release = (): void => undefined;
  return {
    next: () => {
      calls += 1;
      return new Promise<Outcome>((resolve) => {
        release = () => resolve(answer);
        ctx.state.onAbort(() => resolve(answer));
      });
    },
    release: () => release(),
    calls: () => calls,
  };
}

describe('timeoutLayer', () => {
  beforeEach(() => jest.useFakeTimers());
  afterEach(() => jest.useRealTimers());

  it('ends the request after the service timeout and answers timeout with the cluster that was slow, discarding a late response', async () => {
    const ctx = exchange(200);
    const late = response('us-east');
    const fake = hanging(ctx, late);
    const pending = timeoutLayer<Ctx>()(fake.next)(ctx);
    await jest.advanceTimersByTimeAsync(199);
    expect(ctx.state.ended).toBeUndefined();
    await jest.advanceTimersByTimeAsync(1);
    expect(await pending).toEqual(failure('timeout', 'no response within 200ms', { cluster: 'us-east', retriable: false }));
    expect(ctx.state.ended).toBe('timeout');
    expect(late.response.discard).toHaveBeenCalled();
  });

  it('keeps the cluster of a failure that came back after the deadline', async () => {
    const ctx = exchange(50);
    const fake = hanging(ctx, failure('upstream-reset', 'aborted', { cluster: 'us-west', retriable: true }));
    const pending = timeoutLayer<Ctx>()(fake.next)(ctx);
    await jest.advanceTimersByTimeAsync(50);
    expect(await pending).toEqual(failure('timeout', 'no response within 50ms', { cluster: 'us-west', retriable: false }));

    const bare = exchange(50);
    const noCluster = hanging(bare, failure('no-healthy-upstream', 'none'));
    const p2 = timeoutLayer<Ctx>()(noCluster.next)(bare);
    await jest.advanceTimersByTimeAsync(50);
    expect(await p2).toEqual(failure('timeout', 'no response within 50ms', { retriable: false }));
  });

  it('passes an answer in time through untouched and clears its timer', async () => {
    const ctx = exchange(200);
    const ok = response('a');
    const fake = hanging(ctx, ok);
    const pending = timeoutLayer<Ctx>()(fake.next)(ctx);
    await jest.advanceTimersByTimeAsync(10);
    fake.release();
    expect(await pending).toBe(ok);
    expect(ok.response.discard).not.toHaveBeenCalled();
    expect(jest.getTimerCount()).toBe(0);
    expect(ctx.state.ended).toBeUndefined();
  });

  it('sets no timer without a timeout, or with 0', async () => {
    for (const ctx of [exchange(undefined), exchange(0)]) {
      const ok = response('a');
      const next = jest.fn(async () => ok);
      const pending = timeoutLayer<Ctx>()(next)(ctx);
      expect(jest.getTimerCount()).toBe(0);
      expect(await pending).toBe(ok);
    }
  });

  it('leaves gRPC calls to their own deadline unless a policy or a route rule set the timeout', async () => {
    const next = jest.fn(async () => response('a'));
    await timeoutLayer<Ctx>()(next)(exchange(100, { grpc: true }));
    expect(jest.getTimerCount()).toBe(0);

    for (const ctx of [exchange(100, { grpc: true, explicit: true }), exchange(undefined, { grpc: true, ruleTimeoutMs: 100 })]) {
      const fake = hanging(ctx, response('a'));
      const pending = timeoutLayer<Ctx>()(fake.next)(ctx);
      await jest.advanceTimersByTimeAsync(100);
      expect((await pending).kind).toBe('failure');
      expect(ctx.state.ended).toBe('timeout');
    }
  });

  it('a matched route rule’s timeout replaces the service’s', async () => {
    const ctx = exchange(1000, { ruleTimeoutMs: 30 });
    const fake = hanging(ctx, response('a'));
    const pending = timeoutLayer<Ctx>()(fake.next)(ctx);
    await jest.advanceTimersByTimeAsync(30);
    expect(await pending).toMatchObject({ kind: 'failure', failure: { code: 'timeout', message: 'no response within 30ms' } });
  });
});
