/**
 * Partition drills in the lab: each cluster on its own network namespace and address, the
 * failing cluster cut off by nft DROP rules inside its namespace (no resets), as a regional
 * network outage looks. `east` serves 100% of payments (HTTP) and greeter (gRPC) for `edge` at
 * 200 rps; `west` is the failover target. Each direction — both ways, only into east, only out
 * of east — is drilled with HTTP and with gRPC, by the real CLI running in edge's namespace.
 * Figures (detection, 100% failed over, p99 and slowest request during the window, failback) are
 * printed, not asserted: speed belongs to benchmarks.
 */
import { jest } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Ajv2020 } from 'ajv/dist/2020.js';
import type { DrillReport, PartitionDirection } from '../../src/drill/report.js';
import { PARTITION_TABLE } from '../../src/drill/partition.js';
import { eventually } from '../support/control-plane.js';
import { describeLab, TestLab } from '../support/lab.js';
import { httpGet } from '../support/processes.js';

jest.setTimeout(300_000);

const validateReport = new Ajv2020({ strict: true, allErrors: true, validateFormats: false }).compile(JSON.parse(readFileSync(join(process.cwd(), 'docs', 'drill-report.schema.json'), 'utf8')) as object);

const policy = (service: string): string => `
apiVersion: fedgate.io/v1alpha1
kind: TrafficPolicy
metadata: {name: ${service}, namespace: default}
spec:
  service: ${service}
  timeout: 3s
  retries: {attempts: 2, perTryTimeout: 1s, retryOn: [connect-failure, reset, unavailable, gateway-error]}
---
apiVersion: fedgate.io/v1alpha1
kind: FailoverPolicy
metadata: {name: ${service}, namespace: default}
spec:
  service: ${service}
  failover:
    - {from: eu-west-1, to: [us-east-1, us-west-2]}
`;

const EXPORTS = [
  { service: 'payments', ports: [{ name: 'http', port: 8080, targetPort: 19001, protocol: 'http' as const }] },
  { service: 'greeter', ports: [{ name: 'grpc', port: 9090, targetPort: 19002, protocol: 'grpc' as const }] },
];

