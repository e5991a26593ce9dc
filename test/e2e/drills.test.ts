/**
 * `fedgate drill run` against a running federation (controller and three gateways as real
 * processes): drain through the controller, blackhole through the controller's admin API, kill of a
 * local gateway process; reports validated against the documented schema, objectives turned into
 * exit codes, drills visible in the controller's metrics and audit log.
 */
import { jest } from '@jest/globals';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { XMLValidator } from 'fast-xml-parser';
import { startHttpBackend } from '../../src/demo/sample-backends.js';
import type { DrillReport } from '../../src/drill/report.js';
import { eventually } from '../support/control-plane.js';
import { LocalFederation } from '../support/federation.js';
import { freePorts } from '../support/ports.js';
import { httpGet, runFedgate } from '../support/processes.js';

jest.setTimeout(180_000);

const schema = JSON.parse(readFileSync(join(process.cwd(), 'docs', 'drill-report.schema.json'), 'utf8')) as object;
const validateReport = new Ajv2020({ strict: true, allErrors: true, validateFormats: false }).compile(schema);

const POLICIES = `
apiVersion: fedgate.io/v1alpha1
kind: TrafficPolicy
metadata: {name: payments, namespace: shop}
spec:
  service: payments
  retries: {attempts: 2, perTryTimeout: 300ms, retryOn: [connect-failure, reset, unavailable, gateway-error]}
---
apiVersion: fedgate.io/v1alpha1
kind: TrafficPolicy
metadata: {name: ledger, namespace: shop}
spec:
  service: ledger
  retries: {attempts: 0}
  timeout: 1s
`;

