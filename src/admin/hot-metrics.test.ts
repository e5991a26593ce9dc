import { Counter, Histogram, HotCounter, HotHistogram, Registry } from './metrics.js';

const BUCKETS = [0.001, 0.01, 0.1, 1];

describe('HotCounter and HotHistogram', () => {
  it('expose exactly what prom-client exposes for the same requests', async () => {
    const hot = new Registry();
    const reference = new Registry();
    for (const registry of [hot, reference]) registry.setDefaultLabels({ cluster: 'us-east' });
    const hotCounter = new HotCounter(hot, 'x_requests_total', 'Requests');
    const hotHistogram = new HotHistogram(hot, 'x_duration_seconds', 'Duration', BUCKETS);
    const refCounter = new Counter({ name: 'x_requests_total', help: 'Requests', labelNames: ['service', 'code'], registers: [reference] });
    const refHistogram = new Histogram({ name: 'x_duration_seconds', help: 'Duration', labelNames: ['service'], buckets: BUCKETS, registers: [reference] });
    const observations: Array<[string, string, number]> = [
      ['a/b', '200', 0.0004],
      ['a/b', '200', 0.001],
      ['a/b', '503', 0.05],
      ['c/d', '200', 3],
      ['a/b', '200', 0.7],
    ];
    for (const [service, code, seconds] of observations) {
      hotCounter.labels({ service, code }).value += 1;
      hotHistogram.labels({ service }).observe(seconds);
      refCounter.inc({ service, code });
      refHistogram.observe({ service }, seconds);
    }
    expect(await hot.metrics()).toBe(await reference.metrics());
  });

  it('keeps one series per label set and resets to zero', async () => {
    const registry = new Registry();
    const counter = new HotCounter(registry, 'y_total', 'y');
    const first = counter.labels({ service: 'a' });
    expect(counter.labels({ service: 'a' })).toBe(first);
    first.value += 2;
    expect(await registry.metrics()).toContain('y_total{service="a"} 2');
    registry.resetMetrics();
    expect(await registry.metrics()).toContain('y_total{service="a"} 0');
  });
});
