import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { errorMessage } from '../core/errors.js';
import { loadClusterFile } from '../config/load.js';
import { DemoFederation, type LocalProcess } from '../demo/local-federation.js';
import { startExportBackends } from '../demo/sample-backends.js';
import { runDrill, writeReport, type DrillInjector } from '../drill/drill-runner.js';
import { restoredCheck } from '../drill/federation-preflight.js';
import { gatewayHealthWatch } from '../drill/health-watch.js';
import { runPreflight } from '../drill/preflight.js';
import { summaryLines } from '../drill/render.js';
import { withPostflight, type DrillPlan } from '../drill/report.js';
import { connectAdmin, readAdminCredentials, type AdminConnection } from './controller-api.js';
import { DrillRecorder, drainInjector, drillOutcome } from './drill.js';
import { ExitWith, UsageError } from './cli-error.js';
import { labUnavailable, runLabDemo } from './demo-lab.js';
import { applyExamplePolicies, waitActive } from './demo-steps.js';
import type { CliIo } from './io.js';
import { untilSignal } from './signals.js';

interface DemoOptions {
  dir?: string;
  keep?: boolean;
  lab?: boolean;
  drillSeconds: string;
  rps: string;
}

/** Kill mode in the demo: the demo owns the gateway process, so it kills and restarts its own child. */
function demoKillInjector(federation: DemoFederation, cluster: string): DrillInjector {
  return {
    description: `kill the ${cluster} gateway process (SIGKILL)`,
    inject: async () => {
      await (federation.gateways.get(cluster) as LocalProcess).kill();
    },
    restore: async () => {
      await federation.startGateway(cluster);
    },
  };
}

