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
    const result = await runFedgate(['drill', 'run', '--from', 'edge', '--fail', 'east', '--mode', mode, '--duration', duration, '--rps', '100', '--target', federation.outbound('edge'), '--out', dir, ...args, ...federation.cliTarget()], { timeoutMs: 60_000 });
    if (!existsSync(join(dir, 'report.json'))) throw new Error(`no report (exit ${result.code}):\n${result.stdout}\n${result.stderr}`);
    const report = JSON.parse(readFileSync(join(dir, 'report.json'), 'utf8')) as DrillReport;
    if (!validateReport(report)) throw new Error(`report does not match docs/drill-report.schema.json: ${JSON.stringify(validateReport.errors)}`);
    expect(XMLValidator.validate(readFileSync(join(dir, 'timeline.svg'), 'utf8'))).toBe(true);
    expect(readFileSync(join(dir, 'report.md'), 'utf8')).toContain(`# Drill: ${mode} east`);
    return { ...result, report, dir };
  }

  it('drain: traffic leaves the drained cluster without a failed request, and comes back after undrain', async () => {
    const { code, stdout, report } = await drill('drain', ['--service', 'payments.shop', '--max-errors', '0', '--max-failover-seconds', '1']);
    expect({ code, stdout }).toEqual({ code: 0, stdout: expect.stringContaining('PASSED') });
    expect(report.failover.baselineShareOfFailing).toBeGreaterThan(0.2);
    expect(report.errors.total).toBe(0);
    expect(report.failover.fullFailoverMs).not.toBeNull();
    expect(report.failover.fullFailoverMs as number).toBeLessThanOrEqual(1000);
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

  it('blackhole: the failing gateway stops answering for the service; retries with a per-try timeout fail over', async () => {
    const { code, stdout, report } = await drill('blackhole', ['--service', 'payments.shop', '--max-errors', '0']);
    expect({ code, stdout }).toEqual({ code: 0, stdout: expect.stringContaining('PASSED') });
    expect(report.errors.total).toBe(0);
    expect(report.failover.baselineShareOfFailing).toBeGreaterThan(0.2);
    expect(report.failover.fullFailoverMs).not.toBeNull();
    // Requests that went to east first waited out the 300ms per-try timeout before their retry.
    expect(report.phases.failure.p99Ms as number).toBeGreaterThanOrEqual(290);
    // Those timeouts ejected east for payments (outlier detection, 30s base): it does not take the
    // service back within the drill, and the report says so. Other services keep using east.
    expect(report.failback.firstSuccessFromRestoredMs).toBeNull();
    expect(report.warnings).toContain('east took no traffic back after the restore');
    const config = JSON.parse((await httpGet(`${federation.adminUrl('east')}/config`)).body) as { blackholed: string[] };
    expect(config.blackholed).toEqual([]);
  });

  it('exits 1 when the drill misses its objectives (a blackhole without retries loses requests)', async () => {
    const { code, stdout, report } = await drill('blackhole', ['--service', 'ledger.shop', '--max-errors', '0']);
    expect(code).toBe(1);
    expect(stdout).toContain('FAILED');
    expect(report.failover.baselineShareOfFailing).toBeGreaterThan(0.2);
    expect(report.objectives.passed).toBe(false);
    expect(report.objectives.missed[0]).toMatch(/^\d+ errors, more than --max-errors 0$/);
    expect(report.errors.total).toBeGreaterThan(0);
    const metrics = (await httpGet(`http://127.0.0.1:${federation.controller?.ports.admin}/metrics`)).body;
    expect(metrics).toMatch(/fedgate_drill_runs_total\{service="shop\/ledger",mode="blackhole",outcome="failed"[^}]*\} 1/);
  });

  it('an interrupted drill restores the failed cluster before it exits', async () => {
    const child = spawn(process.execPath, [join(process.cwd(), 'dist', 'src', 'bin', 'fedgate.js'), 'drill', 'run', '--service', 'ledger.shop', '--from', 'edge', '--fail', 'east', '--mode', 'blackhole', '--duration', '12s', '--rps', '20', '--target', federation.outbound('edge'), '--out', join(out, 'interrupted'), ...federation.cliTarget()], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const blackholed = async (): Promise<string[]> => {
      const status = JSON.parse((await runFedgate(['status', '-o', 'json', ...federation.cliTarget()])).stdout) as { clusters: Array<{ name: string; blackholed: string[] }> };
      return status.clusters.find((c) => c.name === 'east')?.blackholed ?? [];
    };
    await eventually(async () => (await blackholed()).includes('shop/ledger'), 'the drill blackholed ledger at east', 15_000);
    child.kill('SIGINT');
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    expect(code).toBe(1);
    expect(stderr).toContain('interrupted: stopping the load and restoring the failed cluster');
    expect(await blackholed()).toEqual([]);
    expect(existsSync(join(out, 'interrupted', 'report.json'))).toBe(false);
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
  });
});
