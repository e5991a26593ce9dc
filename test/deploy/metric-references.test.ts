/**
 * Every query shipped in deploy/ — the Grafana dashboard's panels and variables, the alert rules —
 * refers only to metrics fedgate defines, with labels those metrics have. The metrics are read from
 * their definitions in src/ (metric-catalog.ts), so a renamed metric or label fails here instead of
 * leaving an empty panel or an alert that can never fire.
 */
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { createMetricsRegistry } from '../../src/admin/metrics.js';
import { GatewayMetrics } from '../../src/gateway/request/request-metrics.js';
import { definitionsInSources, metricCatalog, PROCESS_LABELS, PROMETHEUS_METRICS, seriesNames, TARGET_LABELS, type MetricDefinition } from './metric-catalog.js';
import { promqlReferences } from './promql-references.js';

const ROOT = process.cwd();
const DASHBOARD = join(ROOT, 'deploy', 'grafana', 'fedgate-dashboard.json');
const ALERTS = join(ROOT, 'deploy', 'monitoring', 'fedgate-alerts.yaml');

/** Series name → label names it may be selected or grouped by. */
function seriesTable(catalog: Map<string, MetricDefinition>): Map<string, Set<string>> {
  const table = new Map<string, Set<string>>();
  for (const definition of [...catalog.values(), ...PROMETHEUS_METRICS]) {
    for (const [series, labels] of seriesNames(definition)) table.set(series, new Set([...labels, ...PROCESS_LABELS, ...TARGET_LABELS, '__name__']));
  }
  return table;
}

/** What is wrong with one query: unknown metrics, labels a selected metric does not have, grouping by labels none of them has. */
function queryProblems(expr: string, table: Map<string, Set<string>>): string[] {
  const { selectors, grouping } = promqlReferences(expr);
  const problems: string[] = [];
  const available = new Set<string>();
  if (selectors.length === 0) problems.push('selects no metric');
  for (const { metric, labels } of selectors) {
    const known = table.get(metric);
    if (!known) {
      problems.push(metric === '' ? 'a selector without a metric name' : `${metric}: not a metric fedgate exports`);
      continue;
    }
    for (const label of known) available.add(label);
    for (const label of labels) if (!known.has(label)) problems.push(`${metric}{${label}}: ${metric} has no label ${label}`);
  }
  for (const label of grouping) if (!available.has(label)) problems.push(`by/on ${label}: none of ${selectors.map((s) => s.metric).join(', ')} has label ${label}`);
  return problems;
}

interface Query {
  where: string;
  expr: string;
  /** A label the query reads values of (Grafana's label_values). */
  label?: string;
}

function dashboardQueries(): Query[] {
  const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as {
    panels: Array<{ title: string; targets?: Array<{ refId: string; expr: string }> }>;
    templating: { list: Array<{ name: string; type: string; query?: string | { query: string } }> };
  };
  const queries: Query[] = dashboard.panels.flatMap((panel) => (panel.targets ?? []).map((target) => ({ where: `panel "${panel.title}" ${target.refId}`, expr: target.expr })));
  for (const variable of dashboard.templating.list.filter((v) => v.type === 'query')) {
    const text = typeof variable.query === 'string' ? variable.query : (variable.query?.query ?? '');
    const labelValues = /^label_values\((.*),\s*(\w+)\)$/.exec(text.trim());
    if (!labelValues) throw new Error(`variable ${variable.name}: only label_values(<selector>, <label>) is checked here, not "${text}"`);
    queries.push({ where: `variable $${variable.name}`, expr: labelValues[1] as string, label: labelValues[2] as string });
  }
  return queries;
}

function alertQueries(): Query[] {
  const rule = parse(readFileSync(ALERTS, 'utf8')) as { spec: { groups: Array<{ name: string; rules: Array<{ alert?: string; record?: string; expr: string }> }> } };
  return rule.spec.groups.flatMap((group) => group.rules.map((r) => ({ where: `${group.name}/${r.alert ?? r.record}`, expr: String(r.expr) })));
}

function problemsOf(queries: Query[], table: Map<string, Set<string>>): string[] {
  return queries.flatMap((query) => {
    const problems = queryProblems(query.expr, table);
    if (query.label !== undefined) {
      const labels = new Set(promqlReferences(query.expr).selectors.flatMap((s) => [...(table.get(s.metric) ?? [])]));
      if (!labels.has(query.label)) problems.push(`label_values of ${query.label}, which the selected metrics do not have`);
    }
    return problems.map((p) => `${query.where}: ${p}`);
  });
}

