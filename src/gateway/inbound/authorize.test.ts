import { gatewayDefaultsShape, type GatewayDefaults } from '../../config/federation-config.js';
import { createSilentLogger } from '../../core/logger.js';
import { Registry } from '../../admin/metrics.js';
import { SpiffeId } from '../../model/spiffe-id.js';
import type { H2ServerStream } from '../../http2/index.js';
import { compilePolicySet } from '../../policy/compile.js';
import { PolicyIndex } from '../../policy/resolve.js';
import { failure, type Outcome } from '../request/outcome.js';
import { GatewayMetrics } from '../request/request-metrics.js';
import { ControlViewPublisher, type ControlView } from '../view/control-view.js';
import { authorizationOutcome, authorizeStage } from './authorize.js';
import type { ExportedStream } from './inbound-stream.js';

const WEB = 'spiffe://us-west.acme.internal/ns/shop/sa/web';
const ADMIN = 'spiffe://us-west.acme.internal/ns/shop/sa/admin';
const ORIGIN = 'AuthorizationPolicy/shop/payments-web';

function viewWith(documents: Array<Record<string, unknown>>): ControlView {
  const result = compilePolicySet(documents.map((document, i) => ({ document, source: `p${i}.yaml` })));
  expect(result.issues).toEqual([]);
  return new ControlViewPublisher(
    { cluster: 'us-east', region: 'us-east-1', zone: 'a', trustDomain: 'us-east.acme.internal', labels: {} },
    {
      federation: 'acme',
      defaults: gatewayDefaultsShape.defaultFactory?.() as GatewayDefaults,
      localExports: { exports: new Map(), source: 'test' },
      catalog: { epoch: 'e', revision: 1, policyRevision: 0, clusters: new Map(), services: new Map(), bundles: new Map(), policies: new Map() },
      policies: new PolicyIndex(result.set),
    },
  ).current;
}

const allowWebGets = { apiVersion: 'fedgate.io/v1alpha1', kind: 'AuthorizationPolicy', metadata: { name: 'payments-web', namespace: 'shop' }, spec: { service: 'payments', action: 'ALLOW', rules: [{ from: [{ principals: [WEB] }], to: [{ methods: ['GET'] }] }] } };
const service = { namespace: 'shop', name: 'payments', port: 8080, key: 'shop/payments' };

describe('authorizationOutcome', () => {
  it('allows everything when no policy applies, counting nothing', async () => {
    const deps = { metrics: new GatewayMetrics(new Registry()), log: createSilentLogger() };
    expect(authorizationOutcome(deps, viewWith([]), { service, caller: ADMIN, sourceCluster: 'us-west', method: 'DELETE', path: '/' })).toBeUndefined();
    expect((await deps.metrics.authorizations.get()).values).toEqual([]);
  });

  it('decides by the view’s rules, counting each decision with the deciding policy', async () => {
    const deps = { metrics: new GatewayMetrics(new Registry()), log: createSilentLogger() };
    const view = viewWith([allowWebGets]);
    expect(authorizationOutcome(deps, view, { service, caller: WEB, sourceCluster: 'us-west', method: 'GET', path: '/items' })).toBeUndefined();
    const denied = authorizationOutcome(deps, view, { service, caller: ADMIN, sourceCluster: 'us-west', method: 'GET', path: '/items' });
    expect(denied).toMatchObject({ kind: 'failure', failure: { code: 'denied', retriable: false, policy: ORIGIN } });
    expect(authorizationOutcome(deps, view, { service, caller: WEB, sourceCluster: 'us-west', method: 'POST', path: '/items' })).toMatchObject({ failure: { code: 'denied' } });
    const counts = (await deps.metrics.authorizations.get()).values.map((v) => [v.labels.decision, v.labels.policy, v.value]);
    expect(counts).toEqual([
      ['allow', ORIGIN, 1],
      ['deny', ORIGIN, 2],
    ]);
  });
});

describe('authorizeStage', () => {
  it('lets the verified caller through to the next stage, or answers the denial itself', async () => {
    const deps = { metrics: new GatewayMetrics(new Registry()), log: createSilentLogger() };
    const view = viewWith([allowWebGets]);
    const ok = failure('client-closed', 'stand-in answer of the next stage');
    let calls = 0;
    const handler = authorizeStage(deps)(async (): Promise<Outcome> => {
      calls += 1;
      return ok;
    });
    const id = SpiffeId.gateway('us-west.acme.internal', 'us-west');
    const stream = (caller: string): ExportedStream => ({
      view,
      peer: { id, spiffeId: id.toString(), cluster: 'us-west', callers: new Map() },
      caller,
      stream: {} as H2ServerStream,
      headers: {},
      endStream: true,
      method: 'GET',
      path: '/items',
      grpc: false,
      service,
      exported: { namespace: 'shop', name: 'payments', ports: [], endpoints: [], consumers: [], createdAt: 0 },
      port: { name: 'http', port: 8080, targetPort: 80, protocol: 'http' },
    });
    expect(await handler(stream(WEB))).toBe(ok);
    expect(await handler(stream(ADMIN))).toMatchObject({ kind: 'failure', failure: { code: 'denied' } });
    expect(calls).toBe(1);
  });
});
