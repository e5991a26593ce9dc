import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createSilentLogger, type Logger } from '../../src/core/logger.js';
import { runResilient } from '../../src/core/lifecycle.js';
import { clusterFromObject, federationFromObject } from '../../src/config/load.js';
import { createMetricsRegistry } from '../../src/admin/metrics.js';
import { Controller } from '../../src/controller/controller.js';
import { GatewayIdentity } from '../../src/gateway/gateway-identity.js';
import { CatalogReplica } from '../../src/gateway/control/catalog-replica.js';
import { ControllerClient, type ControllerClientOptions } from '../../src/gateway/control/controller-client.js';
import { StaticExportSource } from '../../src/gateway/control/export-source.js';
import { joinFederation, type FederationMembership } from '../../src/gateway/control/join-client.js';
import { connectAdmin, readAdminCredentials, type AdminConnection } from '../../src/cli/controller-api.js';
import { PkiDirectory } from '../../src/pki/pki-directory.js';
import type { ClusterInfo, ExportSpec } from '../../src/proto/gen/fedgate.js';
import type { Store } from '../../src/store/store.js';

export interface TestController {
  controller: Controller;
  admin: AdminConnection;
  pkiDir: string;
  stop(): Promise<void>;
}

export async function startTestController(store: Store, dir: string, options: { leaseTtl?: string; maxExportsPerCluster?: number; maxMessageBytes?: number; log?: Logger; pkiDir?: string; ports?: { api: number; join: number; admin: number } } = {}): Promise<TestController> {
  const pkiDir = options.pkiDir ?? join(dir, 'controller-pki');
  const federation = federationFromObject(
    {
      apiVersion: 'fedgate.io/v1alpha1',
      kind: 'Federation',
      metadata: { name: 'acme' },
      spec: {
        trustDomain: 'acme.internal',
        controller: {
          listen: `127.0.0.1:${options.ports?.api ?? 0}`,
          joinListen: `127.0.0.1:${options.ports?.join ?? 0}`,
          admin: `127.0.0.1:${options.ports?.admin ?? 0}`,
          pkiDir,
          leaseTtl: options.leaseTtl ?? '15s',
          ...(options.maxExportsPerCluster ? { maxExportsPerCluster: options.maxExportsPerCluster } : {}),
          ...(options.maxMessageBytes ? { maxMessageBytes: options.maxMessageBytes } : {}),
        },
      },
    },
    'test federation',
    dir,
  );
  const controller = new Controller({ federation, store, log: options.log ?? createSilentLogger(), registry: createMetricsRegistry() });
  await controller.start();
  const admin = connectAdmin(controller.addresses.api, readAdminCredentials(join(pkiDir, 'admin')));
  return {
    controller,
    admin,
    pkiDir,
    stop: async () => {
      admin.close();
      await controller.stop();
    },
  };
}

export function exportSpec(name: string, overrides: Partial<ExportSpec> = {}): ExportSpec {
  return {
    namespace: 'default',
    name,
    ports: [{ name: 'http', port: 8080, protocol: 'http' }],
    readyEndpoints: 2,
    totalEndpoints: 2,
    consumers: [],
    createdAtMs: 0,
    ...overrides,
  };
}

export interface SimulatedGateway {
  name: string;
  identity: GatewayIdentity;
  catalog: CatalogReplica;
  exports: StaticExportSource;
  client: ControllerClient;
  membership: FederationMembership;
  info: ClusterInfo;
  stop(): void;
}

