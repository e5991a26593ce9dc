/**
 * The metrics fedgate exports, read from where they are defined, so that queries in deploy/ (the
 * Grafana dashboard, the alert rules) can be checked against them without a running federation:
 *
 * - `counter(registry, 'fedgate_x', 'help', ['label', …])`, and `gauge(` / `histogram(` alike
 *   (src/admin/metrics.ts's helpers);
 * - `new HotCounter(registry, 'fedgate_x', …)` / `new HotHistogram(…)`, whose labels are the keys
 *   of the `this.<field>.labels({ … })` calls in the same file;
 * - `new Gauge({ name: 'fedgate_x', …, labelNames: [ … ] })` (and Counter, Histogram);
 * - prom-client's default metrics, as createMetricsRegistry() registers them (`fedgate_process_*`,
 *   `fedgate_nodejs_*`), read from a real registry.
 *
 * Every `'fedgate_…'` string in src/ must be one of these definitions: a metric defined some other
 * way fails the catalog instead of being missed.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { createMetricsRegistry } from '../../src/admin/metrics.js';

export type MetricType = 'counter' | 'gauge' | 'histogram' | 'summary';

export interface MetricDefinition {
  name: string;
  type: MetricType;
  labels: string[];
  /** file:line of the definition, or "prom-client default metrics". */
  where: string;
}

/** Labels every fedgate process adds to all of its metrics (createMetricsRegistry's default labels). */
export const PROCESS_LABELS = ['component', 'cluster'];

/** Labels Prometheus (and the operator's ServiceMonitor / PodMonitor) adds to every scraped series. */
export const TARGET_LABELS = ['job', 'instance', 'namespace', 'pod', 'container', 'endpoint'];

/** Series Prometheus itself writes for every target. */
export const PROMETHEUS_METRICS: MetricDefinition[] = [{ name: 'up', type: 'gauge', labels: [], where: 'Prometheus (one per target)' }];

function sourceFiles(dir: string): string[] {
  return readdirSync(dir)
    .sort()
    .flatMap((name) => {
      const path = join(dir, name);
      if (statSync(path).isDirectory()) return name === 'gen' ? [] : sourceFiles(path);
      return name.endsWith('.ts') && !name.endsWith('.test.ts') ? [path] : [];
    });
}

function lineOf(text: string, index: number): number {
  return text.slice(0, index).split('\n').length;
}

function stringList(list: string | undefined): string[] {
  return [...(list ?? '').matchAll(/'([^']*)'/g)].map((m) => m[1] as string);
}

const STRING = String.raw`'(?:[^'\\]|\\.)*'`;
const HELPER = new RegExp(String.raw`\b(counter|gauge|histogram)\(\s*[\w.]+,\s*'(fedgate_\w+)',\s*${STRING}(?:,\s*(\[[^\]]*\]))?`, 'g');
const HOT = /(?:this\.(\w+)\s*=\s*)?new Hot(Counter|Histogram)\(\s*[\w.]+,\s*'(fedgate_\w+)'/g;
const CLASS = /new (Counter|Gauge|Histogram)\(\{\s*name:\s*'(fedgate_\w+)'/g;

/** Metric definitions in the TypeScript sources under `srcDir`. */
export function definitionsInSources(root: string, srcDir = join(root, 'src')): MetricDefinition[] {
  const definitions: MetricDefinition[] = [];
  const unexplained: string[] = [];
  for (const file of sourceFiles(srcDir)) {
    const text = readFileSync(file, 'utf8');
    const where = (index: number): string => `${relative(root, file)}:${lineOf(text, index)}`;
    const found = new Set<number>();
    for (const m of text.matchAll(HELPER)) {
      definitions.push({ name: m[2] as string, type: m[1] as MetricType, labels: stringList(m[3]), where: where(m.index) });
      found.add(m.index + m[0].indexOf(`'${m[2]}'`));
    }
    for (const m of text.matchAll(HOT)) {
      const field = m[1];
      // The label sets this metric is updated with: `this.<field>.labels({ a, b: x, … })`.
      const labels = new Set<string>();
      if (field) {
        for (const call of text.matchAll(new RegExp(String.raw`this\.${field}\.labels\(\{([^}]*)\}`, 'g'))) {
          for (const entry of (call[1] as string).split(',')) {
            const key = entry.split(':')[0]?.trim();
            if (key) labels.add(key);
          }
        }
      }
      if (labels.size === 0) throw new Error(`${where(m.index)}: ${m[3]} is a Hot${m[2]} whose labels are not set through this.<field>.labels({ … }) in its file`);
      definitions.push({ name: m[3] as string, type: m[2] === 'Counter' ? 'counter' : 'histogram', labels: [...labels], where: where(m.index) });
      found.add(m.index + m[0].indexOf(`'${m[3]}'`));
    }
    for (const m of text.matchAll(CLASS)) {
      // The options object ends before the next constructor call (or the file).
      const next = text.indexOf('new ', m.index + 4);
      const labelNames = /labelNames:\s*(\[[^\]]*\])/.exec(text.slice(m.index, next === -1 ? undefined : next));
      definitions.push({ name: m[2] as string, type: (m[1] as string).toLowerCase() as MetricType, labels: stringList(labelNames?.[1]), where: where(m.index) });
      found.add(m.index + m[0].indexOf(`'${m[2]}'`));
    }
    for (const m of text.matchAll(/'fedgate_\w+'/g)) {
      if (!found.has(m.index)) unexplained.push(`${where(m.index)}: ${m[0]}`);
    }
  }
  if (unexplained.length > 0) {
    throw new Error(`metric names defined in a way test/deploy/metric-catalog.ts does not read (teach it, so queries can be checked):\n${unexplained.join('\n')}`);
  }
  return definitions;
}

/** prom-client's default metrics, with the fedgate_ prefix, from a real registry. */
export function defaultMetrics(): MetricDefinition[] {
  const registry = createMetricsRegistry();
  return registry.getMetricsAsArray().map((metric) => {
    const { name, labelNames, type } = metric as unknown as { name: string; labelNames?: string[]; type: MetricType };
    return { name, type, labels: [...(labelNames ?? [])], where: 'prom-client default metrics' };
  });
}

/** Every metric a fedgate process exports, by name; a name defined twice fails. */
export function metricCatalog(root = process.cwd()): Map<string, MetricDefinition> {
  const catalog = new Map<string, MetricDefinition>();
  for (const definition of [...definitionsInSources(root), ...defaultMetrics()]) {
    const known = catalog.get(definition.name);
    if (known) throw new Error(`${definition.name} defined twice: ${known.where} and ${definition.where}`);
    catalog.set(definition.name, definition);
  }
  return catalog;
}

/**
 * The series names a metric appears under, with their labels: a histogram's `_bucket` (plus `le`),
 * `_sum` and `_count`; a summary's quantiles (`quantile`), `_sum`, `_count`.
 */
export function seriesNames(definition: MetricDefinition): Map<string, string[]> {
  const { name, labels, type } = definition;
  if (type === 'histogram') return new Map([[`${name}_bucket`, [...labels, 'le']], [`${name}_sum`, labels], [`${name}_count`, labels]]);
  if (type === 'summary') return new Map([[name, [...labels, 'quantile']], [`${name}_sum`, labels], [`${name}_count`, labels]]);
  return new Map([[name, labels]]);
}
