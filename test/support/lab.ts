import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connectAdmin, readAdminCredentials, type AdminConnection } from '../../src/cli/controller-api.js';
import { LabFederation, type LabCluster, type LabFederationOptions } from '../../src/demo/lab-federation.js';
import { LabNetwork } from '../../src/demo/lab-network.js';
import { PARTITION_TABLE } from '../../src/drill/partition.js';
import type { DrillReport, PartitionDirection } from '../../src/drill/report.js';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { eventually } from './control-plane.js';
import { httpGet } from './processes.js';

export const FEDGATE_BIN = join(process.cwd(), 'dist', 'src', 'bin', 'fedgate.js');

/** Why lab tests cannot run on this machine (not root, no iproute2 or nft), or undefined. */
export function labSkipReason(): string | undefined {
  const network = LabNetwork.unavailable();
  if (network) return network;
  try {
    execFileSync('nft', ['--version'], { stdio: 'ignore' });
  } catch {
    return 'nft is missing (install nftables: tools/setup.sh does)';
  }
  return undefined;
}

/**
 * `describe` for lab tests: they need root (network namespaces, nft). Elsewhere the suite is
 * skipped and says why, once, on the console — CI runs as root, so there they always run.
 */
export function describeLab(name: string, body: () => void): void {
  const reason = labSkipReason();
  if (reason) {
    console.warn(`skipping "${name}": ${reason}`);
    describe.skip(name, body);
  } else {
    describe(name, body);
  }
}

/** A lab federation for one test file: every process real, each cluster on its own namespace. */
export class TestLab {
  private adminConnection: AdminConnection | undefined;

  private constructor(
    readonly federation: LabFederation,
    readonly dir: string,
  ) {}

  static async start(clusters: readonly LabCluster[], options: Omit<LabFederationOptions, 'bin' | 'dir'> = {}): Promise<TestLab> {
    const dir = mkdtempSync(join(tmpdir(), 'fedgate-lab-test-'));
    const federation = await LabFederation.create(clusters, { bin: FEDGATE_BIN, dir, env: { FEDGATE_LOG_LEVEL: process.env.FEDGATE_TEST_LOG_LEVEL ?? 'info' }, ...options });
    const lab = new TestLab(federation, dir);
    try {
      await federation.startAll();
    } catch (error) {
      await lab.stop();
      throw error;
    }
    return lab;
  }

  admin(): AdminConnection {
    this.adminConnection ??= connectAdmin(this.federation.controller.api, readAdminCredentials(this.federation.credentialsDir));
    return this.adminConnection;
  }

  /** The last lines of every process's log, for a failure message. */
  logs(lines = 15): string {
    return [...this.federation.processes.values()].map((p) => `--- ${p.name} (${p.logFile})\n${p.tail(lines)}`).join('\n');
  }

  /**
   * Drops packets between a lab host and some addresses, inside the host's namespace (never on
   * this machine's interfaces): a partition of that host from those peers only. Returns the undo.
   */
  cut(host: string, peers: readonly string[], direction: 'in' | 'out' | 'both' = 'both'): () => void {
    const netns = this.federation.network.host(host).netns;
    const set = `{ ${peers.join(', ')} }`;
    const chains = [
      ...(direction !== 'out' ? ['chain input { type filter hook input priority -300; policy accept;', `ip saddr ${set} drop`, '}'] : []),
      ...(direction !== 'in' ? ['chain output { type filter hook output priority -300; policy accept;', `ip daddr ${set} drop`, '}'] : []),
    ];
    const table = `${PARTITION_TABLE}_test`;
    execFileSync('ip', ['netns', 'exec', netns, 'nft', '-f', '-'], { input: `table inet ${table} {\n${chains.join('\n')}\n}\n` });
    return () => execFileSync('ip', ['netns', 'exec', netns, 'nft', 'delete', 'table', 'inet', table]);
  }

