import { jest } from '@jest/globals';
import { Registry } from '../../admin/metrics.js';
import { gatewayDefaultsShape, type GatewayDefaults } from '../../config/federation-config.js';
import { ManualClock } from '../../core/clock.js';
import { createSilentLogger } from '../../core/logger.js';
import type { ClusterRecord } from '../../model/catalog.js';
import type { CatalogData } from '../control/catalog-replica.js';
import { GatewayMetrics } from '../request/request-metrics.js';
import { ControlViewPublisher } from '../view/control-view.js';
import { FailoverTracker } from './failover-tracker.js';
import { HealthChecker } from './health-checker.js';
import { OutlierRegistry } from './outlier-registry.js';
import { connectPeerHealth } from './peer-health.js';

const defaults = gatewayDefaultsShape.defaultFactory?.() as GatewayDefaults;

function record(name: string, state: ClusterRecord['state'] = 'active'): ClusterRecord {
  return { name, region: name, zone: 'a', trustDomain: `${name}.acme.internal`, gatewayAddresses: [], labels: {}, state, stateReason: '', stateChangedBy: '', stateChangedAt: 0, joinedAt: 0 };
}

function catalog(...clusters: ClusterRecord[]): CatalogData {
  return { epoch: 'e', revision: clusters.length, policyRevision: 0, clusters: new Map(clusters.map((c) => [c.name, c])), services: new Map(), bundles: new Map(), policies: new Map() };
}

function setup(): { views: ControlViewPublisher; health: HealthChecker; outliers: OutlierRegistry; metrics: GatewayMetrics; answers: Map<string, boolean>; clock: ManualClock; readonly pings: number } {
  const clock = new ManualClock(0);
  const views = new ControlViewPublisher({ cluster: 'us-east', region: 'us-east', zone: 'a', trustDomain: 'us-east.acme.internal', labels: {} }, { federation: 'acme', defaults, localExports: { exports: new Map(), source: 'test' }, catalog: catalog() });
  const answers = new Map<string, boolean>();
  const counter = { pings: 0 };
  const health = new HealthChecker({ intervalMs: 100, timeoutMs: 50, unhealthyThreshold: 1, healthyThreshold: 1 }, async (cluster) => {
    counter.pings += 1;
    if (answers.get(cluster) === false) throw new Error('refused');
    return 1;
  }, createSilentLogger());
  const outliers = new OutlierRegistry({ view: views.current, publish: (ejections) => views.update({ ejections }), log: createSilentLogger(), clock });
  const metrics = new GatewayMetrics(new Registry());
  connectPeerHealth({ health, outliers, failovers: new FailoverTracker(metrics, clock), views, metrics, log: createSilentLogger() });
  return {
    views,
    health,
    outliers,
    metrics,
    answers,
    clock,
    get pings() {
      return counter.pings;
    },
  };
}

async function gauge(metrics: GatewayMetrics): Promise<Record<string, number>> {
  return Object.fromEntries((await metrics.upstreamHealthy.get()).values.map((v) => [String(v.labels.destination_cluster), v.value]));
}

async function failovers(metrics: GatewayMetrics): Promise<Array<[string, string, number]>> {
  return (await metrics.failovers.get()).values.map((v) => [String(v.labels.destination_cluster), String(v.labels.reason), v.value]);
}

describe('connectPeerHealth', () => {
  beforeEach(() => jest.useFakeTimers());
  afterEach(() => jest.useRealTimers());

  it('checks the catalog’s other clusters (not those that left) and reports them healthy', async () => {
    const { views, health, metrics } = setup();
    views.update({ catalog: catalog(record('us-east'), record('us-west'), record('eu-west'), record('ap-south', 'left')) });
    expect(Object.keys(health.snapshot()).sort()).toEqual(['eu-west', 'us-west']);
    expect(await gauge(metrics)).toEqual({ 'us-west': 1, 'eu-west': 1 });
  });

  it('a peer that fails its check leaves the view and fails over; one that comes back returns and its ejections end', async () => {
    const { views, health, outliers, metrics, answers } = setup();
    views.update({ catalog: catalog(record('us-east'), record('us-west')) });
    for (let i = 0; i < defaults.outlierDetection.consecutiveErrors; i++) outliers.record('shop/payments', 'us-west', 'response', 4);
    expect(views.current.isEjected('shop/payments', 'us-west')).toBe(true);
    answers.set('us-west', false);
    health.start();
    await jest.advanceTimersByTimeAsync(0);
    expect(views.current.unhealthy).toEqual(new Set(['us-west']));
    expect(await gauge(metrics)).toEqual({ 'us-west': 0 });
    expect(await failovers(metrics)).toEqual([
      ['us-west', 'outlier-ejection', 1],
      ['us-west', 'health-check', 1],
    ]);

    answers.set('us-west', true);
    await jest.advanceTimersByTimeAsync(100);
    expect(views.current.unhealthy).toEqual(new Set());
    expect(await gauge(metrics)).toEqual({ 'us-west': 1 });
    expect(views.current.isEjected('shop/payments', 'us-west')).toBe(false);
    health.stop();
  });

  it('a passing check lifts an ejection that transport failures caused (failback driven by health)', async () => {
    const { views, health, outliers } = setup();
    views.update({ catalog: catalog(record('us-east'), record('us-west')) });
    for (let i = 0; i < defaults.outlierDetection.consecutiveErrors; i++) outliers.record('shop/payments', 'us-west', 'transport', 4);
    expect(views.current.isEjected('shop/payments', 'us-west')).toBe(true);
    health.start();
    await jest.advanceTimersByTimeAsync(0);
    expect(views.current.isEjected('shop/payments', 'us-west')).toBe(false);
    health.stop();
  });

  it('new defaults reconfigure the checks: a longer interval spaces them out', async () => {
    const s = setup();
    const { views, health } = s;
    views.update({ catalog: catalog(record('us-east'), record('us-west')) });
    health.start();
    await jest.advanceTimersByTimeAsync(100);
    expect(s.pings).toBe(2);
    views.update({ defaults: { ...defaults, healthCheck: { ...defaults.healthCheck, interval: 2000 } } });
    await jest.advanceTimersByTimeAsync(1999);
    expect(s.pings).toBe(3); // the check of the restart, then none until the new interval is up
    await jest.advanceTimersByTimeAsync(1);
    expect(s.pings).toBe(4);
    health.stop();
  });
});
