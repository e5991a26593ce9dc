/**
 * Prometheus metrics through prom-client, which lives only in this folder. Each process makes one
 * registry; components receive it and register `fedgate_*` metrics on it.
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

export { Counter, Gauge, Histogram, Registry };

export function createMetricsRegistry(labels: Record<string, string> = {}): Registry {
  const registry = new Registry();
  registry.setDefaultLabels(labels);
  collectDefaultMetrics({ register: registry, prefix: 'fedgate_' });
  return registry;
}

export function counter<L extends string>(registry: Registry, name: string, help: string, labelNames: readonly L[] = []): Counter<L> {
  return new Counter({ name, help, labelNames: [...labelNames], registers: [registry] });
}

export function gauge<L extends string>(registry: Registry, name: string, help: string, labelNames: readonly L[] = []): Gauge<L> {
  return new Gauge({ name, help, labelNames: [...labelNames], registers: [registry] });
}

export function histogram<L extends string>(registry: Registry, name: string, help: string, labelNames: readonly L[] = [], buckets?: number[]): Histogram<L> {
  return new Histogram({ name, help, labelNames: [...labelNames], registers: [registry], ...(buckets ? { buckets } : {}) });
}

/** One label set of a HotCounter: increment `value` directly. */
export interface HotCounterSeries {
  value: number;
}

/** One label set of a HotHistogram. */
export interface HotHistogramSeries {
  observe(value: number): void;
}

type Labels = Record<string, string>;

/**
 * Metrics for the request path. prom-client hashes the label set on every `inc()`/`observe()`, even
 * through a labelled child; here each label set is a series object the caller keeps and updates
 * with plain arithmetic, and prom-client's registry sees the values only when scraped.
 */
abstract class HotMetric<S> {
  readonly aggregator = 'sum';
  protected readonly series = new Map<string, { labels: Labels; slot: S }>();

  constructor(
    registry: Registry,
    readonly name: string,
    readonly help: string,
  ) {
    registry.registerMetric(this as unknown as Parameters<Registry['registerMetric']>[0]);
  }

  protected abstract create(): S;

  /** The series of a label set (create once, keep the reference). */
  labels(labels: Labels): S {
    const key = JSON.stringify(labels);
    let entry = this.series.get(key);
    if (!entry) {
      entry = { labels: { ...labels }, slot: this.create() };
      this.series.set(key, entry);
    }
    return entry.slot;
  }
}

export class HotCounter extends HotMetric<HotCounterSeries> {
  readonly type = 'counter';

  protected create(): HotCounterSeries {
    return { value: 0 };
  }

  async get(): Promise<{ name: string; help: string; type: 'counter'; aggregator: 'sum'; values: Array<{ value: number; labels: Labels }> }> {
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values: [...this.series.values()].map((e) => ({ value: e.slot.value, labels: e.labels })) };
  }

  reset(): void {
    for (const entry of this.series.values()) entry.slot.value = 0;
  }
}

class HotHistogramSlot implements HotHistogramSeries {
  /** Per-bucket (not cumulative) counts; the last one is +Inf. */
  readonly counts: Float64Array;
  sum = 0;
  count = 0;

  constructor(private readonly bounds: readonly number[]) {
    this.counts = new Float64Array(bounds.length + 1);
  }

  observe(value: number): void {
    const bounds = this.bounds;
    let i = 0;
    while (i < bounds.length && value > (bounds[i] as number)) i++;
    this.counts[i] = (this.counts[i] as number) + 1;
    this.sum += value;
    this.count += 1;
  }
}

interface HistogramValue {
  value: number;
  labels: Record<string, string | number>;
  sharedLabels: Labels;
  metricName: string;
}

/** A histogram for the request path: per-bucket counts in a Float64Array, formatted at scrape time. */
export class HotHistogram extends HotMetric<HotHistogramSlot> {
  readonly type = 'histogram';

  constructor(
    registry: Registry,
    name: string,
    help: string,
    private readonly buckets: readonly number[],
  ) {
    super(registry, name, help);
  }

  protected create(): HotHistogramSlot {
    return new HotHistogramSlot(this.buckets);
  }

  /** What the registry formats for /metrics: label sets as prom-client's Histogram lays them out (shared labels last). */
  async getForPromString(): Promise<{ name: string; help: string; type: 'histogram'; aggregator: 'sum'; values: HistogramValue[] }> {
    const values: HistogramValue[] = [];
    for (const { labels, slot } of this.series.values()) {
      let cumulative = 0;
      for (let i = 0; i <= this.buckets.length; i++) {
        cumulative += slot.counts[i] as number;
        values.push({ value: cumulative, labels: { le: i < this.buckets.length ? (this.buckets[i] as number) : '+Inf' }, sharedLabels: labels, metricName: `${this.name}_bucket` });
      }
      values.push({ value: slot.sum, labels: {}, sharedLabels: labels, metricName: `${this.name}_sum` });
      values.push({ value: slot.count, labels: {}, sharedLabels: labels, metricName: `${this.name}_count` });
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }

  /** As JSON (getMetricsAsJSON): each value with all its labels. */
  async get(): Promise<{ name: string; help: string; type: 'histogram'; aggregator: 'sum'; values: Array<{ value: number; labels: Record<string, string | number>; metricName: string }> }> {
    const data = await this.getForPromString();
    return { ...data, values: data.values.map((v) => ({ value: v.value, labels: { ...v.labels, ...v.sharedLabels }, metricName: v.metricName })) };
  }

  reset(): void {
    for (const { slot } of this.series.values()) {
      slot.counts.fill(0);
      slot.sum = 0;
      slot.count = 0;
    }
  }
}