  async stop(): Promise<void> {
    this.adminConnection?.close();
    await this.federation.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

const validateReport = new Ajv2020({ strict: true, allErrors: true, validateFormats: false }).compile(JSON.parse(readFileSync(join(process.cwd(), 'docs', 'drill-report.schema.json'), 'utf8')) as object);

/**
 * The policies of the partition lab: `edge` (eu-west-1) prefers `east` (us-east-1) over `west`
 * (us-west-2) for payments (HTTP) and greeter (gRPC); retries on another cluster with a 1 s
 * per-try timeout, as the example federation does.
 */
export function partitionLabPolicy(service: string): string {
  return `
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
}

export const PARTITION_LAB_EXPORTS = [
  { service: 'payments', ports: [{ name: 'http', port: 8080, targetPort: 19001, protocol: 'http' as const }] },
  { service: 'greeter', ports: [{ name: 'grpc', port: 9090, targetPort: 19002, protocol: 'grpc' as const }] },
];

/** east and west export payments and greeter; edge calls them and prefers east. */
export async function startPartitionLab(): Promise<TestLab> {
  const lab = await TestLab.start(
    [
      { name: 'east', region: 'us-east-1', zone: 'us-east-1a', exports: PARTITION_LAB_EXPORTS },
      { name: 'west', region: 'us-west-2', zone: 'us-west-2a', exports: PARTITION_LAB_EXPORTS },
      { name: 'edge', region: 'eu-west-1', zone: 'eu-west-1a' },
    ],
    { policies: { 'payments.yaml': partitionLabPolicy('payments'), 'greeter.yaml': partitionLabPolicy('greeter') } },
  );
  try {
    const policies = await lab.federation.run('controller', ['policy', 'apply', '-f', join(lab.dir, 'policies'), ...lab.federation.cliTarget()]);
    if (policies.code !== 0) throw new Error(`policy apply failed: ${policies.stderr}`);
    await eventually(async () => {
      const config = JSON.parse((await httpGet(`http://${lab.federation.cluster('edge').admin}/config`)).body) as { policies: { inSync: boolean; appliedRevision: number }; catalog: { services: unknown[] } };
      return config.policies.inSync && config.policies.appliedRevision > 0 && config.catalog.services.length === 2;
    }, 'edge holds both services and the policies', 30_000);
  } catch (error) {
    await lab.stop();
    throw error;
  }
  return lab;
}

/**
 * A partition drill of east at 200 rps from edge, run by the real CLI inside edge's namespace;
 * returns its report (checked against the schema) and a line of figures. Afterwards the rules
 * are gone and the federation is whole again before the next drill.
 */
export async function partitionDrill(lab: TestLab, direction: PartitionDirection, protocol: 'http' | 'grpc', extra: string[] = []): Promise<{ code: number | null; report: DrillReport; stderr: string; figures: string }> {
  const edge = lab.federation.cluster('edge');
  const east = lab.federation.cluster('east');
  const out = join(lab.dir, 'drills', `${direction}-${protocol}-${Date.now()}`);
  const result = await lab.federation.run('edge', [
    'drill', 'run',
    '--service', protocol === 'http' ? 'payments.default' : 'greeter.default',
    '--protocol', protocol,
    '--from', 'edge',
    '--fail', 'east',
    '--mode', 'partition',
    '--direction', direction,
    '--fail-netns', east.host.netns,
    // An 8 s failure window: with the default health checks (1 s PING timeout, then 2 s connect
    // timeouts, 3 misses) the --from gateway marks a silent peer down after about 6 s.
    '--duration', '16s',
    '--rps', '200',
    '--target', edge.outbound,
    '--from-admin', edge.admin,
    '--out', out,
    '-o', 'json',
    ...extra,
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
  const figures =
    `${direction.padEnd(4)} ${protocol.padEnd(4)}: ${report.verdict} (${report.reason}); detection ${f.detectionMs ?? 'never'} ms, first success elsewhere ${f.firstSuccessElsewhereMs ?? 'never'} ms, 100% failed over ${f.fullFailoverMs ?? 'never'} ms (±${f.resolutionMs} ms); ` +
    `failure window p50 ${report.phases.failure.p50Ms} ms, p99 ${report.phases.failure.p99Ms} ms, slowest ${report.phases.failure.maxMs} ms; errors ${report.errors.total} of ${report.phases.baseline.requests + report.phases.failure.requests + report.phases.recovery.requests}` +
    `${report.errors.total > 0 ? ` (${Object.entries(report.errors.byReason).map(([c, n]) => `${c}: ${n}`).join(', ')})` : ''}; failback ${report.failback.firstSuccessFromRestoredMs ?? 'never'} ms; baseline p99 ${report.phases.baseline.p99Ms} ms`;
  if (readPartitionTable(east.host.netns)) throw new Error(`the drill left its rules in ${east.host.netns}`);
  await eventually(async () => {
    const health = (JSON.parse((await httpGet(`http://${edge.admin}/config`)).body) as { health: Record<string, { alive: boolean }> }).health;
    const status = await lab.admin().call.status({});
    return health.east?.alive === true && status.clusters.every((c) => c.connected && c.info?.state === 'active');
  }, 'edge sees east healthy and every cluster is active and connected', 30_000);
  return { code: result.code, report, stderr: result.stderr, figures };
}

/** Whether a namespace still holds the partition drill's nft table. */
export function readPartitionTable(netns: string): boolean {
  try {
    execFileSync('ip', ['netns', 'exec', netns, 'nft', 'list', 'table', 'inet', PARTITION_TABLE], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
