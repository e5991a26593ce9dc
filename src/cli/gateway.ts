import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import type { Command } from 'commander';
import { loadClusterFile, loadFederationDirectory } from '../config/load.js';
import type { ClusterConfig } from '../config/cluster-config.js';
import { createRootLogger, type Logger } from '../core/logger.js';
import { registerCertificateMetrics } from '../admin/certificate-metrics.js';
import { createMetricsRegistry } from '../admin/metrics.js';
import type { DiscoveryProvider } from '../discovery/provider.js';
import { FileDiscoveryProvider } from '../discovery/file-provider.js';
import { Gateway } from '../gateway/gateway.js';
import { joinFederation } from '../gateway/control/join-client.js';
import { membershipFile, readMembership, StateFileError, writeMembership } from '../gateway/control/membership.js';
import { writeFileAtomicSync } from '../core/atomic-file.js';
import { ErrorCodes, errorMessage, FedgateError } from '../core/errors.js';
import { GatewayIdentity } from '../gateway/gateway-identity.js';
import type { CliIo } from './io.js';
import { installProcessGuards } from './process-guards.js';
import { UsageError } from './cli-error.js';
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
      // The state dir is checked before anything listens: a full or read-only disk is one clear
      // error now, not a stack trace after the listeners are up. The pid file lets a local drill
      // (--mode kill) find this process; it is removed on a clean stop.
      const pidFile = gatewayPidFile(cluster.stateDir);
      try {
        mkdirSync(cluster.stateDir, { recursive: true });
        writeFileAtomicSync(pidFile, `${process.pid}\n`);
      } catch (error) {
        throw new FedgateError(ErrorCodes.STATE_DIR_UNUSABLE, `the gateway's state dir ${cluster.stateDir} is not writable (${errorMessage(error)}); free space or fix its permissions (spec.stateDir)`);
      }
      const gateway = new Gateway({ cluster, log, registry, federation, discovery: await discoveryFor(cluster, log), version: process.env.npm_package_version });
      registerCertificateMetrics(registry, gateway.identity);
      try {
        await gateway.start();
      } catch (error) {
        await gateway.stop().catch(() => undefined);
        rmSync(pidFile, { force: true });
        throw error;
      }
      const ports = gateway.ports;
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
    .option('--rejoin', 'join again although membership.json exists (the controller lost its state, or the cluster was removed); keeps the cluster CA and certificates, replaces the membership; a running gateway picks it up')
    .option('--controller-ca <file>', "the controller CA certificate, when the controller's admin port (GET /ca.crt) is not reachable; checked against the token's hash")
    .action(async (options: { config: string; token?: string; tokenFile?: string; rejoin?: boolean; controllerCa?: string }) => {
      const cluster = loadClusterFile(options.config);
      const tokenFile = options.tokenFile ?? cluster.spec.controller?.tokenFile;
      const token = options.token ?? (tokenFile && existsSync(tokenFile) ? readFileSync(tokenFile, 'utf8').trim() : undefined);
      if (!token) throw new UsageError('give --token or --token-file (or spec.controller.tokenFile in the cluster file)');
      let existing: ReturnType<typeof readMembership>;
      try {
        existing = readMembership(cluster.stateDir, cluster.metadata.name);
      } catch (error) {
        // A damaged membership is exactly what --rejoin repairs.
        if (!(error instanceof StateFileError) || !options.rejoin) throw error;
      }
      if (existing && !options.rejoin) {
        throw new UsageError(`${cluster.metadata.name} already joined federation "${existing.federation}" (${membershipFile(cluster.stateDir)}); to join again (the controller lost its state, or the cluster was removed) add --rejoin`);
      }
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
        controllerCaPem: options.controllerCa ? readFileSync(options.controllerCa, 'utf8') : undefined,
      });
      writeMembership(cluster.stateDir, membership);
      io.out(`${cluster.metadata.name} ${existing || options.rejoin ? 're-joined' : 'joined'} federation "${membership.federation}"; controller API ${membership.apiAddress}; membership saved in ${membershipFile(cluster.stateDir)}`);
    });
}