export function registerDemoCommand(program: Command, io: CliIo): void {
  const demo = program
    .command('demo')
    .description('start a local federation (controller, gateways us-east, us-west, eu-west, sample services, example policies), run a drain and a kill drill (--lab: a drain and a partition drill, each cluster on its own network namespace), print the reports')
    .option('--dir <dir>', 'work directory for config, certificates, state, logs and reports (default: a new temp directory)')
    .option('--keep', 'leave the federation running after the drills (Ctrl-C stops it)')
    .option('--lab', 'run every cluster, the controller and Redis on its own network namespace with its own address, and partition one cluster by dropping its packets (needs root; without it, the loopback demo runs)')
    .option('--drill-seconds <n>', 'length of each drill', '8')
    .option('--rps <n>', 'drill request rate', '100')
    .action(async (options: DemoOptions) => {
      const started = Date.now();
      const elapsed = (): string => `${((Date.now() - started) / 1000).toFixed(1)}s`;
      const drillMs = Math.round(Number(options.drillSeconds) * 1000);
      const rps = Number(options.rps);
      if (!Number.isFinite(drillMs) || drillMs < 2000 || !Number.isFinite(rps) || rps < 1 || rps > 2000) throw new UsageError('--drill-seconds must be at least 2 and --rps between 1 and 2000');
      if (options.lab) {
        const unavailable = labUnavailable();
        if (unavailable === undefined) {
          await runLabDemo({ dir: options.dir, keep: options.keep === true, drillMs, rps }, io, elapsed);
          return;
        }
        io.err(`fedgate demo --lab: ${unavailable}; running the loopback demo instead`);
      }
      const workDir = resolve(options.dir ?? mkdtempSync(join(tmpdir(), 'fedgate-demo-')));
      const federation = new DemoFederation(workDir);
      const storeUrl = process.env.REDIS_URL ?? '';
      // REDIS_URL reaches the controller through its environment (federation.yaml leaves the store URL empty).
      const env = { ...process.env, FEDGATE_LOG_LEVEL: process.env.FEDGATE_LOG_LEVEL ?? 'info' };
      let admin: AdminConnection | undefined;
      io.out(`fedgate demo — work directory ${workDir}`);
      try {
        await federation.checkPorts();
        federation.initCertificateAuthorities();
        await federation.startBackends();
        io.out(`[${elapsed()}] sample services: ${federation.backends.map((b) => `${b.service} (${b.protocol}) in ${b.cluster}`).join(', ')}`);
        await federation.startController(env);
        io.out(`[${elapsed()}] controller up (${storeUrl ? `Redis at ${storeUrl.replace(/\/\/[^@]*@/, '//***@')}` : 'embedded journal store'}), API ${federation.controllerApi}`);
        admin = connectAdmin(federation.controllerApi.replace(/^0\.0\.0\.0:/, '127.0.0.1:'), readAdminCredentials(federation.credentialsDir));
        const connection = admin;
        for (const cluster of federation.clusters) {
          const { token } = await connection.call.createToken({ cluster: cluster.metadata.name, ttlMs: 600_000 });
          federation.writeToken(cluster.metadata.name, token);
        }
        await Promise.all(federation.clusters.map((c) => federation.startGateway(c.metadata.name, env)));
        io.out(`[${elapsed()}] gateways joined with one-time tokens: ${federation.clusters.map((c) => `${c.metadata.name} (outbound ${c.spec.gateway.outbound})`).join(', ')}`);

        await applyExamplePolicies(connection, join(federation.configDir, 'policies'), io, elapsed);
        const drain = drainInjector(connection, 'us-east');
        const kill = demoKillInjector(federation, 'us-east');
        const drills: Array<{ plan: DrillPlan; authority: string; protocol: 'http' | 'grpc'; injector: DrillInjector }> = [
          {
            plan: { service: 'greeter.default', serviceKey: 'default/greeter', protocol: 'grpc', from: 'us-west', fail: 'us-east', mode: 'drain', rps, durationMs: drillMs, objectives: { maxErrors: 0 }, failure: { description: drain.description } },
            authority: 'greeter.default.svc.clusterset.local',
            protocol: 'grpc',
            injector: drain,
          },
          {
            plan: { service: 'payments.default', serviceKey: 'default/payments', protocol: 'http', from: 'eu-west', fail: 'us-east', mode: 'kill', rps, durationMs: drillMs, objectives: { maxFailoverSeconds: 1 }, failure: { description: kill.description } },
            authority: 'payments.default.svc.clusterset.local',
            protocol: 'http',
            injector: kill,
          },
        ];
        const reports: string[] = [];
        for (const drill of drills) {
          const outbound = federation.cluster(drill.plan.from).spec.gateway.outbound;
          io.out(`[${elapsed()}] drill: ${drill.plan.mode} ${drill.plan.fail} while ${drill.plan.from} calls ${drill.plan.service} (${drill.protocol}, ${rps} rps, ${drillMs / 1000}s)`);
          const recorder = new DrillRecorder(connection, drill.plan, io.err);
          await recorder.start();
          const fromAdmin = federation.cluster(drill.plan.from).spec.gateway.admin;
          const measured = await runDrill(drill.plan, { kind: drill.protocol, address: outbound, authority: drill.authority }, drill.injector, {
            progress: (line) => io.out(`    ${line}`),
            ...(drill.plan.mode !== 'drain' ? { detection: gatewayHealthWatch(fromAdmin, drill.plan.fail) } : {}),
          });
          const postflight = await runPreflight([restoredCheck(() => connection.call.status({}), drill.plan.fail)]);
          const report = withPostflight(measured, postflight.results);
          await recorder.finish(report, drillOutcome(report.verdict));
          const files = writeReport(report, join(workDir, 'drills', `${drill.plan.mode}-${drill.plan.serviceKey.replace('/', '-')}`));
          for (const line of summaryLines(report)) io.out(line);
          io.out(`  report: ${files.markdown}`);
          reports.push(files.markdown);
          io.out('');
          await waitActive(connection);
        }
        io.out(`[${elapsed()}] done. Reports: ${reports.join(', ')}`);
        io.out(`  JSON and SVG timelines are next to them; logs in ${federation.logDir}`);
        if (options.keep) {
          const west = federation.cluster('us-west').spec.gateway.outbound;
          io.out('');
          io.out('the federation keeps running (Ctrl-C stops it). Try:');
          io.out(`  curl -s -H 'host: payments.default.svc.clusterset.local' http://${west}/`);
          io.out(`  node ${process.argv[1]} status --controller ${federation.controllerApi} --credentials ${federation.credentialsDir}`);
          io.out(`  node ${process.argv[1]} drill run --service payments.default --from eu-west --fail us-east --mode blackhole --duration 20s --rps 50 --target ${federation.cluster('eu-west').spec.gateway.outbound} --controller ${federation.controllerApi} --credentials ${federation.credentialsDir}`);
          await untilSignal();
        }
      } catch (error) {
        io.err(`demo failed: ${errorMessage(error)}`);
        io.err(`logs: ${federation.logDir}`);
        throw new ExitWith(1);
      } finally {
        admin?.close();
        await federation.stop();
      }
    });

  demo
    .command('backends')
    .description("serve the sample services of a cluster file's exports on 127.0.0.1:<targetPort> until Ctrl-C (what the demo runs inside each lab cluster)")
    .requiredOption('--config <file>', 'the cluster file')
    .action(async (options: { config: string }) => {
      const backends = await startExportBackends(loadClusterFile(options.config));
      io.out(`backends ready: ${backends.map((b) => `${b.service} (${b.protocol}) on ${b.address}`).join(', ') || 'none'}`);
      await untilSignal();
      await Promise.all(backends.map((b) => b.close()));
    });
}
