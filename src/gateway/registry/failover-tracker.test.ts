import { Registry } from '../../admin/metrics.js';
import { ManualClock } from '../../core/clock.js';
import { GatewayMetrics } from '../request/request-metrics.js';
import { FailoverTracker } from './failover-tracker.js';

async function failovers(metrics: GatewayMetrics): Promise<Array<[string, string, number]>> {
  return (await metrics.failovers.get()).values.map((v) => [String(v.labels.destination_cluster), String(v.labels.reason), v.value]);
}

async function timed(metrics: GatewayMetrics, cluster: string): Promise<{ count: number; sum: number }> {
  const values = (await metrics.failoverSeconds.get()).values.filter((v) => v.labels.destination_cluster === cluster);
  return { count: values.find((v) => v.metricName?.endsWith('_count'))?.value ?? 0, sum: values.find((v) => v.metricName?.endsWith('_sum'))?.value ?? 0 };
}

describe('FailoverTracker', () => {
  it('times a failover from the first failure seen to traffic moved away, once per outage', async () => {
    const metrics = new GatewayMetrics(new Registry());
    const clock = new ManualClock(10_000);
    const tracker = new FailoverTracker(metrics, clock);
    tracker.failureSeen('us-west');
    clock.advance(400);
    tracker.failureSeen('us-west'); // later failures do not move the start
    clock.advance(850);
    tracker.movedAway('us-west', 'health-check');
    tracker.movedAway('us-west', 'outlier-ejection'); // the same outage
    expect(await failovers(metrics)).toEqual([['us-west', 'health-check', 1]]);
    expect(await timed(metrics, 'us-west')).toEqual({ count: 1, sum: 1.25 });
  });

  it('counts a new failover after the cluster recovered, timed from zero when no failure was seen', async () => {
    const metrics = new GatewayMetrics(new Registry());
    const clock = new ManualClock(0);
    const tracker = new FailoverTracker(metrics, clock);
    tracker.movedAway('eu-west', 'outlier-ejection');
    tracker.recovered('eu-west');
    tracker.failureSeen('eu-west');
    clock.advance(2000);
    tracker.recovered('eu-west'); // recovered before it failed over: that failure is forgotten
    clock.advance(1000);
    tracker.movedAway('eu-west', 'outlier-ejection');
    expect(await failovers(metrics)).toEqual([['eu-west', 'outlier-ejection', 2]]);
    expect(await timed(metrics, 'eu-west')).toEqual({ count: 2, sum: 0 });
  });
});