describe('failover drills', () => {
  let federation: LocalFederation;
  let out: string;
  const backends: Array<{ close(): Promise<void> }> = [];

  beforeAll(async () => {
    out = mkdtempSync(join(tmpdir(), 'fedgate-drills-'));
    const [eastPort, westPort] = (await freePorts(2)) as [number, number];
    backends.push(await startHttpBackend('east', '127.0.0.1', eastPort), await startHttpBackend('west', '127.0.0.1', westPort));
    const http = (service: string, target: number) => ({ service, namespace: 'shop', ports: [{ name: 'http', port: 8080, targetPort: target, protocol: 'http' as const }] });
    federation = await LocalFederation.create(
      [
        { name: 'east', region: 'us-east', zone: 'a', exports: [http('payments', eastPort), http('ledger', eastPort)] },
        { name: 'west', region: 'us-west', zone: 'a', exports: [http('payments', westPort), http('ledger', westPort)] },
        { name: 'edge', region: 'eu-west', zone: 'a' },
      ],
      { controller: {}, policies: { 'drills.yaml': POLICIES } },
    );
    await federation.startAll();
    const policies = await runFedgate(['policy', 'apply', '-f', join(federation.dir, 'policies'), ...federation.cliTarget()]);
    expect(policies.code).toBe(0);
    await eventually(async () => {
      const config = JSON.parse((await httpGet(`${federation.adminUrl('edge')}/config`)).body) as { policies: { inSync: boolean; appliedRevision: number }; catalog: { services: Array<{ exporters?: unknown[] }> } };
      return config.policies.inSync && config.policies.appliedRevision > 0 && config.catalog.services.length === 2;
    }, 'edge holds both services and the policies', 20_000);
  });

  afterAll(async () => {
    // The kill drill restarted east's gateway on its own (as an operator's host would): stop that one too.
    const pidFile = join(federation.dir, 'state', 'east', 'gateway.pid');
    if (existsSync(pidFile)) {
      try {
        process.kill(Number(readFileSync(pidFile, 'utf8').trim()), 'SIGTERM');
      } catch {
        // already gone
      }
    }
    await federation?.stop();
    for (const b of backends) await b.close();
    rmSync(out, { recursive: true, force: true });
  });

  async function drill(mode: string, args: string[], duration = '4s'): Promise<{ code: number | null; stdout: string; stderr: string; report: DrillReport; dir: string }> {
    const dir = join(out, `${mode}-${args.join('').length}-${Date.now()}`);
    const result = await runFedgate(['drill', 'run', '--from', 'edge', '--fail', 'east', '--mode', mode, '--duration', duration, '--rps', '100', '--target', federation.outbound('edge'), '--from-admin', `127.0.0.1:${federation.cluster('edge').ports.admin}`, '--out', dir, ...args, ...federation.cliTarget()], { timeoutMs: 60_000 });
    if (!existsSync(join(dir, 'report.json'))) throw new Error(`no report (exit ${result.code}):\n${result.stdout}\n${result.stderr}`);
    const report = JSON.parse(readFileSync(join(dir, 'report.json'), 'utf8')) as DrillReport;
    if (!validateReport(report)) throw new Error(`report does not match docs/drill-report.schema.json: ${JSON.stringify(validateReport.errors)}`);
    expect(XMLValidator.validate(readFileSync(join(dir, 'timeline.svg'), 'utf8'))).toBe(true);
    expect(readFileSync(join(dir, 'report.md'), 'utf8')).toContain(`# Drill: ${mode} east`);
    // The pre-flight ran before any traffic, and its checks are in the report.
    expect(report.preflight.map((p) => p.check)).toEqual(['controller', 'cluster edge', 'cluster east', 'service', 'target', 'edge gateway health', ...(mode === 'kill' ? ['gateway process'] : []), 'drill lock']);
    expect(report.preflight.every((p) => p.ok)).toBe(true);
    // After the load, the restored cluster was checked in the federation's status.
    expect(report.postflight.map((p) => p.check)).toEqual(['cluster east after the restore']);
    return { ...result, report, dir };
  }

  async function audit(): Promise<Array<{ action: string; target: string; detail: string }>> {
    return (JSON.parse((await runFedgate(['status', '-o', 'json', ...federation.cliTarget()])).stdout) as { audit: Array<{ action: string; target: string; detail: string }> }).audit;
  }

  it('drain: traffic leaves the drained cluster without a failed request, and comes back after undrain', async () => {
    const { code, stdout, report } = await drill('drain', ['--service', 'payments.shop', '--max-errors', '0', '--max-failover-seconds', '1']);
    expect({ code, stdout }).toEqual({ code: 0, stdout: expect.stringContaining('PASSED') });
    expect(report.verdict).toBe('PASSED');
    expect(stdout).toContain(`  reason: ${report.reason}`);
    expect(report.postflight[0]).toMatchObject({ ok: true, detail: expect.stringMatching(/^active, gateway connected, catalog \d+ and policies \d+ applied$/) });
    expect(report.failover.baselineShareOfFailing).toBeGreaterThan(0.2);
    expect(report.errors.total).toBe(0);
    expect(report.failover.fullFailoverMs).not.toBeNull();
    expect(report.failover.fullFailoverMs as number).toBeLessThanOrEqual(1000);
    expect(report.failover.firstSuccessElsewhereMs as number).toBeLessThanOrEqual(report.failover.fullFailoverMs as number);
    expect(report.failover.resolutionMs).toBe(10);
    expect(report.failback.firstSuccessFromRestoredMs).not.toBeNull();
    expect(report.failback.shareAfterRecovery).toBeGreaterThan(0.2);
    const status = JSON.parse((await runFedgate(['status', '-o', 'json', ...federation.cliTarget()])).stdout) as { clusters: Array<{ name: string; state: string }>; audit: Array<{ action: string; target: string }> };
    expect(status.clusters.find((c) => c.name === 'east')?.state).toBe('active');
    expect(status.audit.map((a) => a.action).slice(0, 4)).toEqual(['drill-end', 'undrain', 'drain', 'drill-start']);
    const metrics = (await httpGet(`http://127.0.0.1:${federation.controller?.ports.admin}/metrics`)).body;
    expect(metrics).toMatch(/fedgate_drill_runs_total\{service="shop\/payments",mode="drain",outcome="passed"[^}]*\} 1/);
    expect(metrics).toMatch(/fedgate_drill_running\{service="shop\/payments",mode="drain"[^}]*\} 0/);
  });

  it('kill: SIGKILL of the local gateway; idempotent requests are retried elsewhere; the gateway is restarted', async () => {
    // Long enough that the restarted gateway (a new process: start, rejoin, first health check)
    // is back within the recovery quarter even on a loaded machine.
    const { code, stdout, report } = await drill('kill', ['--service', 'payments.shop', '--fail-config', federation.cluster('east').file, '--max-errors', '0', '--max-failover-seconds', '1'], '10s');
    expect({ code, stdout }).toEqual({ code: 0, stdout: expect.stringContaining('PASSED') });
    expect(report.failover.baselineShareOfFailing).toBeGreaterThan(0.2);
    expect(report.errors.total).toBe(0);
    expect(report.failover.fullFailoverMs as number).toBeLessThanOrEqual(1000);
    expect(report.failback.firstSuccessFromRestoredMs).not.toBeNull();
    expect((await httpGet(`${federation.adminUrl('east')}/readyz`)).status).toBe(200);
  });

  it('blackhole with no failback is FAILED: the restored cluster stays ejected for the service longer than the failback objective', async () => {
    const { code, stdout, report } = await drill('blackhole', ['--service', 'payments.shop', '--max-errors', '1000', '--max-failback-seconds', '2', '-o', 'json']);
    expect(code).toBe(1);
    // -o json prints the report itself.
    expect((JSON.parse(stdout) as DrillReport).reason).toBe(report.reason);
    expect(report.verdict).toBe('FAILED');
    expect(report.failover.baselineShareOfFailing).toBeGreaterThan(0.2);
    // Requests that went to east first waited out the 300ms per-try timeout before their retry.
    expect(report.phases.failure.p99Ms as number).toBeGreaterThanOrEqual(290);
    // Those timeouts ejected east for payments (outlier detection): it does not take the service
    // back within the 2 s failback objective. The drill kept the load going that long before judging.
    expect(report.objectives.missed).toContainEqual(expect.stringMatching(/^(no failback: east served no request in the \d+\.\d+s after the restore \(|failback took \d+\.\d+s, more than )--max-failback-seconds 2\)?$/));
    expect(report.marks.endAt - report.marks.restoreAt).toBeGreaterThanOrEqual(2000);
    console.log(`blackhole of payments at east: failback ${report.failback.firstSuccessFromRestoredMs === null ? 'not within 2.5 s' : `after ${report.failback.firstSuccessFromRestoredMs} ms`}; ${report.errors.total} errors (${Object.keys(report.errors.byReason).join(', ')})`);
    const config = JSON.parse((await httpGet(`${federation.adminUrl('east')}/config`)).body) as { blackholed: string[] };
    expect(config.blackholed).toEqual([]);
    const metrics = (await httpGet(`http://127.0.0.1:${federation.controller?.ports.admin}/metrics`)).body;
    expect(metrics).toMatch(/fedgate_drill_runs_total\{service="shop\/payments",mode="blackhole",outcome="failed"[^}]*\} 1/);
  });

  it('exits 1 when the drill misses its objectives (a blackhole without retries loses requests), errors grouped by cause', async () => {
    const { code, stdout, report } = await drill('blackhole', ['--service', 'ledger.shop', '--max-errors', '0']);
    expect(code).toBe(1);
    expect(stdout).toContain('FAILED');
    expect(report.failover.baselineShareOfFailing).toBeGreaterThan(0.2);
    expect(report.objectives.passed).toBe(false);
    expect(report.objectives.missed[0]).toMatch(/^\d+ errors, more than --max-errors 0$/);
    expect(report.errors.total).toBeGreaterThan(0);
    // ledger has a 1 s timeout and no retries: the gateway answers 504 with its reason.
    expect(Object.keys(report.errors.byReason)).toEqual([expect.stringMatching(/^status 504 /)]);
    const metrics = (await httpGet(`http://127.0.0.1:${federation.controller?.ports.admin}/metrics`)).body;
    expect(metrics).toMatch(/fedgate_drill_runs_total\{service="shop\/ledger",mode="blackhole",outcome="failed"[^}]*\} 1/);
  });

  it('a target that answers but never reaches the failing cluster is INCONCLUSIVE (exit 3), not PASSED', async () => {
    // west's own gateway serves payments locally: failing east changes nothing for this traffic.
    const dir = join(out, 'inconclusive');
    const result = await runFedgate(['drill', 'run', '--service', 'payments.shop', '--from', 'edge', '--fail', 'east', '--mode', 'drain', '--duration', '2s', '--rps', '50', '--target', federation.outbound('west'), '--out', dir, ...federation.cliTarget()], { timeoutMs: 30_000 });
    expect(result.code).toBe(3);
    expect(result.stderr).toContain('none by east: the drill will likely be INCONCLUSIVE');
    expect(result.stdout).toContain('drill drain east for payments.shop, traffic from edge at 50 rps for 2 s: INCONCLUSIVE');
    expect(result.stdout).toContain('  reason: east served 0% of the baseline traffic, less than the 10% a drill needs to prove anything');
    const report = JSON.parse(readFileSync(join(dir, 'report.json'), 'utf8')) as DrillReport;
    expect(validateReport(report)).toBe(true);
    expect(report.verdict).toBe('INCONCLUSIVE');
    const metrics = (await httpGet(`http://127.0.0.1:${federation.controller?.ports.admin}/metrics`)).body;
    expect(metrics).toMatch(/fedgate_drill_runs_total\{service="shop\/payments",mode="drain",outcome="inconclusive"[^}]*\} [1-9]/);
  });

  it('pre-flight: an unknown cluster, a wrong target or an unreachable controller is one clear line and exit 2, with nothing changed', async () => {
    const before = await audit();
    const run = (args: string[], target = federation.cliTarget()): Promise<{ code: number | null; stdout: string; stderr: string }> =>
      runFedgate(['drill', 'run', '--service', 'payments.shop', '--from', 'edge', '--duration', '2s', '--rps', '20', '--out', join(out, 'never'), ...args, ...target], { timeoutMs: 30_000 });
    const unknown = await run(['--fail', 'nowhere', '--target', federation.outbound('edge')]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('fedgate: pre-flight failed, nothing was changed: cluster nowhere: --fail nowhere is not a member of federation test (members: east, edge, west)');
    const [closed] = await freePorts(1);
    const wrongTarget = await run(['--fail', 'east', '--target', `127.0.0.1:${closed}`]);
    expect(wrongTarget.code).toBe(2);
    expect(wrongTarget.stderr).toContain(`pre-flight failed, nothing was changed: target: --target 127.0.0.1:${closed} did not answer for payments.shop: 10 of 10 probe requests failed (connect ECONNREFUSED 127.0.0.1:${closed}); is it the edge gateway's outbound listener?`);
    const noController = await run(['--fail', 'east', '--target', federation.outbound('edge')], ['--controller', `127.0.0.1:${closed}`, '--credentials', join(federation.dir, 'pki', 'controller', 'admin')]);
    expect(noController.code).toBe(2);
    expect(noController.stderr).toContain(`pre-flight failed, nothing was changed: controller: the controller at 127.0.0.1:${closed} did not answer`);
    const notExported = await runFedgate(['drill', 'run', '--service', 'payments.shop', '--from', 'west', '--fail', 'edge', '--duration', '2s', '--rps', '20', '--target', federation.outbound('west'), '--out', join(out, 'never'), ...federation.cliTarget()], { timeoutMs: 30_000 });
    expect(notExported.code).toBe(2);
    expect(notExported.stderr).toMatch(/service: edge does not export shop\/payments \(exported by (east, west|west, east)\): failing it shows nothing/);
    expect(existsSync(join(out, 'never'))).toBe(false);
    expect(await audit()).toEqual(before);
    const status = JSON.parse((await runFedgate(['status', '-o', 'json', ...federation.cliTarget()])).stdout) as { clusters: Array<{ name: string; state: string; blackholed: string[] }> };
    expect(status.clusters.every((c) => c.state === 'active' && c.blackholed.length === 0)).toBe(true);
  });

  it('one drill at a time: a second drill is refused while one holds the drill lock; an interrupted drill restores the failed cluster and is ABORTED', async () => {
    const child = spawn(process.execPath, [join(process.cwd(), 'dist', 'src', 'bin', 'fedgate.js'), 'drill', 'run', '--service', 'ledger.shop', '--from', 'edge', '--fail', 'east', '--mode', 'blackhole', '--duration', '30s', '--rps', '20', '--target', federation.outbound('edge'), '--out', join(out, 'interrupted'), ...federation.cliTarget()], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const blackholed = async (): Promise<string[]> => {
      const status = JSON.parse((await runFedgate(['status', '-o', 'json', ...federation.cliTarget()])).stdout) as { clusters: Array<{ name: string; blackholed: string[] }> };
      return status.clusters.find((c) => c.name === 'east')?.blackholed ?? [];
    };
    // The pre-flight and a quarter of 30 s of baseline come first.
    await eventually(async () => (await blackholed()).includes('shop/ledger'), 'the drill blackholed ledger at east', 40_000);
    const second = await runFedgate(['drill', 'run', '--service', 'payments.shop', '--from', 'edge', '--fail', 'west', '--duration', '2s', '--rps', '20', '--target', federation.outbound('edge'), '--out', join(out, 'second'), ...federation.cliTarget()], { timeoutMs: 30_000 });
    expect(second.code).toBe(2);
    expect(second.stderr).toContain('pre-flight failed, nothing was changed: drill lock: ');
    expect(second.stderr).toContain('another drill is running: blackhole east for shop/ledger from edge');
    child.kill('SIGINT');
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    expect(code).toBe(4);
    expect(stderr).toContain('interrupted: stopping the load and restoring the failed cluster');
    expect(await blackholed()).toEqual([]);
    const report = JSON.parse(readFileSync(join(out, 'interrupted', 'report.json'), 'utf8')) as DrillReport;
    expect(validateReport(report)).toBe(true);
    expect(report.verdict).toBe('ABORTED');
    expect(report.reason).toBe('drill aborted: interrupted (SIGINT or SIGTERM)');
    // The lock went with it: the next drill may start.
    const third = await runFedgate(['drill', 'run', '--service', 'payments.shop', '--from', 'edge', '--fail', 'west', '--mode', 'drain', '--duration', '2s', '--rps', '20', '--target', federation.outbound('edge'), '--out', join(out, 'third'), ...federation.cliTarget()], { timeoutMs: 30_000 });
    expect(third.stderr).toContain('pre-flight ok  drill lock: held by this drill');
  });

  it('blackholes by hand for game days, shown by status until lifted', async () => {
    const on = await runFedgate(['cluster', 'blackhole', 'west', '--service', 'shop/ledger', '--reason', 'game day', ...federation.cliTarget()]);
    expect(on.stdout).toContain('shop/ledger at west blackholed');
    const table = await runFedgate(['status', ...federation.cliTarget()]);
    expect(table.stdout).toContain('west BLACKHOLED (its gateway does not answer): shop/ledger');
    await eventually(async () => (JSON.parse((await httpGet(`${federation.adminUrl('west')}/config`)).body) as { blackholed: string[] }).blackholed.includes('shop/ledger'), 'west gateway applies the blackhole');
    const off = await runFedgate(['cluster', 'unblackhole', 'west', '--service', 'shop/ledger', ...federation.cliTarget()]);
    expect(off.stdout).toContain('answering again');
    await eventually(async () => (JSON.parse((await httpGet(`${federation.adminUrl('west')}/config`)).body) as { blackholed: string[] }).blackholed.length === 0, 'west answers again');
    const bad = await runFedgate(['cluster', 'blackhole', 'west', '--service', 'ledger', ...federation.cliTarget()]);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain('service must be namespace/name');
  });

  it('refuses bad invocations with a clear message before touching anything', async () => {
    const same = await runFedgate(['drill', 'run', '--service', 'payments.shop', '--from', 'east', '--fail', 'east', ...federation.cliTarget()]);
    expect(same.code).toBe(2);
    expect(same.stderr).toContain('--from and --fail must be different clusters');
    const service = await runFedgate(['drill', 'run', '--service', 'Payments', '--from', 'edge', '--fail', 'east', ...federation.cliTarget()]);
    expect(service.stderr).toContain('--service must be name.namespace');
    const kill = await runFedgate(['drill', 'run', '--service', 'payments.shop', '--from', 'edge', '--fail', 'east', '--mode', 'kill', ...federation.cliTarget()]);
    expect(kill.stderr).toContain('--mode kill needs --fail-config');
    const partition = await runFedgate(['drill', 'run', '--service', 'payments.shop', '--from', 'edge', '--fail', 'east', '--mode', 'partition', ...federation.cliTarget()]);
    expect(partition.code).toBe(2);
    expect(partition.stderr).toContain('--mode partition needs --fail-netns');
    const direction = await runFedgate(['drill', 'run', '--service', 'payments.shop', '--from', 'edge', '--fail', 'east', '--direction', 'in', ...federation.cliTarget()]);
    expect(direction.stderr).toContain('--direction is for --mode partition');
    const output = await runFedgate(['drill', 'run', '--service', 'payments.shop', '--from', 'edge', '--fail', 'east', '-o', 'xml', ...federation.cliTarget()]);
    expect(output.code).toBe(2);
    expect(output.stderr).toContain('-o must be text, json or yaml');
  });
});