/** A gateway's control plane without its data plane: joins with a token, then syncs. */
export async function joinSimulatedGateway(
  admin: AdminConnection,
  dir: string,
  name: string,
  options: { exports?: ExportSpec[]; apiAddresses?: string[]; log?: Logger; stateDir?: string; instance?: string; onVerdicts?: ControllerClientOptions['onVerdicts'] } = {},
): Promise<SimulatedGateway> {
  const pkiDir = join(dir, 'pki', name);
  const trustDomain = `${name}.acme.internal`;
  PkiDirectory.init(pkiDir, { trustDomain });
  const cluster = clusterFromObject(
    { apiVersion: 'fedgate.io/v1alpha1', kind: 'Cluster', metadata: { name }, spec: { region: `${name}-r`, zone: `${name}-z`, trustDomain, pkiDir, gateway: { inbound: '127.0.0.1:1' } } },
    join(dir, 'clusters', `${name}.yaml`),
  );
  const log = options.log ?? createSilentLogger();
  const identity = GatewayIdentity.load(cluster, 3_600_000, log);
  const info = {
    name,
    region: cluster.spec.region,
    zone: cluster.spec.zone,
    trustDomain,
    gatewayAddresses: ['127.0.0.1:1'],
    labels: {},
    state: '',
    stateReason: '',
    stateChangedBy: '',
    stateChangedAtMs: 0,
    joinedAtMs: 0,
    blackholedServices: [],
  };
  const { token } = await admin.call.createToken({ cluster: name, ttlMs: 60_000 });
  const membership = await joinFederation({ token, info, bundle: identity.ownBundle, log });
  const catalog = new CatalogReplica({ log, stateDir: options.stateDir, check: (data, previous) => GatewayIdentity.checkBundles(data.bundles, previous.bundles) });
  const exports = new StaticExportSource(options.exports ?? []);
  const client = new ControllerClient({
    membership: () => (options.apiAddresses ? { ...membership, controllerAddresses: options.apiAddresses } : membership),
    instance: options.instance ?? `${name}-0`,
    info: () => info,
    svid: identity.svid,
    ownBundle: () => identity.bundleRecord(),
    refreshOwnBundle: () => identity.refreshOwnBundle(),
    catalog,
    exports,
    log,
    onVerdicts: options.onVerdicts,
  });
  const abort = new AbortController();
  void runResilient(client, abort.signal, { log, backoff: { initialMs: 50, maxMs: 500 }, healthyAfterMs: 2000 });
  return { name, identity, catalog, exports, client, membership, info, stop: () => abort.abort() };
}

/**
 * A second process of the same cluster's gateway (a Deployment replica): same membership, SVID and
 * exports, its own instance id, catalog and Sync stream.
 */
export function startGatewayReplica(of: SimulatedGateway, instance: string, log: Logger = createSilentLogger()): SimulatedGateway {
  const catalog = new CatalogReplica({ log, check: (data, previous) => GatewayIdentity.checkBundles(data.bundles, previous.bundles) });
  const exports = new StaticExportSource(of.exports.current());
  const client = new ControllerClient({
    membership: () => of.membership,
    info: () => of.info,
    svid: of.identity.svid,
    ownBundle: () => of.identity.bundleRecord(),
    catalog,
    exports,
    log,
    instance,
  });
  const abort = new AbortController();
  void runResilient(client, abort.signal, { log, backoff: { initialMs: 50, maxMs: 500 }, healthyAfterMs: 2000 });
  return { ...of, catalog, exports, client, stop: () => abort.abort() };
}

/** Polls until `check` holds, or fails with `what` after the timeout. */
export async function eventually<T>(check: () => T | undefined | false | Promise<T | undefined | false>, what: string, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs}ms waiting for: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

export interface ControllerProcessConfig {
  dir: string;
  name: string;
  pkiDir: string;
  ports: { api: number; join: number; admin: number };
  store?: { url?: string; sentinels?: string[]; sentinelName?: string };
  leaseTtl?: string;
}

/** Writes a federation.yaml for a controller process; returns its path. */
export function writeFederationYaml(config: ControllerProcessConfig): string {
  const store = config.store ?? {};
  const lines = [
    'apiVersion: fedgate.io/v1alpha1',
    'kind: Federation',
    'metadata:',
    '  name: acme',
    'spec:',
    '  trustDomain: acme.internal',
    '  controller:',
    `    listen: 127.0.0.1:${config.ports.api}`,
    `    joinListen: 127.0.0.1:${config.ports.join}`,
    `    admin: 127.0.0.1:${config.ports.admin}`,
    `    pkiDir: ${config.pkiDir}`,
    `    leaseTtl: ${config.leaseTtl ?? '15s'}`,
    '  store:',
    `    url: "${store.url ?? ''}"`,
    ...(store.sentinels ? [`    sentinels: [${store.sentinels.join(', ')}]`, `    sentinelName: ${store.sentinelName ?? 'mymaster'}`] : []),
    '',
  ];
  const file = join(config.dir, `${config.name}.yaml`);
  writeFileSync(file, lines.join('\n'));
  return file;
}
