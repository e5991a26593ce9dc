import { PassThrough } from 'node:stream';
import { gatewayDefaultsShape, type GatewayDefaults } from '../../config/federation-config.js';
import type { H2ServerStream } from '../../http2/index.js';
import type { ClusterRecord } from '../../model/catalog.js';
import { failure, type Outcome } from '../request/outcome.js';
import type { ServiceAddress } from '../request/request.js';
import { ControlViewPublisher, type ControlView } from '../view/control-view.js';
import { blackholeStage } from './blackhole.js';

interface Ctx {
  view: ControlView;
  service: ServiceAddress;
  stream: H2ServerStream;
}

/** A view whose catalog says this cluster (us-east) is blackholed for `blackholes`, as a drill sets it. */
function viewWith(blackholes: string[]): ControlView {
  const record: ClusterRecord = { name: 'us-east', region: 'us-east-1', zone: 'a', trustDomain: 'us-east.acme.internal', gatewayAddresses: [], labels: {}, state: 'active', stateReason: '', stateChangedBy: '', stateChangedAt: 0, joinedAt: 0, blackholed: blackholes };
  return new ControlViewPublisher(
    { cluster: 'us-east', region: 'us-east-1', zone: 'a', trustDomain: 'us-east.acme.internal', labels: {} },
    {
      federation: 'acme',
      defaults: gatewayDefaultsShape.defaultFactory?.() as GatewayDefaults,
      localExports: { exports: new Map(), source: 'test' },
      catalog: { epoch: 'e', revision: 1, policyRevision: 0, clusters: new Map([['us-east', record]]), services: new Map(), bundles: new Map(), policies: new Map() },
    },
  ).current;
}

function ctx(blackholes: string[], stream = new PassThrough()): Ctx {
  return { view: viewWith(blackholes), service: { namespace: 'default', name: 'payments', port: 8080, key: 'default/payments' }, stream: stream as unknown as H2ServerStream };
}

describe('blackholeStage', () => {
  const ok = failure('client-closed', 'stand-in answer of the next stage');

  it('passes requests for services that are not blackholed', async () => {
    let calls = 0;
    const handler = blackholeStage<Ctx>()(async (): Promise<Outcome> => {
      calls += 1;
      return ok;
    });
    expect(await handler(ctx(['default/orders']))).toBe(ok);
    expect(calls).toBe(1);
  });

  it('answers nothing for a blackholed service until the peer closes the stream', async () => {
    let calls = 0;
    const stream = new PassThrough();
    let settled: Outcome | undefined;
    const pending = blackholeStage<Ctx>()(async () => {
      calls += 1;
      return ok;
    })(ctx(['default/payments'], stream)).then((o) => (settled = o));
    await new Promise((resolve) => setImmediate(resolve));
    expect(settled).toBeUndefined();
    stream.destroy();
    await pending;
    expect(settled).toEqual(failure('blackholed', 'default/payments is blackholed here'));
    expect(calls).toBe(0);
  });
});
