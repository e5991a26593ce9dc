import { PassThrough } from 'node:stream';
import { Registry } from '../../admin/metrics.js';
import { gatewayDefaultsShape, type GatewayDefaults } from '../../config/federation-config.js';
import { ManualClock } from '../../core/clock.js';
import { createSilentLogger } from '../../core/logger.js';
import { failure, NO_TRAILERS, type Outcome } from '../request/outcome.js';
import { GatewayMetrics } from '../request/request-metrics.js';
import { ControlViewPublisher } from '../view/control-view.js';
import { FailoverTracker } from './failover-tracker.js';
import { HealthChecker } from './health-checker.js';
import { OutlierRegistry } from './outlier-registry.js';
import { failureCause, observeUpstream } from './upstream-observer.js';

function response(status: number): Outcome {
  return { kind: 'response', response: { status, headers: {}, body: new PassThrough(), trailers: NO_TRAILERS, cluster: 'us-west', discard: () => undefined } };
}

describe('failureCause', () => {
  it.each<[string, Outcome, string | undefined]>([
    ['connect failure', failure('connect-failed', 'x'), 'transport'],
    ['reset', failure('upstream-reset', 'x'), 'transport'],
    ['timeout', failure('timeout', 'x'), 'response'],
    ['a refusal of our own', failure('denied', 'x'), undefined],
    ['502', response(502), 'response'],
    ['503', response(503), 'response'],
    ['504', response(504), 'response'],
    ['500 (the application answered)', response(500), undefined],
    ['200', response(200), undefined],
  ])('%s', (_name, outcome, cause) => {
    expect(failureCause(outcome)).toBe(cause);
  });
});

describe('observeUpstream', () => {
  it('feeds outlier detection, the failover timer and, for a peer’s connect failure, its health check', async () => {
    const defaults = gatewayDefaultsShape.defaultFactory?.() as GatewayDefaults;
    const view = new ControlViewPublisher(
      { cluster: 'us-east', region: 'us-east-1', zone: 'a', trustDomain: 'us-east.acme.internal', labels: {} },
      { federation: 'acme', defaults, localExports: { exports: new Map(), source: 'test' }, catalog: { epoch: 'e', revision: 1, policyRevision: 0, clusters: new Map(), services: new Map(), bundles: new Map(), policies: new Map() } },
    ).current;
    const clock = new ManualClock(0);
    const outliers = new OutlierRegistry({ view, publish: () => undefined, log: createSilentLogger(), clock });
    const ejected: string[] = [];
    outliers.onEjection((cluster, _s, e) => e && ejected.push(cluster));
    const health = new HealthChecker({ intervalMs: 1000, timeoutMs: 100, unhealthyThreshold: 2, healthyThreshold: 1 }, async () => 1, createSilentLogger());
    health.setPeers(['us-west', 'us-east']);
    const metrics = new GatewayMetrics(new Registry());
    const failovers = new FailoverTracker(metrics, clock);
    const observe = observeUpstream({ localCluster: 'us-east', outliers, health, failovers });
    const exchange = { route: { key: 'shop/payments', targets: ['us-east', 'us-west', 'eu-west', 'ap-south'] } };

    observe(exchange, 'us-west', failure('connect-failed', 'refused'));
    observe(exchange, 'us-west', failure('connect-failed', 'refused'));
    expect(health.isAlive('us-west')).toBe(false);
    // The local cluster has no health check: its failures go to outlier detection only.
    observe(exchange, 'us-east', failure('connect-failed', 'refused'));
    observe(exchange, 'us-east', failure('connect-failed', 'refused'));
    expect(health.isAlive('us-east')).toBe(true);

    for (let i = 0; i < defaults.outlierDetection.consecutiveErrors; i++) observe(exchange, 'eu-west', response(503));
    expect(ejected).toEqual(['eu-west']);
    clock.advance(1500);
    failovers.movedAway('eu-west', 'outlier-ejection');
    const seconds = (await metrics.failoverSeconds.get()).values.find((v) => v.metricName?.endsWith('_sum') && v.labels.destination_cluster === 'eu-west');
    expect(seconds?.value).toBe(1.5);

    // A success resets the count: no ejection of ap-south.
    for (let i = 0; i < defaults.outlierDetection.consecutiveErrors - 1; i++) observe(exchange, 'ap-south', response(503));
    observe(exchange, 'ap-south', response(200));
    observe(exchange, 'ap-south', response(503));
    expect(ejected).toEqual(['eu-west']);
  });
});