describeLab('partition drills in the lab (clusters on their own network namespaces)', () => {
  let lab: TestLab;
  const figures: string[] = [];

  beforeAll(async () => {
    lab = await TestLab.start(
      [
        { name: 'east', region: 'us-east-1', zone: 'us-east-1a', exports: EXPORTS },
        { name: 'west', region: 'us-west-2', zone: 'us-west-2a', exports: EXPORTS },
        { name: 'edge', region: 'eu-west-1', zone: 'eu-west-1a' },
      ],
      { policies: { 'payments.yaml': policy('payments'), 'greeter.yaml': policy('greeter') } },
    );
    const policies = await lab.federation.run('controller', ['policy', 'apply', '-f', join(lab.dir, 'policies'), ...lab.federation.cliTarget()]);
    expect(policies.code).toBe(0);
    await eventually(async () => {
      const config = JSON.parse((await httpGet(`http://${lab.federation.cluster('edge').admin}/config`)).body) as { policies: { inSync: boolean; appliedRevision: number }; catalog: { services: unknown[] } };
      return config.policies.inSync && config.policies.appliedRevision > 0 && config.catalog.services.length === 2;
    }, 'edge holds both services and the policies', 30_000);
  });

  afterAll(async () => {
    if (figures.length > 0) console.log(`partition drills, 200 rps from edge, east serving 100%:\n${figures.join('\n')}`);
    await lab?.stop();
  });

  async function partitionDrill(direction: PartitionDirection, protocol: 'http' | 'grpc'): Promise<{ code: number | null; report: DrillReport; stderr: string }> {
    const edge = lab.federation.cluster('edge');
    const east = lab.federation.cluster('east');
    const out = join(lab.dir, 'drills', `${direction}-${protocol}`);
    const result = await lab.federation.run('edge', [
      'drill',
      'run',
      '--service',
      protocol === 'http' ? 'payments.default' : 'greeter.default',
      '--protocol',
      protocol,
      '--from',
      'edge',
      '--fail',
      'east',
      '--mode',
      'partition',
      '--direction',
      direction,
      '--fail-netns',
      east.host.netns,
      // An 8 s failure window: with the default health checks (1 s PING timeout, then 2 s connect
      // timeouts, 3 misses) the --from gateway marks a silent peer down after about 6 s.
      '--duration',
      '16s',
      '--rps',
      '200',
      '--target',
      edge.outbound,
      '--from-admin',
      edge.admin,
      '--max-errors',
      '0',
      '--out',
      out,
      '-o',
      'json',
      ...lab.federation.cliTarget(),
    ]);
    let report: DrillReport;
    try {
      report = JSON.parse(result.stdout) as DrillReport;
    } catch {
      throw new Error(`no report (exit ${result.code}):\n${result.stdout}\n${result.stderr}\n${lab.logs()}`);
    }
    if (!validateReport(report)) throw new Error(`report does not match docs/drill-report.schema.json: ${JSON.stringify(validateReport.errors)}`);
    const f = report.failover;
    figures.push(
      `  ${direction.padEnd(4)} ${protocol.padEnd(4)}: ${report.verdict}; detection ${f.detectionMs ?? 'never'} ms, first success elsewhere ${f.firstSuccessElsewhereMs ?? 'never'} ms, 100% failed over ${f.fullFailoverMs ?? 'never'} ms (±${f.resolutionMs} ms); ` +
        `failure window p50 ${report.phases.failure.p50Ms} ms, p99 ${report.phases.failure.p99Ms} ms, slowest ${report.phases.failure.maxMs} ms; errors ${report.errors.total} of ${report.phases.baseline.requests + report.phases.failure.requests + report.phases.recovery.requests}; ` +
        `failback ${report.failback.firstSuccessFromRestoredMs ?? 'never'} ms; baseline p99 ${report.phases.baseline.p99Ms} ms`,
    );
    // The rules are gone and the federation is whole again before the next drill.
    expect(() => execFileSync('ip', ['netns', 'exec', east.host.netns, 'nft', 'list', 'table', 'inet', PARTITION_TABLE], { stdio: 'ignore' })).toThrow();
    await eventually(async () => {
      const health = (JSON.parse((await httpGet(`http://${edge.admin}/config`)).body) as { health: Record<string, { alive: boolean }> }).health;
      const status = await lab.admin().call.status({});
      return health.east?.alive === true && status.clusters.every((c) => c.connected && c.info?.state === 'active');
    }, 'edge sees east healthy and every cluster is active and connected', 30_000);
    return { code: result.code, report, stderr: result.stderr };
  }

  for (const direction of ['both', 'in', 'out'] as const) {
    for (const protocol of ['http', 'grpc'] as const) {
      it(`${direction === 'both' ? 'both directions' : `packets ${direction} only`}, ${protocol === 'http' ? 'idempotent HTTP requests' : 'unary gRPC calls'}: none lost, failback after the rules are lifted`, async () => {
        const { code, report, stderr } = await partitionDrill(direction, protocol);
        expect(report.plan.failure).toMatchObject({ direction, netns: lab.federation.cluster('east').host.netns });
        expect(report.plan.failure.rules).toContain(direction === 'out' ? 'oifname != "lo" drop' : 'iifname != "lo" drop');
        expect(report.preflight.map((p) => p.check)).toEqual(expect.arrayContaining(['partition tools', `netns ${lab.federation.cluster('east').host.netns}`, 'drill lock']));
        expect(report.failover.baselineShareOfFailing).toBe(1);
        expect({ verdict: report.verdict, reason: report.reason, errors: report.errors.byReason }).toEqual({ verdict: 'PASSED', reason: expect.any(String), errors: {} });
        expect(code).toBe(0);
        expect(report.failback.firstSuccessFromRestoredMs).not.toBeNull();
        expect(stderr).toContain(`drop every packet ${direction === 'both' ? 'into and out of' : direction === 'in' ? 'into' : 'out of'} east's network namespace`);
      });
    }
  }
});
