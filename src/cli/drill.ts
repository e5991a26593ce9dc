import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { waitForReadyz } from '../admin/readiness-probe.js';
import { loadClusterFile } from '../config/load.js';
import { toYaml } from '../config/yaml-source.js';
import { parseDuration } from '../core/duration.js';
import { errorMessage } from '../core/errors.js';
import { SERVER_NODE_FLAGS } from '../core/node-flags.js';
import { DrillAborted, runDrill, writeReport, type DrillInjector } from '../drill/drill-runner.js';
import { federationPreflight, restoredCheck } from '../drill/federation-preflight.js';
import { gatewayHealthWatch } from '../drill/health-watch.js';
import type { LoadTarget } from '../drill/load-generator.js';
import { partitionInjector, partitionPreflight, type PartitionTarget } from '../drill/partition.js';
import { PreflightFailure, runPreflight, type PreflightCheck, type PreflightResult } from '../drill/preflight.js';
import { summaryLines } from '../drill/render.js';
import { DRILL_MODES, withPostflight, type DrillMode, type DrillPlan, type DrillReport, type PartitionDirection } from '../drill/report.js';
import { DEFAULT_MAX_FAILBACK_SECONDS, PREFLIGHT_EXIT_CODE, VERDICT_EXIT_CODES, type DrillVerdict } from '../drill/verdict.js';
import type { DrillEvent, StatusResponse } from '../proto/gen/fedgate.js';
import { openAdmin, withAdminTarget, type AdminTargetOptions } from './admin-target.js';
import type { AdminConnection } from './controller-api.js';
import { ExitWith, UsageError } from './cli-error.js';
import { gatewayPidFile } from './gateway.js';
import type { CliIo } from './io.js';

const LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

/** `payments.default` (name.namespace, as in payments.default.svc.clusterset.local) → plan fields. */
export function parseService(text: string): { serviceKey: string; authority: string } {
  const [name, namespace, ...rest] = text.replace(/\.svc\.clusterset\.local$/, '').split('.');
  if (!name || !LABEL.test(name) || rest.length > 0 || (namespace !== undefined && !LABEL.test(namespace))) {
    throw new UsageError(`--service must be name.namespace, e.g. payments.default (got "${text}")`);
  }
  const ns = namespace ?? 'default';
  return { serviceKey: `${ns}/${name}`, authority: `${name}.${ns}.svc.clusterset.local` };
}

/** Drain and undrain through the controller: the path an operator uses, audited there. */
export function drainInjector(admin: AdminConnection, cluster: string): DrillInjector {
  return {
    description: `drain ${cluster} through the controller`,
    inject: async () => {
      await admin.call.drainCluster({ cluster, reason: 'failover drill' });
    },
    restore: async () => {
      await admin.call.undrainCluster({ cluster, reason: 'failover drill ended' });
    },
  };
}

/** The failing cluster's gateway stops answering for the service: set through the controller, audited. */
export function blackholeInjector(admin: AdminConnection, cluster: string, serviceKey: string): DrillInjector {
  return {
    description: `blackhole ${serviceKey} at ${cluster}'s gateway`,
    inject: async () => {
      await admin.call.blackholeService({ cluster, service: serviceKey, enabled: true, reason: 'failover drill' });
    },
    restore: async () => {
      await admin.call.blackholeService({ cluster, service: serviceKey, enabled: false, reason: 'failover drill ended' });
    },
  };
}

