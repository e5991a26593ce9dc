import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { waitForReadyz } from '../admin/readiness-probe.js';
import { loadClusterFile } from '../config/load.js';
import { parseDuration } from '../core/duration.js';
import { errorMessage } from '../core/errors.js';
import { DrillAborted, runDrill, writeReport, type DrillInjector } from '../drill/drill-runner.js';
import type { LoadTarget } from '../drill/load-generator.js';
import { SERVER_NODE_FLAGS } from '../core/node-flags.js';
import { summaryLines } from '../drill/render.js';
import type { DrillMode, DrillPlan, DrillReport } from '../drill/report.js';
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

interface DrillRunFlags extends AdminTargetOptions {
  service: string;
  from: string;
  fail: string;
  mode: string;
  duration: string;
  rps: string;
  protocol: string;
  target?: string;
  fromConfig?: string;
  failConfig?: string;
  out?: string;
  maxErrors?: string;
  maxFailoverSeconds?: string;
}

function number(flag: string, text: string, min: number): number {
  const value = Number(text);
  if (!Number.isFinite(value) || value < min) throw new UsageError(`${flag} must be a number ≥ ${min} (got "${text}")`);
  return value;
}

export function drillPlan(flags: DrillRunFlags): DrillPlan & { authority: string } {
  const { serviceKey, authority } = parseService(flags.service);
  if (!['drain', 'blackhole', 'kill'].includes(flags.mode)) throw new UsageError(`--mode must be drain, blackhole or kill (got "${flags.mode}")`);
  if (!['http', 'grpc'].includes(flags.protocol)) throw new UsageError(`--protocol must be http or grpc (got "${flags.protocol}")`);
  if (!LABEL.test(flags.from) || !LABEL.test(flags.fail)) throw new UsageError('--from and --fail must be cluster names');
  if (flags.from === flags.fail) throw new UsageError('--from and --fail must be different clusters: traffic enters through --from');
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
    },
  };
}

/** Tells the controller a drill started or ended (metrics and audit); a drill still runs when it cannot. */
export async function recordDrill(admin: AdminConnection, plan: DrillPlan, report: DrillReport | undefined, outcome: 'passed' | 'failed' | 'aborted' | undefined, warn: (line: string) => void): Promise<void> {
  try {
    await admin.call.recordDrill({
      phase: outcome ? 'finished' : 'started',
      service: plan.serviceKey,
      mode: plan.mode,
      failedCluster: plan.fail,
      fromCluster: plan.from,
      outcome: outcome ?? '',
      failoverSeconds: report && report.failover.fullFailoverMs !== null ? report.failover.fullFailoverMs / 1000 : -1,
      errors: report?.errors.total ?? 0,
      requests: report ? report.phases.baseline.requests + report.phases.failure.requests + report.phases.recovery.requests : 0,
    });
  } catch (error) {
    warn(`could not record the drill at the controller: ${errorMessage(error)}`);
  }
}

export function registerDrillCommand(program: Command, io: CliIo): void {
  const drill = program.command('drill').description('failover drills: fail a cluster on purpose under traffic and report what happened');
  withAdminTarget(
    drill
      .command('run')
      .description('run traffic through --from, fail --fail, restore it, and write a report (JSON, Markdown, SVG timeline)')
      .requiredOption('--service <name.namespace>', 'the clusterset service, e.g. payments.default')
      .requiredOption('--from <cluster>', 'the cluster whose gateway the traffic enters')
      .requiredOption('--fail <cluster>', 'the cluster to fail')
      .option('--mode <mode>', 'drain (through the controller), blackhole (its gateway stops answering for the service) or kill (its local gateway process)', 'drain')
      .option('--duration <duration>', 'whole drill: a quarter baseline, half failure, a quarter recovery', '60s')
      .option('--rps <n>', 'requests per second', '200')
      .option('--protocol <http|grpc>', 'HTTP/1.1 requests or gRPC unary calls (fedgate.test.Echo)', 'http')
      .option('--target <host:port>', "the --from gateway's outbound listener (default: from --from-config, else 127.0.0.1:15001)")
      .option('--from-config <file>', "the --from cluster's file, for its outbound address")
      .option('--fail-config <file>', "kill mode: the failing cluster's file (its gateway runs on this host)")
      .option('--out <dir>', 'where the report goes (default: drills/<time>-<service>-<mode>)')
      .option('--max-errors <n>', 'objective: at most this many failed requests')
      .option('--max-failover-seconds <s>', 'objective: 100% failed over within this many seconds'),
  ).action(async (flags: DrillRunFlags) => {
    const plan = drillPlan(flags);
    if (plan.mode === 'kill' && !flags.failConfig) throw new UsageError('--mode kill needs --fail-config (the failing cluster\'s file; its gateway must run on this host)');
    const address = flags.target ?? (flags.fromConfig ? loadClusterFile(flags.fromConfig).spec.gateway.outbound.replace(/^0\.0\.0\.0:/, '127.0.0.1:') : '127.0.0.1:15001');
    const target: LoadTarget = plan.protocol === 'grpc' ? { kind: 'grpc', address, authority: plan.authority } : { kind: 'http', address, authority: plan.authority };
    const admin = openAdmin(flags);
    try {
      const injector = plan.mode === 'drain' ? drainInjector(admin, plan.fail) : plan.mode === 'blackhole' ? blackholeInjector(admin, plan.fail, plan.serviceKey) : killInjector(flags.failConfig as string);
      const { authority: _authority, ...reported } = plan;
      await recordDrill(admin, reported, undefined, undefined, io.err);
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
        report = await runDrill(reported, target, injector, { progress: io.err, signal: interrupt.signal });
      } catch (error) {
        if (!(error instanceof DrillAborted)) throw error;
        await recordDrill(admin, reported, undefined, 'aborted', io.err);
        io.err(`${error.message} (${error.samples.length} requests sent; no report written)`);
        throw new ExitWith(1);
      } finally {
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
      }
      await recordDrill(admin, reported, report, report.objectives.passed ? 'passed' : 'failed', io.err);
      const stamp = report.startedAt.replace(/[:.]/g, '-');
      const dir = flags.out ?? join('drills', `${stamp}-${plan.serviceKey.replace('/', '-')}-${plan.mode}`);
      const files = writeReport(report, dir);
      for (const line of summaryLines(report)) io.out(line);
      io.out(`report: ${files.markdown} (also ${files.json}, ${files.svg})`);
      if (!report.objectives.passed) throw new ExitWith(1);
    } finally {
      admin.close();
    }
  });
}
