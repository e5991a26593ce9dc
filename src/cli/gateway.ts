import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import type { Command } from 'commander';
import { loadClusterFile, loadFederationDirectory } from '../config/load.js';
import type { ClusterConfig } from '../config/cluster-config.js';
import { createRootLogger, type Logger } from '../core/logger.js';
import { createMetricsRegistry } from '../admin/metrics.js';
import type { DiscoveryProvider } from '../discovery/provider.js';
import { FileDiscoveryProvider } from '../discovery/file-provider.js';
import { Gateway } from '../gateway/gateway.js';
import { joinFederation, readMembership, writeMembership } from '../gateway/control/join-client.js';
import { GatewayIdentity } from '../gateway/gateway-identity.js';
import type { CliIo } from './io.js';
import { installProcessGuards } from './process-guards.js';
import { UsageError } from './cli-error.js';
import { outputOption, printResult } from './output.js';
import { untilSignal } from './signals.js';

export function gatewayPidFile(stateDir: string): string {
  return join(stateDir, 'gateway.pid');
}

export async function discoveryFor(cluster: ClusterConfig, log: Logger): Promise<DiscoveryProvider> {
  if (cluster.spec.discovery.mode === 'kubernetes') {
    // Loaded only in Kubernetes mode: the client library is large and slow to import.
    const modulePath = '../discovery/kubernetes/kubernetes-provider.js';
    const { KubernetesDiscoveryProvider } = (await import(modulePath)) as { KubernetesDiscoveryProvider: new (cluster: ClusterConfig, log: Logger) => DiscoveryProvider };
    return new KubernetesDiscoveryProvider(cluster, log.child({ component: 'kubernetes' }));
  }
  return new FileDiscoveryProvider(cluster, log.child({ component: 'discovery' }), { env: process.env });
}

export function registerGatewayCommand(program: Command, io: CliIo): void {
  program
    .command('gateway')
    .description('run the east-west gateway of one cluster')
    .requiredOption('--config <file>', 'the cluster file, e.g. federation-config/clusters/us-east.yaml')
    .option('--federation-config <dir>', 'static mode (no spec.controller): the federation-config directory (default: the parent of the cluster file\'s directory)')
    .action(async (options: { config: string; federationConfig?: string }) => {
      const cluster = loadClusterFile(options.config);
      const log = createRootLogger({ name: 'fedgate-gateway', base: { cluster: cluster.metadata.name } });
      const registry = createMetricsRegistry({ component: 'gateway', cluster: cluster.metadata.name });
      installProcessGuards(log);
      const federation = cluster.spec.controller ? undefined : loadFederationDirectory(options.federationConfig ?? dirname(dirname(resolve(options.config))));
      if (federation) log.info({ root: federation.root }, 'no controller configured: static federation from federation-config');
      const gateway = new Gateway({ cluster, log, registry, federation, discovery: await discoveryFor(cluster, log), version: process.env.npm_package_version });
      await gateway.start();
      const ports = gateway.ports;
      // Lets a local drill (--mode kill) find this process; removed on a clean stop.
      const pidFile = gatewayPidFile(cluster.stateDir);
      mkdirSync(cluster.stateDir, { recursive: true });
      writeFileSync(pidFile, `${process.pid}\n`);
      io.err(`fedgate gateway ${cluster.metadata.name}: inbound :${ports.inbound}, outbound :${ports.outbound}, admin http://${cluster.spec.gateway.admin.replace(/:\d+$/, `:${ports.admin}`)}`);
      const signal = await untilSignal();
      log.info({ signal }, 'shutting down');
      await gateway.stop();
      rmSync(pidFile, { force: true });
      log.flush();
    });
}

export function registerJoinCommand(program: Command, io: CliIo): void {
  program
    .command('join')
    .description('join this cluster to a federation with a one-time token (the gateway also joins by itself with spec.controller.tokenFile)')
    .requiredOption('--config <file>', 'the cluster file')
    .option('--token <token>', 'the join token')
    .option('--token-file <file>', 'file holding the join token')
    .addOption(outputOption())
    .action(async (options: { config: string; token?: string; tokenFile?: string; output: string }) => {
      const cluster = loadClusterFile(options.config);
      const tokenFile = options.tokenFile ?? cluster.spec.controller?.tokenFile;
      const token = options.token ?? (tokenFile && existsSync(tokenFile) ? readFileSync(tokenFile, 'utf8').trim() : undefined);
      if (!token) throw new UsageError('give --token or --token-file (or spec.controller.tokenFile in the cluster file)');
      const existing = readMembership(cluster.stateDir);
      if (existing) throw new UsageError(`${cluster.metadata.name} already joined federation "${existing.federation}" (${join(cluster.stateDir, 'membership.json')}); remove that file to join again`);
      const log = createRootLogger({ name: 'fedgate-join', level: 'warn' });
      const identity = GatewayIdentity.load(cluster, 3_600_000, log);
      const membership = await joinFederation({
        token,
        info: {
          name: cluster.metadata.name,
          region: cluster.spec.region,
          zone: cluster.spec.zone,
          trustDomain: cluster.spec.trustDomain,
          gatewayAddresses: cluster.spec.gateway.advertise ?? [cluster.spec.gateway.inbound],
          labels: cluster.metadata.labels,
          state: '',
          stateReason: '',
          stateChangedBy: '',
          stateChangedAtMs: 0,
          joinedAtMs: 0,
          blackholedServices: [],
        },
        bundle: identity.ownBundle,
        log,
      });
      writeMembership(cluster.stateDir, membership);
      const saved = join(cluster.stateDir, 'membership.json');
      printResult(io, options.output, { cluster: cluster.metadata.name, federation: membership.federation, controller: membership.apiAddress, membershipFile: saved }, () =>
        io.out(`${cluster.metadata.name} joined federation "${membership.federation}"; controller API ${membership.apiAddress}; membership saved in ${saved}`),
      );
    });
}
