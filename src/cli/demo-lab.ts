import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { loadClusterFile } from '../config/load.js';
import { errorMessage } from '../core/errors.js';
import { LabFederation, type LabCluster } from '../demo/lab-federation.js';
import { LabNetwork } from '../demo/lab-network.js';
import { embeddedFederationConfig } from '../demo/local-federation.js';
import { connectAdmin, readAdminCredentials, type AdminConnection } from './controller-api.js';
import { ExitWith } from './cli-error.js';
import { applyExamplePolicies, waitActive } from './demo-steps.js';
import type { CliIo } from './io.js';
import { untilSignal } from './signals.js';

/** Why `fedgate demo --lab` cannot run here (it then runs the loopback demo), or undefined. */
export function labUnavailable(): string | undefined {
  const network = LabNetwork.unavailable();
  if (network) return network;
  try {
    execFileSync('nft', ['--version'], { stdio: 'ignore' });
  } catch {
    return 'nft (the nftables package) is missing, and the partition drill needs it: install nftables (tools/setup.sh does)';
  }
  return undefined;
}

/** The example federation's clusters, with their regions and exports, as lab hosts. */
function exampleClusters(): LabCluster[] {
  return ['us-east', 'us-west', 'eu-west'].map((name) => {
    const cluster = loadClusterFile(join(embeddedFederationConfig(), 'clusters', `${name}.yaml`));
    return {
      name,
      region: cluster.spec.region,
      zone: cluster.spec.zone,
      exports: cluster.spec.exports.map((e) => ({ service: e.service, namespace: e.namespace, ports: e.ports.map((p) => ({ name: p.name, port: p.port, ...(p.targetPort !== undefined ? { targetPort: p.targetPort } : {}), protocol: p.protocol })), consumers: [...e.consumers] })),
    };
  });
}

/**
 * `fedgate demo --lab`: the example federation with each cluster, the controller and Redis on a
 * network namespace of its own, a drain drill and a partition drill run by the real CLI from the
 * --from cluster's namespace. Everything is removed at the end, on Ctrl-C or SIGTERM too.
 */
export async function runLabDemo(options: { dir?: string; keep: boolean; drillMs: number; rps: number }, io: CliIo, elapsed: () => string): Promise<void> {
  const workDir = resolve(options.dir ?? mkdtempSync(join(tmpdir(), 'fedgate-lab-')));
  const bin = resolve(process.argv[1] as string);
  io.out(`fedgate demo --lab — work directory ${workDir}`);
  let federation: LabFederation | undefined;
  let admin: AdminConnection | undefined;
  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      admin?.close();
      await federation?.stop();
    })();
    return stopping;
  };
  // A signal at any point (while namespaces are being made, during a drill) ends the demo
  // with everything it created removed; the drill's own process restores its partition first.
  const onSignal = (signal: NodeJS.Signals): void => {
    io.err(`${signal}: stopping the lab and removing its namespaces`);
    void stop().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    federation = await LabFederation.create(exampleClusters(), { bin, dir: workDir, policies: join(embeddedFederationConfig(), 'policies'), env: { FEDGATE_LOG_LEVEL: process.env.FEDGATE_LOG_LEVEL ?? 'info' } });
    const lab = federation;
    io.out(`[${elapsed()}] lab ${lab.network.id}: bridge ${lab.network.subnet}, this machine ${lab.network.gateway}`);
    for (const host of lab.network.hosts.values()) io.out(`    ${host.name.padEnd(10)} ${host.address.padEnd(15)} netns ${host.netns}`);
    await lab.startRedis();
    await lab.startController();
    io.out(`[${elapsed()}] controller up on ${lab.controller.api} (${lab.redis ? `Redis at ${lab.redis.url}` : 'embedded store: redis-server is not installed'})`);
    await lab.writeTokens();
    for (const name of lab.clusters.keys()) await lab.startBackends(name);
    await Promise.all([...lab.clusters.keys()].map((name) => lab.startGateway(name)));
    io.out(`[${elapsed()}] gateways joined with one-time tokens: ${[...lab.clusters.values()].map((c) => `${c.name} (${c.inbound})`).join(', ')}`);
    admin = connectAdmin(lab.controller.api, readAdminCredentials(lab.credentialsDir));
    const connection = admin;
    await applyExamplePolicies(connection, join(workDir, 'policies'), io, elapsed);

    const seconds = `${options.drillMs / 1000}s`;
    const drill = (from: string, args: string[]): string[] => [
      'drill',
      'run',
      '--from',
      from,
      '--duration',
      seconds,
      '--rps',
      String(options.rps),
      '--target',
      lab.cluster(from).outbound,
      '--from-admin',
      lab.cluster(from).admin,
      ...args,
      ...lab.cliTarget(),
    ];
    const drills = [
      { from: 'us-west', title: 'drain us-east while us-west calls greeter.default (gRPC)', args: drill('us-west', ['--service', 'greeter.default', '--protocol', 'grpc', '--fail', 'us-east', '--mode', 'drain', '--out', join(workDir, 'drills', 'drain-default-greeter')]) },
      {
        from: 'eu-west',
        title: "partition us-east (its packets dropped both ways) while eu-west calls payments.default (HTTP)",
        args: drill('eu-west', ['--service', 'payments.default', '--fail', 'us-east', '--mode', 'partition', '--direction', 'both', '--fail-netns', lab.cluster('us-east').host.netns, '--out', join(workDir, 'drills', 'partition-default-payments')]),
      },
    ];
    const reports: string[] = [];
    for (const d of drills) {
      io.out(`[${elapsed()}] drill: ${d.title}, ${options.rps} rps, ${seconds}`);
      io.out(`    $ ip netns exec ${lab.cluster(d.from).host.netns} fedgate ${d.args.join(' ')}`);
      const result = await lab.run(d.from, d.args, { onLine: (line, stream) => io.out(stream === 'stderr' ? `    ${line}` : line) });
      if (result.code === 2 || result.code === null) throw new Error(`the drill did not run (exit ${result.code})`);
      reports.push(join(d.args[d.args.indexOf('--out') + 1] as string, 'report.md'));
      io.out('');
      await waitActive(connection);
    }
    io.out(`[${elapsed()}] done. Reports: ${reports.join(', ')}`);
    io.out(`  JSON and SVG timelines are next to them; logs in ${lab.logDir}`);
    if (options.keep) {
      const east = lab.cluster('us-east').host.netns;
      const west = lab.cluster('eu-west');
      io.out('');
      io.out('the lab keeps running (Ctrl-C stops it and removes its namespaces). Try:');
      io.out(`  curl -s -H 'host: payments.default.svc.clusterset.local' http://${west.outbound}/`);
      io.out(`  node ${bin} status ${lab.cliTarget().join(' ')}`);
      io.out(`  ip netns exec ${west.host.netns} node ${bin} drill run --service payments.default --from eu-west --fail us-east --mode partition --direction in --fail-netns ${east} --duration 20s --rps 200 --target ${west.outbound} --from-admin ${west.admin} ${lab.cliTarget().join(' ')}`);
      // From here a signal is the normal way out: the finally below removes the lab.
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      await untilSignal();
    }
  } catch (error) {
    // Stopped by a signal: the failure is the processes going away under the demo, not news.
    if (stopping) throw new ExitWith(130);
    io.err(`demo failed: ${errorMessage(error)}`);
    if (federation) io.err(`logs: ${federation.logDir}`);
    throw new ExitWith(1);
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await stop();
  }
}