async function waitUntil(check: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`${what} within ${timeoutMs / 1000}s`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * Kills a gateway running on this host (SIGKILL: no goodbye to peers or controller, like a crashed
 * node) and starts it again from the same cluster file. The process is found by the pid file the
 * gateway writes in its state directory.
 */
export function killInjector(clusterFile: string): DrillInjector {
  const cluster = loadClusterFile(clusterFile);
  const pidFile = gatewayPidFile(cluster.stateDir);
  const admin = cluster.spec.gateway.admin.replace(/^0\.0\.0\.0:/, '127.0.0.1:');
  return {
    description: `kill the ${cluster.metadata.name} gateway (SIGKILL)`,
    inject: async () => {
      if (!existsSync(pidFile)) throw new Error(`no ${pidFile}: is the ${cluster.metadata.name} gateway running on this host?`);
      const pid = Number(readFileSync(pidFile, 'utf8').trim());
      if (!Number.isInteger(pid) || pid <= 0 || !alive(pid)) throw new Error(`${pidFile} names no running process`);
      process.kill(pid, 'SIGKILL');
      await waitUntil(() => !alive(pid), 5000, `gateway process ${pid} did not exit`);
    },
    restore: async () => {
      mkdirSync(cluster.stateDir, { recursive: true });
      const log = openSync(join(cluster.stateDir, 'gateway.log'), 'a');
      const child = spawn(process.execPath, [...SERVER_NODE_FLAGS, resolve(process.argv[1] as string), 'gateway', '--config', clusterFile], { detached: true, stdio: ['ignore', log, log], env: process.env });
      closeSync(log);
      child.unref();
      await waitForReadyz(admin, 20_000, `the restarted ${cluster.metadata.name} gateway`);
    },
  };
}

/** Kill mode: the gateway to kill runs on this host and can be found by its pid file. */
function killPreflight(clusterFile: string): PreflightCheck {
  return {
    check: 'gateway process',
    run: async () => {
      const cluster = loadClusterFile(clusterFile);
      const pidFile = gatewayPidFile(cluster.stateDir);
      if (!existsSync(pidFile)) throw new PreflightFailure(`no ${pidFile}: is the ${cluster.metadata.name} gateway running on this host?`);
      const pid = Number(readFileSync(pidFile, 'utf8').trim());
      if (!Number.isInteger(pid) || pid <= 0 || !alive(pid)) throw new PreflightFailure(`${pidFile} names no running process: is the ${cluster.metadata.name} gateway running on this host?`);
      return `${cluster.metadata.name} gateway runs as pid ${pid}`;
    },
  };
}

interface DrillRunFlags extends AdminTargetOptions {
  service: string;
  from: string;
  fail: string;
  mode: string;
  direction?: string;
  failNetns?: string;
  duration: string;
  rps: string;
  protocol: string;
  path: string;
  target?: string;
  fromConfig?: string;
  fromAdmin?: string;
  failConfig?: string;
  out?: string;
  maxErrors?: string;
  maxFailoverSeconds?: string;
  maxFailbackSeconds?: string;
  output: string;
}

function number(flag: string, text: string, min: number): number {
  const value = Number(text);
  if (!Number.isFinite(value) || value < min) throw new UsageError(`${flag} must be a number ≥ ${min} (got "${text}")`);
  return value;
}

/** The plan of a drill from its flags; every mistake is a UsageError (exit 2) before anything is contacted. */
export function drillPlan(flags: DrillRunFlags): Omit<DrillPlan, 'failure'> & { authority: string; direction?: PartitionDirection } {
  const { serviceKey, authority } = parseService(flags.service);
  if (!(DRILL_MODES as readonly string[]).includes(flags.mode)) throw new UsageError(`--mode must be ${DRILL_MODES.join(', ')} (got "${flags.mode}")`);
  if (!['http', 'grpc'].includes(flags.protocol)) throw new UsageError(`--protocol must be http or grpc (got "${flags.protocol}")`);
  if (!LABEL.test(flags.from) || !LABEL.test(flags.fail)) throw new UsageError('--from and --fail must be cluster names');
  if (flags.from === flags.fail) throw new UsageError('--from and --fail must be different clusters: traffic enters through --from');
  if (flags.direction !== undefined && flags.mode !== 'partition') throw new UsageError('--direction is for --mode partition');
  if (flags.direction !== undefined && !['in', 'out', 'both'].includes(flags.direction)) throw new UsageError(`--direction must be in, out or both (got "${flags.direction}")`);
  if (!flags.path.startsWith('/')) throw new UsageError(`--path must start with / (got "${flags.path}")`);
  let durationMs: number;
  try {
    durationMs = parseDuration(flags.duration);
  } catch (error) {
    throw new UsageError(`--duration: ${errorMessage(error)}`);
  }
  if (durationMs < 2000 || durationMs > 3_600_000) throw new UsageError('--duration must be between 2s and 1h');
  const rps = number('--rps', flags.rps, 1);
  if (rps > 5000) throw new UsageError('--rps must be at most 5000 (the drill measures failover, not capacity)');
  return {
    service: flags.service,
    serviceKey,
    authority,
    protocol: flags.protocol as 'http' | 'grpc',
    from: flags.from,
    fail: flags.fail,
    mode: flags.mode as DrillMode,
    rps,
    durationMs,
    objectives: {
      ...(flags.maxErrors !== undefined ? { maxErrors: number('--max-errors', flags.maxErrors, 0) } : {}),
      ...(flags.maxFailoverSeconds !== undefined ? { maxFailoverSeconds: number('--max-failover-seconds', flags.maxFailoverSeconds, 0) } : {}),
      ...(flags.maxFailbackSeconds !== undefined ? { maxFailbackSeconds: number('--max-failback-seconds', flags.maxFailbackSeconds, 0) } : {}),
    },
    ...(flags.mode === 'partition' ? { direction: (flags.direction ?? 'both') as PartitionDirection } : {}),
  };
}

/** The outcome the controller's metrics and audit log record for a verdict. */
export function drillOutcome(verdict: DrillVerdict): 'passed' | 'failed' | 'inconclusive' | 'aborted' {
  return verdict.toLowerCase() as 'passed' | 'failed' | 'inconclusive' | 'aborted';
}

/**
 * The drill's side of the controller: its lock (taken at `started`, renewed while it runs,
 * released at `finished`), metrics and audit log.
 */
export class DrillRecorder {
  readonly drillId = randomUUID();
  private heartbeat: NodeJS.Timeout | undefined;

  constructor(
    private readonly admin: AdminConnection,
    private readonly plan: Pick<DrillPlan, 'serviceKey' | 'mode' | 'fail' | 'from'>,
    private readonly warn: (line: string) => void,
  ) {}

  private event(phase: string, report?: DrillReport, outcome = ''): DrillEvent {
    return {
      phase,
      service: this.plan.serviceKey,
      mode: this.plan.mode,
      failedCluster: this.plan.fail,
      fromCluster: this.plan.from,
      outcome,
      failoverSeconds: report && report.failover.fullFailoverMs !== null ? report.failover.fullFailoverMs / 1000 : -1,
      errors: report?.errors.total ?? 0,
      requests: report ? report.phases.baseline.requests + report.phases.failure.requests + report.phases.recovery.requests : 0,
      drillId: this.drillId,
    };
  }

  /** Takes the drill lock: throws (the pre-flight's last check) when another drill holds it. */
  async start(): Promise<string> {
    await this.admin.call.recordDrill(this.event('started'));
    this.heartbeat = setInterval(() => {
      this.admin.call.recordDrill(this.event('running')).catch((error: unknown) => this.warn(`could not renew the drill lock: ${errorMessage(error)}`));
    }, DRILL_LOCK_RENEW_MS);
    this.heartbeat.unref();
    return `held by this drill (${this.drillId})`;
  }

  async finish(report: DrillReport | undefined, outcome: ReturnType<typeof drillOutcome>): Promise<void> {
    if (this.heartbeat) clearInterval(this.heartbeat);
    try {
      await this.admin.call.recordDrill(this.event('finished', report, outcome));
    } catch (error) {
      this.warn(`could not record the end of the drill at the controller (its lock expires by itself): ${errorMessage(error)}`);
    }
  }
}

/** Renewal period of the drill lock; the controller frees it 30 s after the last renewal. */
const DRILL_LOCK_RENEW_MS = 5000;

function loopbackFor(address: string): string {
  return address.replace(/^0\.0\.0\.0:/, '127.0.0.1:').replace(/^\[::\]:/, '[::1]:');
}

function printReport(io: CliIo, report: DrillReport, output: string, files: { json: string; markdown: string; svg: string } | undefined): void {
  if (output === 'json') io.out(JSON.stringify(report, null, 2));
  else if (output === 'yaml') io.out(toYaml(report).trimEnd());
  else {
    for (const line of summaryLines(report)) io.out(line);
    if (files) io.out(`report: ${files.markdown} (also ${files.json}, ${files.svg})`);
  }
  if (output !== 'text' && files) io.err(`report: ${files.markdown} (also ${files.json}, ${files.svg})`);
}

export function registerDrillCommand(program: Command, io: CliIo): void {
  const drill = program.command('drill').description('failover drills: fail a cluster on purpose under traffic and report what happened');
  withAdminTarget(
    drill
      .command('run')
      .description(
        'check the federation, run traffic through --from, fail --fail, restore it, and write a report (JSON, Markdown, SVG timeline). ' +
          'Exit 0 PASSED, 1 FAILED (an objective missed), 2 usage or pre-flight error (nothing changed), 3 INCONCLUSIVE (nothing proved), 4 ABORTED',
      )
      .requiredOption('--service <name.namespace>', 'the clusterset service, e.g. payments.default')
      .requiredOption('--from <cluster>', 'the cluster whose gateway the traffic enters')
      .requiredOption('--fail <cluster>', 'the cluster to fail')
      .option('--mode <mode>', 'drain (through the controller), blackhole (its gateway stops answering for the service), kill (its local gateway process) or partition (packets dropped in its network namespace)', 'drain')
      .option('--direction <in|out|both>', 'partition: drop packets into the failing cluster, out of it, or both (default both)')
      .option('--fail-netns <name>', "partition: the failing cluster's network namespace (a lab host; ip netns list)")
      .option('--duration <duration>', 'whole drill: a quarter baseline, half failure, a quarter recovery', '60s')
      .option('--rps <n>', 'requests per second', '200')
      .option('--protocol <http|grpc>', 'HTTP/1.1 GET requests or gRPC unary calls (fedgate.test.Echo)', 'http')
      .option('--path <path>', 'HTTP: the path requested', '/')
      .option('--target <host:port>', "the --from gateway's outbound listener (default: from --from-config, else 127.0.0.1:15001)")
      .option('--from-config <file>', "the --from cluster's file, for its outbound and admin addresses")
      .option('--from-admin <host:port>', "the --from gateway's admin listener: detection time from its health checks (default: from --from-config)")
      .option('--fail-config <file>', "kill mode: the failing cluster's file (its gateway runs on this host)")
      .option('--out <dir>', 'where the report goes (default: drills/<time>-<service>-<mode>)')
      .option('--max-errors <n>', 'objective: at most this many failed requests (default 0 for drain, 1% of the requests for the other modes)')
      .option('--max-failover-seconds <s>', 'objective: 100% failed over within this many seconds')
      .option('--max-failback-seconds <s>', `objective: the restored cluster serves again within this many seconds (default ${DEFAULT_MAX_FAILBACK_SECONDS})`)
      .option('-o, --output <format>', 'text, json or yaml (the report); progress goes to stderr', 'text'),
  ).action(async (flags: DrillRunFlags) => {
    if (!['text', 'json', 'yaml'].includes(flags.output)) throw new UsageError(`-o must be text, json or yaml (got "${flags.output}")`);
    const planned = drillPlan(flags);
    if (planned.mode === 'kill' && !flags.failConfig) throw new UsageError("--mode kill needs --fail-config (the failing cluster's file; its gateway must run on this host)");
    if (planned.mode === 'partition' && !flags.failNetns) throw new UsageError("--mode partition needs --fail-netns (the failing cluster's network namespace, e.g. from fedgate demo --lab)");
    const fromCluster = flags.fromConfig ? loadClusterFile(flags.fromConfig) : undefined;
    const address = flags.target ?? (fromCluster ? loopbackFor(fromCluster.spec.gateway.outbound) : '127.0.0.1:15001');
    const fromAdmin = flags.fromAdmin ?? (fromCluster ? loopbackFor(fromCluster.spec.gateway.admin) : undefined);
    const target: LoadTarget = planned.protocol === 'grpc' ? { kind: 'grpc', address, authority: planned.authority } : { kind: 'http', address, authority: planned.authority, path: flags.path };
    const admin = openAdmin(flags);
    const progress = (line: string): void => io.err(line);
    try {
      let status: StatusResponse | undefined;
      const fetchStatus = async (): Promise<StatusResponse> => (status ??= await admin.call.status({}));
      const partition = planned.mode === 'partition' ? { cluster: planned.fail, netns: flags.failNetns as string, direction: planned.direction as PartitionDirection } : undefined;
      const injector: DrillInjector & { rules?: string } =
        planned.mode === 'drain'
          ? drainInjector(admin, planned.fail)
          : planned.mode === 'blackhole'
            ? blackholeInjector(admin, planned.fail, planned.serviceKey)
            : planned.mode === 'kill'
              ? killInjector(flags.failConfig as string)
              : partitionInjector(partition as PartitionTarget);
      const { authority: _authority, direction: _direction, ...rest } = planned;
      const plan: DrillPlan = {
        ...rest,
        failure: { description: injector.description, ...(partition ? { direction: partition.direction, netns: partition.netns, rules: injector.rules } : {}) },
      };
      const recorder = new DrillRecorder(admin, plan, progress);
      const controllerAddress = flags.controller ?? process.env.FEDGATE_CONTROLLER ?? 'the controller';
      const checks: PreflightCheck[] = [
        ...federationPreflight({ controller: controllerAddress, status: fetchStatus, from: plan.from, fail: plan.fail, serviceKey: plan.serviceKey, service: plan.service, target, fromAdmin }),
        ...(planned.mode === 'kill' ? [killPreflight(flags.failConfig as string)] : []),
        ...(partition ? partitionPreflight(partition, () => status?.clusters.find((c) => c.info?.name === plan.fail)?.info?.gatewayAddresses ?? []) : []),
        { check: 'drill lock', run: () => recorder.start() },
      ];
      const preflight = await runPreflight(checks, (r) => progress(`pre-flight ${r.ok ? 'ok' : 'FAILED'}  ${r.check}: ${r.detail}`));
      if (!preflight.ok) {
        const failed = preflight.results[preflight.results.length - 1] as PreflightResult;
        if (flags.output !== 'text') io.out(flags.output === 'json' ? JSON.stringify({ preflight: preflight.results }, null, 2) : toYaml({ preflight: preflight.results }).trimEnd());
        io.err(`fedgate: pre-flight failed, nothing was changed: ${failed.check}: ${failed.detail}`);
        throw new ExitWith(PREFLIGHT_EXIT_CODE);
      }

      // Ctrl-C (or SIGTERM from a pipeline) ends the drill early but never leaves the cluster failed.
      const interrupt = new AbortController();
      const onSignal = (): void => {
        io.err('interrupted: stopping the load and restoring the failed cluster');
        interrupt.abort();
      };
      process.once('SIGINT', onSignal);
      process.once('SIGTERM', onSignal);
      let report: DrillReport;
      try {
        report = await runDrill(plan, target, injector, {
          progress,
          signal: interrupt.signal,
          preflight: preflight.results,
          ...(fromAdmin && plan.mode !== 'drain' ? { detection: gatewayHealthWatch(fromAdmin, plan.fail) } : {}),
        });
      } catch (error) {
        if (!(error instanceof DrillAborted)) {
          await recorder.finish(undefined, 'aborted');
          throw error;
        }
        report = error.report;
      } finally {
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
      }
      if (report.verdict !== 'ABORTED') {
        const postflight = await runPreflight([restoredCheck(() => admin.call.status({}), plan.fail)], (r) => progress(`post-flight ${r.ok ? 'ok' : 'FAILED'}  ${r.check}: ${r.detail}`));
        report = withPostflight(report, postflight.results);
      }
      await recorder.finish(report, drillOutcome(report.verdict));
      const stamp = report.startedAt.replace(/[:.]/g, '-');
      const dir = flags.out ?? join('drills', `${stamp}-${plan.serviceKey.replace('/', '-')}-${plan.mode}`);
      const files = writeReport(report, dir);
      printReport(io, report, flags.output, files);
      const code = VERDICT_EXIT_CODES[report.verdict];
      if (code !== 0) throw new ExitWith(code);
    } finally {
      admin.close();
    }
  });
}
