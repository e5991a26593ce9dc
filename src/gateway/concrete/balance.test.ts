import { PassThrough } from 'node:stream';
import type { Picker, PickRequest, PickResult } from '../../balancer/picker.js';
import type { OutboundExchange } from '../logical/outbound-exchange.js';
import { failure, NO_TRAILERS, type Outcome } from '../request/outcome.js';
import { RequestState, type Attempt } from '../request/request.js';
import type { RouteEntry } from '../routing/routing-table.js';
import type { ControlView } from '../view/control-view.js';
import { balanceAndForward } from './balance.js';

/** A picker over clusters in order of preference, honouring exclusions, as the real ones do. */
class OrderedPicker implements Picker {
  readonly requests: Array<PickRequest | undefined> = [];
  constructor(private readonly clusters: string[]) {}
  pick(request?: PickRequest): PickResult {
    this.requests.push(request);
    const cluster = this.clusters.find((c) => !request?.exclude?.has(c));
    return cluster ? { type: 'complete', cluster, priority: 0, panic: false } : { type: 'unavailable', reason: request?.exclude?.size ? 'every cluster was tried' : 'no healthy cluster' };
  }
}

function exchange(picker: Picker, tried: string[] = []): OutboundExchange {
  const state = new RequestState();
  for (const c of tried) state.tried.add(c);
  return {
    view: {} as ControlView,
    request: {
      direction: 'outbound',
      method: 'GET',
      path: '/',
      authority: 'payments.default.svc.clusterset.local:8080',
      service: { namespace: 'default', name: 'payments', port: 8080, key: 'default/payments' },
      headers: {},
      body: null,
      grpc: false,
      idempotent: true,
      caller: 'spiffe://us-east.acme.internal/ns/default/sa/web',
      sourceCluster: 'us-east',
      startedAt: 0,
    },
    route: { name: 'payments', namespace: 'default', picker } as RouteEntry,
    rule: undefined,
    state,
  };
}

function response(cluster: string): Outcome {
  return { kind: 'response', response: { status: 200, headers: {}, body: new PassThrough(), trailers: NO_TRAILERS, cluster, discard: () => undefined } };
}

function recorder(answer: (attempt: Attempt) => Outcome = (a) => response(a.cluster)): {
  attempts: Attempt[];
  observed: Array<[string, Outcome]>;
  forward: (e: OutboundExchange, a: Attempt) => Promise<Outcome>;
  observe: (e: OutboundExchange, c: string, o: Outcome) => void;
} {
  const attempts: Attempt[] = [];
  const observed: Array<[string, Outcome]> = [];
  return {
    attempts,
    observed,
    forward: async (_e, a) => {
      attempts.push(a);
      return answer(a);
    },
    observe: (_e, c, o) => observed.push([c, o]),
  };
}

describe('balanceAndForward (the concrete stage)', () => {
  it('forwards the first attempt to the picker’s cluster, records it as tried and reports the outcome', async () => {
    const picker = new OrderedPicker(['us-west', 'eu-west']);
    const r = recorder();
    const ex = exchange(picker);
    const outcome = await balanceAndForward({ forward: r.forward, observe: r.observe })(ex);
    expect(r.attempts).toEqual([{ cluster: 'us-west', redial: false }]);
    expect(picker.requests).toEqual([undefined]);
    expect([...ex.state.tried]).toEqual(['us-west']);
    expect(r.observed).toEqual([['us-west', outcome]]);
  });

  it('a retry excludes the clusters already tried', async () => {
    const picker = new OrderedPicker(['us-west', 'eu-west']);
    const r = recorder((a) => failure('connect-failed', 'refused', { cluster: a.cluster, retriable: true }));
    const handler = balanceAndForward({ forward: r.forward, observe: r.observe });
    const ex = exchange(picker);
    await handler(ex);
    await handler(ex);
    expect(r.attempts.map((a) => a.cluster)).toEqual(['us-west', 'eu-west']);
    expect(picker.requests[1]?.exclude).toBe(ex.state.tried);
    expect(r.observed.map(([c, o]) => [c, o.kind])).toEqual([
      ['us-west', 'failure'],
      ['eu-west', 'failure'],
    ]);
  });

  it('with every cluster tried, goes back to one and marks the attempt a redial', async () => {
    const picker = new OrderedPicker(['us-west', 'eu-west']);
    const r = recorder();
    await balanceAndForward({ forward: r.forward, observe: r.observe })(exchange(picker, ['us-west', 'eu-west']));
    expect(r.attempts).toEqual([{ cluster: 'us-west', redial: true }]);
  });

  it('answers no-healthy-upstream with the picker’s reason when nothing can take the request, forwarding nothing', async () => {
    const r = recorder();
    const outcome = await balanceAndForward({ forward: r.forward, observe: r.observe })(exchange(new OrderedPicker([])));
    expect(outcome).toEqual(failure('no-healthy-upstream', 'payments.default: no healthy cluster'));
    expect(r.attempts).toEqual([]);
    expect(r.observed).toEqual([]);
  });

  it('a route rule’s choice overrides the picker; a rule’s failure is returned as it is', async () => {
    const picker = new OrderedPicker(['us-west']);
    const r = recorder();
    await balanceAndForward({ forward: r.forward, observe: r.observe, choose: () => 'eu-west' })(exchange(picker));
    expect(r.attempts).toEqual([{ cluster: 'eu-west', redial: false }]);
    expect(picker.requests).toEqual([]);

    const noRoute = failure('no-route', 'no v9');
    expect(await balanceAndForward({ forward: r.forward, observe: r.observe, choose: () => noRoute })(exchange(picker))).toBe(noRoute);
    expect(r.attempts).toHaveLength(1);

    await balanceAndForward({ forward: r.forward, observe: r.observe, choose: () => undefined })(exchange(picker));
    expect(r.attempts.map((a) => a.cluster)).toEqual(['eu-west', 'us-west']);
  });
});
