import { jest } from '@jest/globals';
import { gatewayDefaultsShape, type GatewayDefaults } from '../../config/federation-config.js';
import { ManualClock } from '../../core/clock.js';
import { createSilentLogger } from '../../core/logger.js';
import { compilePolicySet } from '../../policy/compile.js';
import { PolicyIndex } from '../../policy/resolve.js';
import { ControlViewPublisher, type Ejections } from '../view/control-view.js';
import { OutlierRegistry } from './outlier-registry.js';

const defaults = gatewayDefaultsShape.defaultFactory?.() as GatewayDefaults;
const ERRORS = defaults.outlierDetection.consecutiveErrors;
const BASE = defaults.outlierDetection.baseEjectionTime;

function views(): ControlViewPublisher {
  return new ControlViewPublisher(
    { cluster: 'us-east', region: 'us-east-1', zone: 'a', trustDomain: 'us-east.acme.internal', labels: {} },
    { federation: 'acme', defaults, localExports: { exports: new Map(), source: 'test' }, catalog: { epoch: 'e', revision: 1, policyRevision: 0, clusters: new Map(), services: new Map(), bundles: new Map(), policies: new Map() } },
  );
}

function setup(): { registry: OutlierRegistry; clock: ManualClock; published: Ejections[]; events: Array<[string, string, boolean]>; publisher: ControlViewPublisher } {
  const clock = new ManualClock(1_000_000);
  const published: Ejections[] = [];
  const events: Array<[string, string, boolean]> = [];
  const publisher = views();
  const registry = new OutlierRegistry({ view: publisher.current, publish: (e) => published.push(e), log: createSilentLogger(), clock, sweepMs: 100 });
  registry.onEjection((cluster, service, ejected) => events.push([cluster, service, ejected]));
  return { registry, clock, published, events, publisher };
}

function fail(registry: OutlierRegistry, service: string, cluster: string, times: number, cause: 'transport' | 'response' = 'response', population = 4): void {
  for (let i = 0; i < times; i++) registry.record(service, cluster, cause, population);
}

describe('OutlierRegistry', () => {
  afterEach(() => jest.useRealTimers());

  it('ejects a cluster for one service after consecutive errors and publishes the ejections', () => {
    const { registry, published, events } = setup();
    fail(registry, 'shop/payments', 'us-west', ERRORS - 1);
    expect(published).toEqual([]);
    fail(registry, 'shop/payments', 'us-west', 1);
    expect(events).toEqual([['us-west', 'shop/payments', true]]);
    expect(published.at(-1)).toEqual(new Map([['shop/payments', new Set(['us-west'])]]));
    // Another service through the same cluster is not affected.
    registry.record('shop/orders', 'us-west', undefined, 4);
    expect(published.at(-1)?.has('shop/orders')).toBe(false);
    expect(Object.keys(registry.describe())).toEqual(['shop/payments']);
    expect(registry.describe()['shop/payments']).toEqual([{ cluster: 'us-west', until: new Date(1_000_000 + BASE).toISOString(), cause: 'response', ejections: 1 }]);
  });

  it('a success in between resets the count', () => {
    const { registry, events } = setup();
    fail(registry, 'shop/payments', 'us-west', ERRORS - 1);
    registry.record('shop/payments', 'us-west', undefined, 4);
    fail(registry, 'shop/payments', 'us-west', ERRORS - 1);
    expect(events).toEqual([]);
  });

  it('re-admits a cluster once its ejection time is over, found by the sweep', async () => {
    jest.useFakeTimers();
    const { registry, clock, published, events } = setup();
    registry.start();
    fail(registry, 'shop/payments', 'us-west', ERRORS);
    clock.advance(BASE - 1);
    await jest.advanceTimersByTimeAsync(100);
    expect(events).toEqual([['us-west', 'shop/payments', true]]);
    clock.advance(1);
    await jest.advanceTimersByTimeAsync(100);
    expect(events).toEqual([
      ['us-west', 'shop/payments', true],
      ['us-west', 'shop/payments', false],
    ]);
    expect(published.at(-1)).toEqual(new Map());
    registry.stop();
    expect(jest.getTimerCount()).toBe(0);
  });

  it('a passing health check lifts ejections that transport failures caused, not those of 5xx answers', () => {
    const { registry, events } = setup();
    fail(registry, 'shop/payments', 'us-west', ERRORS, 'transport');
    fail(registry, 'shop/orders', 'eu-west', ERRORS, 'response');
    expect(registry.gatewayPassedCheck('eu-west')).toBe(false);
    expect(registry.gatewayPassedCheck('us-west')).toBe(true);
    expect(events.at(-1)).toEqual(['us-west', 'shop/payments', false]);
    expect(registry.gatewayPassedCheck('us-west')).toBe(false);
  });

  it('a peer gateway that came back ends every ejection of it, whatever the cause', () => {
    const { registry, events } = setup();
    fail(registry, 'shop/payments', 'us-west', ERRORS, 'response');
    fail(registry, 'shop/orders', 'us-west', ERRORS, 'transport');
    registry.unejectAll('us-west');
    expect(events.filter(([, , ejected]) => !ejected).map(([, service]) => service).sort()).toEqual(['shop/orders', 'shop/payments']);
    expect(registry.describe()).toEqual({});
  });

  it('never ejects more than maxEjectionPercent of a service’s clusters', () => {
    const { registry, events } = setup();
    // 50 % of 2 clusters: one may be out, not both.
    fail(registry, 'shop/payments', 'us-west', ERRORS, 'response', 2);
    fail(registry, 'shop/payments', 'eu-west', ERRORS, 'response', 2);
    expect(events).toEqual([['us-west', 'shop/payments', true]]);
  });

  it('takes a service’s own settings from a TrafficPolicy, and follows a new view', () => {
    const { registry, publisher, events } = setup();
    fail(registry, 'shop/payments', 'us-west', 1);
    const result = compilePolicySet([{ document: { apiVersion: 'fedgate.io/v1alpha1', kind: 'TrafficPolicy', metadata: { name: 'payments', namespace: 'shop' }, spec: { service: 'payments', outlierDetection: { consecutiveErrors: 2 } } }, source: 'traffic.yaml' }]);
    expect(result.issues).toEqual([]);
    registry.onView(publisher.update({ policies: new PolicyIndex(result.set) }));
    fail(registry, 'shop/payments', 'us-west', 1);
    expect(events).toEqual([['us-west', 'shop/payments', true]]);
    // A detector made under the new view starts with the policy's settings.
    fail(registry, 'shop/payments', 'eu-west', 2, 'response', 10);
    expect(events.at(-1)).toEqual(['eu-west', 'shop/payments', true]);
  });
});
