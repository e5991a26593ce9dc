/**
 * The alert rules on a live federation: a real Prometheus (Debian's `prometheus`, the package that
 * brings promtool) scrapes a controller and two gateways running as real processes, loads
 * deploy/monitoring/rules/fedgate.rules.yml and evaluates it every second. A healthy federation
 * raises nothing; a gateway killed with SIGKILL makes FedgateGatewayDown and, from its peer,
 * FedgatePeerClusterUnreachable pending, with the labels the runbook names. This is what the unit
 * tests (promtool test rules) cannot show: that the rules select the series fedgate really exports,
 * labelled as it really labels them. The targets carry `job` and `pod` as the PodMonitor and
 * ServiceMonitor give them.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { LocalFederation } from '../support/federation.js';
import { freePort } from '../support/ports.js';
import { httpGet, waitForHttp } from '../support/processes.js';

const RULES = join(process.cwd(), 'deploy', 'monitoring', 'rules', 'fedgate.rules.yml');
const CLUSTERS = ['us-east', 'us-west'] as const;

interface Sample {
  metric: Record<string, string>;
  value: [number, string];
}

let federation: LocalFederation;
let prometheus: ChildProcess | undefined;
let prometheusLog = '';
let prometheusUrl = '';
let dir = '';

async function query(expr: string): Promise<Sample[]> {
  const response = await httpGet(`${prometheusUrl}/api/v1/query?query=${encodeURIComponent(expr)}`);
  const body = JSON.parse(response.body) as { status: string; error?: string; data?: { resultType: string; result: Sample[] } };
  if (body.status !== 'success') throw new Error(`${expr}: ${body.error ?? response.body}`);
  return body.data?.result ?? [];
}

/** Polls a query until `accept` holds for its result; the last result is in the error otherwise. */
async function waitForQuery(expr: string, accept: (samples: Sample[]) => boolean, timeoutMs = 30_000): Promise<Sample[]> {
  const deadline = Date.now() + timeoutMs;
  let last: Sample[] = [];
  for (;;) {
    last = await query(expr);
    if (accept(last)) return last;
    if (Date.now() > deadline) throw new Error(`${expr} did not reach the expected result within ${timeoutMs} ms; last: ${JSON.stringify(last)}\nprometheus:\n${prometheusLog.slice(-3000)}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

const alertExpressions = (): Array<{ alert: string; expr: string }> =>
  (parse(readFileSync(RULES, 'utf8')) as { groups: Array<{ rules: Array<{ alert: string; expr: string }> }> }).groups.flatMap((g) => g.rules.map((r) => ({ alert: r.alert, expr: r.expr })));

beforeAll(async () => {
  federation = await LocalFederation.create(
    CLUSTERS.map((name, i) => ({ name, region: `region-${i}`, zone: `region-${i}a` })),
    { controller: {} },
  );
  await federation.startAll();

  dir = mkdtempSync(join(tmpdir(), 'fedgate-prometheus-'));
  const port = await freePort();
  prometheusUrl = `http://127.0.0.1:${port}`;
  const controller = federation.controller?.ports.admin as number;
  const config = {
    global: { scrape_interval: '1s', scrape_timeout: '900ms', evaluation_interval: '1s' },
    rule_files: [RULES],
    scrape_configs: [
      { job_name: 'fedgate-gateway', static_configs: CLUSTERS.map((name) => ({ targets: [`127.0.0.1:${federation.cluster(name).ports.admin}`], labels: { pod: `fedgate-gateway-${name}` } })) },
      { job_name: 'fedgate-controller', static_configs: [{ targets: [`127.0.0.1:${controller}`], labels: { pod: 'fedgate-controller-0' } }] },
    ],
  };
  writeFileSync(join(dir, 'prometheus.yml'), JSON.stringify(config));
  prometheus = spawn('prometheus', [`--config.file=${join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`], { stdio: ['ignore', 'pipe', 'pipe'] });
  const collect = (chunk: Buffer): void => {
    prometheusLog = (prometheusLog + chunk.toString('utf8')).slice(-20_000);
  };
  prometheus.stdout?.on('data', collect);
  prometheus.stderr?.on('data', collect);
  const started = new Promise<void>((resolve, reject) => {
    prometheus?.once('error', (error) => reject(new Error(`prometheus: ${error.message} (the Debian package "prometheus": run tools/setup.sh)`)));
    prometheus?.once('spawn', () => resolve());
  });
  await started;
  await waitForHttp(`${prometheusUrl}/-/ready`, 200, 30_000);
}, 90_000);

afterAll(async () => {
  if (prometheus && prometheus.exitCode === null) {
    const exited = new Promise((resolve) => prometheus?.once('exit', resolve));
    prometheus.kill('SIGTERM');
    await exited;
  }
  await federation?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('alert rules on a live federation, evaluated by Prometheus', () => {
  it('scrape the controller and the gateways; a healthy federation raises no alert', async () => {
    await waitForQuery('up == 1', (s) => s.length === CLUSTERS.length + 1);
    await waitForQuery('fedgate_upstream_healthy == 1', (s) => s.length === CLUSTERS.length);
    await waitForQuery('sum(fedgate_controller_leader) == 1 and min(fedgate_controller_store_up) == 1', (s) => s.length === 1);

    // The certificates: each gateway's SVID (24 h by default, renewed at half-life) and both
    // clusters' bundles, whose CAs last years.
    const now = Date.now() / 1000;
    const svids = await waitForQuery('fedgate_certificate_expiry_timestamp_seconds{kind="svid"}', (s) => s.length === CLUSTERS.length);
    for (const svid of svids) {
      expect(Number(svid.value[1]) - now).toBeGreaterThan(23 * 3600);
      expect(Number(svid.value[1]) - now).toBeLessThanOrEqual(24 * 3600 + 60);
      expect(svid.metric.trust_domain).toBe(`${svid.metric.cluster}.test.internal`);
    }
    const renewals = await query('fedgate_certificate_expiry_timestamp_seconds{kind="svid"} - fedgate_certificate_renewal_timestamp_seconds{kind="svid"}');
    // Renewal at half the lifetime, counted from when the certificate arrived (a minute's slack
    // either way for the scrape and the clock).
    expect(renewals).toHaveLength(CLUSTERS.length);
    for (const renewal of renewals) expect(Number(renewal.value[1]) / 60).toBeGreaterThanOrEqual(12 * 60 - 1);
    for (const renewal of renewals) expect(Number(renewal.value[1]) / 60).toBeLessThan(12 * 60 + 10);
    const bundles = await query('fedgate_certificate_expiry_timestamp_seconds{kind="bundle"}');
    expect(bundles.map((s) => `${s.metric.cluster} holds ${s.metric.trust_domain}`).sort()).toEqual(CLUSTERS.flatMap((c) => CLUSTERS.map((d) => `${c} holds ${d}.test.internal`)).sort());
    for (const bundle of bundles) expect(Number(bundle.value[1]) - now).toBeGreaterThan(365 * 86400);

    // Each rule's expression finds nothing, and Prometheus holds no alert, pending or firing (a
    // gateway that started before its peer may have seen it down for a moment: an alert from then
    // lasts until the next rule evaluation).
    const firing = await Promise.all(alertExpressions().map(async ({ alert, expr }) => ({ alert, result: (await query(expr)).map((s) => s.metric) })));
    expect(firing.filter((f) => f.result.length > 0)).toEqual([]);
    await waitForQuery('ALERTS', (s) => s.length === 0, 10_000);
  }, 120_000);

  it('run every query of the Grafana dashboard (valid PromQL, the panels of the live series have data)', async () => {
    const dashboard = JSON.parse(readFileSync(join(process.cwd(), 'deploy', 'grafana', 'fedgate-dashboard.json'), 'utf8')) as { panels: Array<{ title: string; targets?: Array<{ expr: string }> }> };
    // Counters need two scrapes inside the rate window before rate() has a value.
    await waitForQuery('rate(fedgate_process_cpu_seconds_total[1m])', (s) => s.length === CLUSTERS.length + 1);
    // Grafana's variables as the dashboard's defaults ("All") and typical intervals.
    const substitute = (expr: string): string => expr.replaceAll('$__rate_interval', '1m').replaceAll('$__range', '1h').replace(/\$(source_cluster|service)\b/g, '.*');
    const results = await Promise.all(
      dashboard.panels.flatMap((panel) => (panel.targets ?? []).map(async (target) => ({ panel: panel.title, series: (await query(substitute(target.expr))).length }))),
    );
    expect(results.length).toBeGreaterThan(30);
    const withData = new Set(results.filter((r) => r.series > 0).map((r) => r.panel));
    for (const panel of ['Upstream health (remote gateways)', 'Gateway sessions by replica', 'Leaders', 'Trust bundles: time to expiry', 'Gateway certificates: time to expiry', 'Gateways behind', 'Gateways refusing (NACK)', 'CPU by process']) {
      expect({ panel, hasData: withData.has(panel) }).toEqual({ panel, hasData: true });
    }
  }, 60_000);

  it('raise FedgateGatewayDown and FedgatePeerClusterUnreachable when a gateway is killed', async () => {
    await federation.cluster('us-west').process?.kill('SIGKILL');

    const down = await waitForQuery('ALERTS{alertname="FedgateGatewayDown"}', (s) => s.length === 1);
    expect(down[0]?.metric).toMatchObject({ alertstate: 'pending', severity: 'warning', job: 'fedgate-gateway', pod: 'fedgate-gateway-us-west', instance: `127.0.0.1:${federation.cluster('us-west').ports.admin}` });

    const unreachable = await waitForQuery('ALERTS{alertname="FedgatePeerClusterUnreachable"}', (s) => s.length === 1);
    expect(unreachable[0]?.metric).toMatchObject({ alertstate: 'pending', severity: 'critical', cluster: 'us-east', destination_cluster: 'us-west' });

    // The controller is untouched by a gateway's death.
    expect(await query('ALERTS{alertname=~"FedgateController.*"}')).toEqual([]);
  }, 90_000);
});
