import { gatewayDefaultsShape, type GatewayDefaults } from '../config/federation-config.js';
import { ManualClock } from '../core/clock.js';
import { createSilentLogger } from '../core/logger.js';
import type { ClusterRecord } from '../model/catalog.js';
import { describeGateway, type GatewayFacts } from './admin-view.js';
import { AppliedPolicies } from './control/applied-policies.js';
import { HealthChecker } from './registry/health-checker.js';
import { OutlierRegistry } from './registry/outlier-registry.js';
import { ControlViewPublisher } from './view/control-view.js';

const defaults = gatewayDefaultsShape.defaultFactory?.() as GatewayDefaults;

describe('describeGateway (/config)', () => {
  const west: ClusterRecord = { name: 'us-west', region: 'us-west-2', zone: 'b', trustDomain: 'us-west.acme.internal', gatewayAddresses: ['10.9.0.1:15443'], labels: {}, state: 'active', stateReason: '', stateChangedBy: '', stateChangedAt: 0, joinedAt: 0 };
  const self: ClusterRecord = { ...west, name: 'us-east', region: 'us-east-1', blackholed: ['shop/ledger'] };
  const views = new ControlViewPublisher(
    { cluster: 'us-east', region: 'us-east-1', zone: 'a', trustDomain: 'us-east.acme.internal', labels: {} },
    {
      federation: 'acme',
      defaults,
      localExports: { exports: new Map([['shop/payments', { namespace: 'shop', name: 'payments', ports: [{ name: 'http', port: 8080, targetPort: 80, protocol: 'http' }], endpoints: [{ address: '10.1.2.3', ready: true }, { address: '10.1.2.4', ready: false }], consumers: [], createdAt: 0 }]]), source: 'test' },
      catalog: {
        epoch: 'ep',
        revision: 7,
        policyRevision: 2,
        clusters: new Map([['us-east', self], ['us-west', west]]),
        services: new Map([['shop/payments', { namespace: 'shop', name: 'payments', ports: [{ name: 'http', port: 8080, protocol: 'http' }], exporters: [{ cluster: 'us-west', ports: [], readyEndpoints: 2, totalEndpoints: 3, createdAt: 0 }], conflicts: [] }]]),
        bundles: new Map([['us-west.acme.internal', { trustDomain: 'us-west.acme.internal', sequence: 4, spiffeJson: '{"keys":[]}' }]]),
        policies: new Map(),
      },
    },
  );
  const facts: GatewayFacts = { cluster: 'us-east', instance: 'gw-1', mode: 'joined', federation: 'acme', controllerConnected: false, controlProblem: 'controller unreachable', controllers: ['ctl:9443'], identity: 'spiffe://us-east.acme.internal/fedgate/gateway/us-east', certificate: { source: 'local CA', serial: '01', notAfter: '2027-01-01T00:00:00.000Z' }, ports: { inbound: 15443, outbound: 15001, admin: 15000, tcp: [] }, verdicts: [] };

  it('shows what is applied, the health checks and the ejections, and no local endpoint address or bundle key', () => {
    const outliers = new OutlierRegistry({ view: views.current, publish: () => undefined, log: createSilentLogger(), clock: new ManualClock(0) });
    for (let i = 0; i < defaults.outlierDetection.consecutiveErrors; i++) outliers.record('shop/payments', 'us-west', 'response', 4);
    const health = new HealthChecker({ intervalMs: 1000, timeoutMs: 100, unhealthyThreshold: 1, healthyThreshold: 1 }, async () => 1, createSilentLogger());
    health.setPeers(['us-west']);
    const policies = new AppliedPolicies({ limits: { cluster: 'us-east', allowFaultInjection: false }, log: createSilentLogger() });
    const shown = describeGateway(views.current, facts, { policies, health, outliers }) as Record<string, unknown>;
    expect(shown).toMatchObject({
      cluster: 'us-east',
      controlProblem: 'controller unreachable',
      catalog: {
        revision: 7,
        clusters: [{ name: 'us-east' }, { name: 'us-west', addresses: ['10.9.0.1:15443'] }],
        services: [{ service: 'shop/payments', exporters: [{ cluster: 'us-west', ready: 2, total: 3 }] }],
        bundles: [{ trustDomain: 'us-west.acme.internal', sequence: 4 }],
      },
      localExports: [{ service: 'shop/payments', ready: 1, total: 2, consumers: [] }],
      health: { 'us-west': { alive: true } },
      ejections: { 'shop/payments': [{ cluster: 'us-west', cause: 'response', ejections: 1 }] },
      blackholed: ['shop/ledger'],
      policies: { appliedRevision: 0, inSync: true },
    });
    const text = JSON.stringify(shown);
    expect(text).not.toContain('10.1.2.3');
    expect(text).not.toContain('spiffeJson');
  });
});