describe('the metrics fedgate defines (test/deploy/metric-catalog.ts)', () => {
  it('reads every metric definition in src/, with its type and labels', () => {
    const catalog = metricCatalog();
    expect(catalog.get('fedgate_requests_total')).toMatchObject({ type: 'counter', labels: ['direction', 'source_cluster', 'destination_cluster', 'service', 'code'] });
    expect(catalog.get('fedgate_request_duration_seconds')).toMatchObject({ type: 'histogram', labels: ['direction', 'source_cluster', 'destination_cluster', 'service'] });
    expect(catalog.get('fedgate_authz_decisions_total')).toMatchObject({ type: 'counter', labels: ['service', 'decision', 'policy'] });
    expect(catalog.get('fedgate_controller_leader')).toMatchObject({ type: 'gauge', labels: [] });
    expect(catalog.get('fedgate_certificate_expiry_timestamp_seconds')).toMatchObject({ type: 'gauge', labels: ['kind', 'trust_domain'] });
    expect(catalog.get('fedgate_nodejs_eventloop_lag_p99_seconds')).toMatchObject({ type: 'gauge', where: 'prom-client default metrics' });
  });

  it('reads the labels of the request-path metrics as prom-client exports them', async () => {
    const registry = createMetricsRegistry();
    new GatewayMetrics(registry).request('outbound', 'us-west', 'us-east', 'default/payments', '200', 0.01);
    const exported = await registry.getMetricsAsJSON();
    const catalog = metricCatalog();
    for (const name of ['fedgate_requests_total', 'fedgate_request_duration_seconds']) {
      const values = exported.find((m) => m.name === name)?.values ?? [];
      const labels = new Set(values.flatMap((v) => Object.keys(v.labels)).filter((l) => l !== 'le'));
      expect({ name, labels: [...labels].sort() }).toEqual({ name, labels: [...(catalog.get(name)?.labels ?? [])].sort() });
    }
  });

  it('refuses a metric defined in a way it does not read, rather than miss it', () => {
    const dir = mkdtempSync(join(tmpdir(), 'fedgate-metric-catalog-'));
    try {
      mkdirSync(join(dir, 'src'));
      writeFileSync(join(dir, 'src', 'odd.ts'), "const name = 'fedgate_odd_total';\nexport const odd = registry.registerMetric(makeCounter(name));\n");
      expect(() => definitionsInSources(dir)).toThrow(/src\/odd\.ts:1: 'fedgate_odd_total'/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('queries in deploy/ refer to metrics and labels fedgate exports', () => {
  const table = seriesTable(metricCatalog());

  it('the Grafana dashboard (deploy/grafana/fedgate-dashboard.json)', () => {
    const queries = dashboardQueries();
    expect(queries.length).toBeGreaterThan(30);
    expect(problemsOf(queries, table)).toEqual([]);
  });

  it('the alert rules (deploy/monitoring/fedgate-alerts.yaml)', () => {
    const queries = alertQueries();
    expect(queries.length).toBeGreaterThan(10);
    expect(problemsOf(queries, table)).toEqual([]);
  });

  it('finds misspelt metrics, selector labels and grouping labels (the check has teeth)', () => {
    expect(queryProblems('sum(rate(fedgate_request_total[5m]))', table)).toEqual(['fedgate_request_total: not a metric fedgate exports']);
    expect(queryProblems('sum by (destination_clsuter) (rate(fedgate_requests_total[$__rate_interval]))', table)).toEqual(['by/on destination_clsuter: none of fedgate_requests_total has label destination_clsuter']);
    expect(queryProblems('fedgate_upstream_healthy{destination="us-east"} == 0', table)).toEqual(['fedgate_upstream_healthy{destination}: fedgate_upstream_healthy has no label destination']);
    expect(queryProblems('fedgate_authz_decisions_total{source_cluster="us-west"}', table)).toEqual(['fedgate_authz_decisions_total{source_cluster}: fedgate_authz_decisions_total has no label source_cluster']);
    expect(queryProblems('fedgate_requests_total_bucket', table)).toEqual(['fedgate_requests_total_bucket: not a metric fedgate exports']);
    expect(queryProblems('histogram_quantile(0.99, sum by (le) (rate(fedgate_request_duration_seconds_bucket{service=~"$service"}[5m])))', table)).toEqual([]);
    expect(queryProblems('up{job="fedgate-gateway"} == 0 and on(instance) fedgate_policy_revision{state="applied"} offset 5m', table)).toEqual([]);
  });
});
