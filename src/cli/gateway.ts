import { accessSync, constants, existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
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
import { outputOption, printResult } from './output.js';
import { untilSignal } from './signals.js';
import { checkConfigFile, explainStartFailure, listenProblem } from './startup-errors.js';

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
      checkConfigFile(options.config, '--config', 'the cluster file (e.g. federation-config/clusters/us-east.yaml)');
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
      const file = resolve(options.config);
      const gatewaySpec = cluster.spec.gateway;
      const listeners = [
        { field: 'spec.gateway.inbound', address: gatewaySpec.inbound },
        { field: 'spec.gateway.outbound', address: gatewaySpec.outbound },
        { field: 'spec.gateway.admin', address: gatewaySpec.admin },
        ...gatewaySpec.tcpImports.map((t, i) => ({ field: `spec.gateway.tcpImports[${i}].listen`, address: t.listen })),
      ];
      const dirs = [
        { field: 'spec.gateway.stateDir', dir: cluster.stateDir, code: ErrorCodes.STATE_DIR_UNUSABLE },
        { field: 'spec.pkiDir', dir: cluster.pkiDir, code: ErrorCodes.PKI_DIR_UNUSABLE },
      ];
      const busy = await listenProblem(file, listeners);
      if (busy) throw busy;
      try {
        mkdirSync(cluster.stateDir, { recursive: true });
        writeFileAtomicSync(pidFile, `${process.pid}\n`);
      } catch (error) {
        const explained = await explainStartFailure(error, file, [], dirs);
        throw explained instanceof FedgateError
          ? explained
          : new FedgateError(ErrorCodes.STATE_DIR_UNUSABLE, `the gateway's state dir ${cluster.stateDir} is not writable (${errorMessage(error)}); free space or fix its permissions (spec.gateway.stateDir)`);
      }
      let gateway: Gateway | undefined;
      try {
        gateway = new Gateway({ cluster, log, registry, federation, discovery: await discoveryFor(cluster, log), version: process.env.npm_package_version });
        registerCertificateMetrics(registry, gateway.identity);
        await gateway.start();
      } catch (error) {
        // Stopped first: the address probes in explainStartFailure must not find this process's own listeners.
        await gateway?.stop().catch(() => undefined);
        rmSync(pidFile, { force: true });
        log.flush();
        throw await explainStartFailure(error, file, listeners, dirs);
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
    .addOption(outputOption())
    .action(async (options: { config: string; token?: string; tokenFile?: string; rejoin?: boolean; controllerCa?: string; output: string }) => {
      checkConfigFile(options.config, '--config', 'the cluster file (e.g. federation-config/clusters/us-east.yaml)');
      const cluster = loadClusterFile(options.config);
      const tokenFile = options.tokenFile ?? cluster.spec.controller?.tokenFile;
      if (options.token === undefined && tokenFile && !existsSync(tokenFile)) {
        const source = options.tokenFile ? '--token-file' : `spec.controller.tokenFile in ${resolve(options.config)}`;
        throw new FedgateError(
          ErrorCodes.TOKEN_FILE_NOT_FOUND,
          `token file ${tokenFile} (${source}) not found: create a token with "fedgate token create --cluster ${cluster.metadata.name} --out ${tokenFile}" where the controller runs, and copy it here`,
        );
      }
      const token = options.token ?? (tokenFile ? readFileSync(tokenFile, 'utf8').trim() : undefined);
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
      // Before the token is spent: a state dir that cannot hold membership.json would waste it.
      try {
        mkdirSync(cluster.stateDir, { recursive: true });
        accessSync(cluster.stateDir, constants.W_OK);
      } catch (error) {
        throw await explainStartFailure(error, resolve(options.config), [], [{ field: 'spec.gateway.stateDir', dir: cluster.stateDir, code: ErrorCodes.STATE_DIR_UNUSABLE }]);
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
      }).catch((error: unknown) => {
        // The controller says what happened to the token; what to do next depends on this cluster.
        if (error instanceof FedgateError && error.code === ErrorCodes.TOKEN_USED) {
          throw new FedgateError(error.code, `${error.message}: create a new one with "fedgate token create --cluster ${cluster.metadata.name}"`);
        }
        if (error instanceof FedgateError && error.code === ErrorCodes.UNAVAILABLE) {
          const message = error.message.replace(/\.? ?Resolution note:.*$/s, '').replace(/No connection established\. Last error: (Error: )?/, '');
          const hint = message.startsWith('cannot fetch the controller CA')
            ? 'start the controller, or, when its admin port (from the join token) is not reachable from here, give --controller-ca with its CA certificate (<controller pkiDir>/ca.crt)'
            : "start the controller, and check that its join port (spec.controller.joinListen, or advertiseJoin) is reachable from here";
          throw new FedgateError(ErrorCodes.CONTROLLER_UNREACHABLE, `${message}: ${hint}`);
        }
        throw error;
      });
      writeMembership(cluster.stateDir, membership);
      const saved = membershipFile(cluster.stateDir);
      const verb = existing || options.rejoin ? 're-joined' : 'joined';
      printResult(io, options.output, { cluster: cluster.metadata.name, federation: membership.federation, controller: membership.apiAddress, membershipFile: saved, rejoined: verb === 're-joined' }, () =>
        io.out(`${cluster.metadata.name} ${verb} federation "${membership.federation}"; controller API ${membership.apiAddress}; membership saved in ${saved}`),
      );
    });
}
