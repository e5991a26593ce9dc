import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { errorMessage } from '../core/errors.js';
import { DemoFederation, type LocalProcess } from '../demo/local-federation.js';
import { runDrill, writeReport, type DrillInjector } from '../drill/drill-runner.js';
import { summaryLines } from '../drill/render.js';
import type { DrillPlan } from '../drill/report.js';
import { connectAdmin, readAdminCredentials, type AdminConnection } from './controller-api.js';
import { drainInjector, recordDrill } from './drill.js';
import { ExitWith } from './cli-error.js';
import type { CliIo } from './io.js';
import { validateFiles } from './policy.js';
import { untilSignal } from './signals.js';
import { renderStatus, statusView } from './status.js';

interface DemoOptions {
  dir?: string;
  keep?: boolean;
  drillSeconds: string;
  rps: string;
}

async function eventually(check: () => Promise<boolean>, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
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
  program
    .command('demo')
    .description('start a local federation (controller, gateways us-east, us-west, eu-west, sample services, example policies), run a drain and a kill drill, print the reports')
    .option('--dir <dir>', 'work directory for config, certificates, state, logs and reports (default: a new temp directory)')
    .option('--keep', 'leave the federation running after the drills (Ctrl-C stops it)')
    .option('--drill-seconds <n>', 'length of each drill', '8')
    .option('--rps <n>', 'drill request rate', '100')
    .action(async (options: DemoOptions) => {
      const started = Date.now();
      const elapsed = (): string => `${((Date.now() - started) / 1000).toFixed(1)}s`;
      const workDir = resolve(options.dir ?? mkdtempSync(join(tmpdir(), 'fedgate-demo-')));
      const drillMs = Math.round(Number(options.drillSeconds) * 1000);
      const rps = Number(options.rps);
      if (!Number.isFinite(drillMs) || drillMs < 2000 || !Number.isFinite(rps) || rps < 1 || rps > 2000) throw new Error('--drill-seconds must be at least 2 and --rps between 1 and 2000');
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

        const { read, result, errors } = validateFiles([join(federation.configDir, 'policies')]);
        if (errors.length > 0) throw new Error(`the example policies do not validate: ${errors.map((e) => e.message).join('; ')}`);
        const applied = await connection.call.putPolicies({
          policies: read.inputs.map((input) => ({ key: '', kind: '', namespace: '', name: '', json: JSON.stringify(input.document), revision: 0 })),
          sources: read.origins,
        });
        io.out(`[${elapsed()}] example policies applied: ${read.inputs.length} documents, policy revision ${applied.revision}${result.warnings.length > 0 ? ` (${result.warnings.length} warnings)` : ''}`);
        await eventually(async () => {
          const status = await connection.call.status({});
          const view = statusView(status);
          const everywhere = (service: string, count: number): boolean => view.services.find((s) => s.service === service)?.clusters.length === count;
          return view.clusters.every((c) => c.connected && c.policies.behind === 0 && c.catalog.behind === 0) && everywhere('default/payments', 2) && everywhere('default/greeter', 2);
        }, 'every gateway to hold the catalog and the policies');
        io.out(`[${elapsed()}] federation converged:`);
        io.out('');
        for (const line of renderStatus(statusView(await connection.call.status({})))) io.out(`  ${line}`);
        io.out('');

        const drills: Array<{ plan: DrillPlan; authority: string; protocol: 'http' | 'grpc'; injector: DrillInjector }> = [
          {
            plan: { service: 'greeter.default', serviceKey: 'default/greeter', protocol: 'grpc', from: 'us-west', fail: 'us-east', mode: 'drain', rps, durationMs: drillMs, objectives: { maxErrors: 0 } },
            authority: 'greeter.default.svc.clusterset.local',
            protocol: 'grpc',
            injector: drainInjector(connection, 'us-east'),
          },
          {
            plan: { service: 'payments.default', serviceKey: 'default/payments', protocol: 'http', from: 'eu-west', fail: 'us-east', mode: 'kill', rps, durationMs: drillMs, objectives: { maxFailoverSeconds: 1 } },
            authority: 'payments.default.svc.clusterset.local',
            protocol: 'http',
            injector: demoKillInjector(federation, 'us-east'),
          },
        ];
        const reports: string[] = [];
        for (const drill of drills) {
          const outbound = federation.cluster(drill.plan.from).spec.gateway.outbound;
          io.out(`[${elapsed()}] drill: ${drill.plan.mode} ${drill.plan.fail} while ${drill.plan.from} calls ${drill.plan.service} (${drill.protocol}, ${rps} rps, ${drillMs / 1000}s)`);
          await recordDrill(connection, drill.plan, undefined, undefined, io.err);
          const report = await runDrill(drill.plan, { kind: drill.protocol, address: outbound, authority: drill.authority }, drill.injector, { progress: (line) => io.out(`    ${line}`) });
          await recordDrill(connection, drill.plan, report, report.objectives.passed ? 'passed' : 'failed', io.err);
          const files = writeReport(report, join(workDir, 'drills', `${drill.plan.mode}-${drill.plan.serviceKey.replace('/', '-')}`));
          for (const line of summaryLines(report)) io.out(line);
          io.out(`  report: ${files.markdown}`);
          reports.push(files.markdown);
          io.out('');
          // The next drill starts from a converged federation again.
          await eventually(async () => statusView(await connection.call.status({})).clusters.every((c) => c.connected && c.state === 'active'), 'every cluster active and connected after the drill');
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
}
