import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { errorMessage } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { Closer, runResilient, type Component } from '../core/lifecycle.js';
import { gatewayDefaultsDocument, type FederationConfig } from '../config/federation-config.js';
import { startAdminServer, type AdminServer } from '../admin/admin-server.js';
import { counter, gauge, histogram, type Registry } from '../admin/metrics.js';
import { AdminService } from './api/admin-service.js';
import { JoinService } from './api/join-service.js';
import { CatalogState } from './catalog-state.js';
import { ControllerIdentity } from './controller-identity.js';
import { Leadership } from './leadership.js';
import { SyncService } from './sync/sync-service.js';
import { AdminService as AdminServiceDef, JoinService as JoinServiceDef } from '../proto/gen/fedgate.js';
import { FastCatalogService } from '../proto/sync-codec.js';
import { bindServer, grpc, serverOptions, UpdatableServerCredentials } from '../proto/grpc-transport.js';
import { PeerVerifier } from '../pki/peer-verifier.js';
import { serverSecureContext } from '../pki/tls-options.js';
import { TrustBundle } from '../pki/trust-bundle.js';
import { TrustStore } from '../pki/trust-store.js';
import type { Store, WatchEvent } from '../store/store.js';
import { ReplicaRegistry } from './replica-registry.js';
import { StoreGuard } from './store-guard.js';

export interface ControllerOptions {
  federation: FederationConfig;
  store: Store;
  log: Logger;
  registry: Registry;
  replicaId?: string;
}

export interface ControllerAddresses {
  api: string;
  join: string;
  admin: string;
}

/**
 * The federation controller: admits clusters, keeps the catalog in the store, and streams it to
 * gateways. Replicas share nothing but the store; each follows the change stream into its own
 * in-memory catalog and serves the gateways connected to it.
 */
export class Controller {
  readonly replicaId: string;
  readonly catalog = new CatalogState();
  private readonly trust = new TrustStore();
  private readonly verifier = new PeerVerifier(this.trust);
  private readonly closer = new Closer();
  private readonly abort = new AbortController();
  private identity!: ControllerIdentity;
  private sync!: SyncService;
  private leadership!: Leadership;
  private apiCredentials!: UpdatableServerCredentials;
  private joinCredentials!: UpdatableServerCredentials;
  private adminServer!: AdminServer;
  private guard!: StoreGuard;
  private readonly startedAt = Date.now();
  private replicas!: ReplicaRegistry;
  private readonly metrics;
  addresses: ControllerAddresses = { api: '', join: '', admin: '' };

  constructor(private readonly options: ControllerOptions) {
    this.replicaId = options.replicaId ?? `${hostname()}-${process.pid}-${randomBytes(2).toString('hex')}`;
    const registry = options.registry;
    this.metrics = {
      sessions: gauge(registry, 'fedgate_controller_gateway_sessions', 'Gateways with an open Sync stream on this replica'),
      rejected: counter(registry, 'fedgate_controller_rejected_total', 'Calls and messages refused', ['reason']),
      revision: gauge(registry, 'fedgate_controller_catalog_revision', 'Revision of the catalog this replica holds'),
      storeUp: gauge(registry, 'fedgate_controller_store_up', '1 while the store answers'),
      leader: gauge(registry, 'fedgate_controller_leader', '1 while this replica holds the leader lock'),
      applyLatency: histogram(registry, 'fedgate_controller_change_apply_seconds', 'Time from reading a change to pushing it to every session', [], [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25]),
      epochLosses: counter(registry, 'fedgate_controller_store_epoch_changes_total', 'Times the store was found to have lost its state'),
    };
  }

  private get log(): Logger {
    return this.options.log;
  }

  private get spec(): FederationConfig['spec'] {
    return this.options.federation.spec;
  }

  async start(): Promise<ControllerAddresses> {
    const { federation, store } = this.options;
    this.identity = ControllerIdentity.load(federation.spec.trustDomain, federation.controllerPkiDir, this.log);
    this.trust.anchor(this.identity.bundle);
    this.identity.svid.start();
    this.closer.add('svid', () => this.identity.svid.stop());
    if (store.kind === 'memory') this.log.warn('using the in-memory store: state is not durable and only one controller replica can run; set spec.store.url (or REDIS_URL) for Redis');

    this.guard = new StoreGuard({
      store,
      catalog: this.catalog,
      replicaId: this.replicaId,
      log: this.log,
      metrics: { storeUp: this.metrics.storeUp, epochLosses: this.metrics.epochLosses },
      loadSnapshot: (snapshot) => this.loadSnapshot(snapshot),
      resyncAll: (reason) => this.sync.resyncAll(reason),
      storeRecovered: () => this.sync.storeRecovered(),
      auditCopy: () => this.replicas.auditCopy,
    });
    this.closer.add('store-guard', () => this.guard.stop());
    await this.guard.connect();
    this.replicas = new ReplicaRegistry({
      store,
      replicaId: this.replicaId,
      apiAddress: () => this.addresses.api,
      startedAt: this.startedAt,
      leaseTtlMs: this.spec.controller.leaseTtl,
      storeTrusted: () => this.guard.trusted,
      onAddressesChange: () => this.sync.replicasChanged(),
      log: this.log.child({ component: 'replicas' }),
    });

    this.sync = new SyncService({
      catalog: this.catalog,
      store,
      verifier: this.verifier,
      log: this.log.child({ component: 'sync' }),
      replicaId: this.replicaId,
      leaseTtlMs: this.spec.controller.leaseTtl,
      maxExportsPerCluster: this.spec.controller.maxExportsPerCluster,
      serving: () => !this.guard.rebuilding,
      metrics: { sessions: this.metrics.sessions, rejected: this.metrics.rejected },
      settings: {
        federation: federation.metadata.name,
        defaultsJson: JSON.stringify(gatewayDefaultsDocument(federation.spec.defaults)),
        trustDomainAliasesJson: JSON.stringify(federation.spec.trustDomainAliases),
      },
      controllerAddresses: () => [...this.replicas.replicaAddresses],
    });

    await this.startGrpc();
    await this.startAdmin();
    this.trust.onChange(() => this.refreshCredentials());

    const signal = this.abort.signal;
    const components: Component[] = [
      { name: 'catalog-watch', start: (s) => this.watchCatalog(s) },
      this.guard,
      this.replicas,
    ];
    this.leadership = new Leadership({
      store,
      catalog: this.catalog,
      replicaId: this.replicaId,
      leaseTtlMs: this.spec.controller.leaseTtl,
      startedAt: this.startedAt,
      log: this.log.child({ component: 'leadership' }),
      onChange: (leader) => this.metrics.leader.set(leader ? 1 : 0),
    });
    components.push(this.leadership);
    for (const component of components) {
      void runResilient(component, signal, { log: this.log, backoff: { initialMs: 200, maxMs: 5000 }, healthyAfterMs: 10_000 });
    }
    this.log.info({ replica: this.replicaId, ...this.addresses, store: store.kind }, 'controller started');
    return this.addresses;
  }

  private loadSnapshot(snapshot: Parameters<CatalogState['load']>[0]): void {
    this.catalog.load(snapshot);
    this.metrics.revision.set(this.catalog.revision);
    this.syncTrustFromCatalog();
  }

  /** The API listener trusts the controller CA (admins) and every member cluster's bundle. */
  private syncTrustFromCatalog(): void {
    const bundles: TrustBundle[] = [this.identity.bundle];
    for (const record of this.catalog.bundles.values()) {
      if (record.trustDomain === this.identity.trustDomain) {
        // Only a store written before Join reserved this trust domain can hold it.
        const claimant = [...this.catalog.clusters.values()].find((c) => c.trustDomain === record.trustDomain)?.name;
        this.log.error({ trustDomain: record.trustDomain, cluster: claimant }, `a member claims the federation's trust domain; its bundle is ignored. Remove it with "fedgate cluster remove ${claimant ?? '<name>'}"`);
        continue;
      }
      try {
        bundles.push(TrustBundle.fromSpiffeJson(record.trustDomain, record.spiffeJson).withSequence(record.sequence));
      } catch (error) {
        this.log.error({ trustDomain: record.trustDomain, err: errorMessage(error) }, 'stored bundle is invalid; keeping the last good one');
        const current = this.trust.get(record.trustDomain);
        if (current) bundles.push(current);
      }
    }
    this.trust.replaceAll(bundles);
  }

  private refreshCredentials(): void {
    const context = serverSecureContext(this.identity.svid.current, this.trust);
    this.apiCredentials?.update(context);
    this.joinCredentials?.update({ key: context.key, cert: context.cert, minVersion: 'TLSv1.3' });
  }

  private async startGrpc(): Promise<void> {
    const spec = this.spec.controller;
    const maxMessageBytes = spec.maxMessageBytes;
    const context = serverSecureContext(this.identity.svid.current, this.trust);
    this.apiCredentials = new UpdatableServerCredentials(true, context);
    this.joinCredentials = new UpdatableServerCredentials(false, { key: context.key, cert: context.cert, minVersion: 'TLSv1.3' });
    this.identity.svid.onRotate(() => this.refreshCredentials());

    const apiServer = new grpc.Server(serverOptions(maxMessageBytes));
    apiServer.addService(FastCatalogService, { sync: ((call: Parameters<SyncService['handle']>[0]) => this.sync.handle(call)) as never });
    const admin = new AdminService({
      store: this.options.store,
      catalog: this.catalog,
      sync: this.sync,
      verifier: this.verifier,
      log: this.log.child({ component: 'admin' }),
      federation: this.options.federation.metadata.name,
      federationTrustDomain: this.spec.trustDomain,
      trustDomainAliases: this.spec.trustDomainAliases,
      replicaId: this.replicaId,
      joinAddress: () => this.addresses.join,
      caAddress: () => this.addresses.admin,
      caHash: this.identity.caHash,
      defaultTokenTtlMs: spec.tokenTtl,
      leaseTtlMs: spec.leaseTtl,
      // Read at every status call: a replica that started since the last heartbeat counts at once.
      liveReplicas: () => this.replicas.liveReplicas(),
      storeReady: () => this.guard.ready,
      drillMetrics: {
        runs: counter(this.options.registry, 'fedgate_drill_runs_total', 'Drills finished, by service, mode and outcome (passed, failed, inconclusive, aborted)', ['service', 'mode', 'outcome']),
        running: gauge(this.options.registry, 'fedgate_drill_running', '1 while a drill of this service and mode runs', ['service', 'mode']),
        lastFailoverSeconds: gauge(this.options.registry, 'fedgate_drill_last_failover_seconds', 'Time to 100% failed over in the last drill; -1 when it never completed', ['service', 'mode']),
        lastErrors: gauge(this.options.registry, 'fedgate_drill_last_errors', 'Failed requests in the last drill', ['service', 'mode']),
        lastFinished: gauge(this.options.registry, 'fedgate_drill_last_finished_timestamp_seconds', 'When the last drill ended (unix seconds)', ['service', 'mode']),
      },
    });
    apiServer.addService(AdminServiceDef, admin.handlers as never);
    const apiPort = await bindServer(apiServer, spec.listen, this.apiCredentials);
    this.closer.add('api-server', () => new Promise<void>((resolve) => apiServer.tryShutdown(() => resolve())));
    this.closer.add('api-sessions', () => this.sync.closeAll());

    const joinServer = new grpc.Server(serverOptions(Math.min(maxMessageBytes, 1024 * 1024)));
    const join = new JoinService({
      store: this.options.store,
      catalog: this.catalog,
      log: this.log.child({ component: 'join' }),
      federation: this.options.federation.metadata.name,
      apiAddress: () => this.addresses.api,
      controllerSpiffeId: this.identity.spiffeId.toString(),
      controllerCaPem: this.identity.caPem,
      federationTrustDomain: this.identity.trustDomain,
      trustBundle: (bundle) => this.trust.update(bundle),
    });
    joinServer.addService(JoinServiceDef, { join: join.handle });
    const joinPort = await bindServer(joinServer, spec.joinListen, this.joinCredentials);
    this.closer.add('join-server', () => new Promise<void>((resolve) => joinServer.tryShutdown(() => resolve())));

    const host = (address: string): string => advertisedHost(address.slice(0, address.lastIndexOf(':')));
    this.addresses.api = spec.advertise ?? `${host(spec.listen)}:${apiPort}`;
    this.addresses.join = spec.advertiseJoin ?? `${host(spec.joinListen)}:${joinPort}`;
  }

  private async startAdmin(): Promise<void> {
    this.adminServer = await startAdminServer({
      listen: this.spec.controller.admin,
      registry: this.options.registry,
      log: this.log.child({ component: 'admin-http' }),
      readiness: () => this.readiness(),
      config: () => ({
        federation: this.options.federation.metadata.name,
        replica: this.replicaId,
        store: this.options.store.kind,
        epoch: this.catalog.epoch,
        revision: this.catalog.revision,
        policyRevision: this.catalog.policyRevision,
        leader: this.leadership?.isLeader ?? false,
        addresses: this.addresses,
        clusters: [...this.catalog.clusters.values()].map((c) => ({ name: c.name, state: c.state })),
        connectedGateways: [...this.sync.connected.keys()],
        replicas: this.replicas.replicaAddresses,
        auditCopy: { entries: this.replicas.auditCopy.length, newestAt: this.replicas.auditCopy[0]?.at ?? 0 },
      }),
      routes: {
        // The controller CA, for joiners: public, and checked by them against the hash in their token.
        'GET /ca.crt': (_req, res) => {
          res.writeHead(200, { 'content-type': 'application/x-pem-file' });
          res.end(this.identity.caPem);
        },
      },
    });
    this.closer.add('admin-http', () => this.adminServer.close());
    const adminHost = advertisedHost(this.spec.controller.admin.slice(0, this.spec.controller.admin.lastIndexOf(':')));
    this.addresses.admin = this.spec.controller.advertiseAdmin ?? `${adminHost}:${this.adminServer.port}`;
  }

  readiness(): { ready: boolean; reason?: string } {
    return this.guard.readiness();
  }

  /** Follows the change stream into the catalog and pushes every revision to the gateways. */
  private async watchCatalog(signal: AbortSignal): Promise<void> {
    const local = new AbortController();
    const stop = (): void => local.abort();
    signal.addEventListener('abort', stop, { once: true });
    this.guard.restartWatch = stop;
    try {
      for await (const event of this.options.store.watch(this.catalog.revision, local.signal)) {
        await this.onWatchEvent(event);
        if (event.kind === 'reset') return;
      }
    } finally {
      signal.removeEventListener('abort', stop);
    }
  }

  private async onWatchEvent(event: WatchEvent): Promise<void> {
    if (event.kind === 'changes') {
      const started = process.hrtime.bigint();
      const touched = this.catalog.apply(event.revision, event.changes);
      if (touched.bundles.size > 0) this.syncTrustFromCatalog();
      if (!this.guard.rebuilding) this.sync.broadcast(event.revision, touched);
      this.metrics.revision.set(this.catalog.revision);
      this.metrics.applyLatency.observe(Number(process.hrtime.bigint() - started) / 1e9);
      return;
    }
    if (event.reason === 'snapshot-required') {
      this.log.warn({ revision: this.catalog.revision }, 'change log no longer reaches this replica; reloading a snapshot');
      const snapshot = await this.options.store.snapshot();
      if (snapshot.epoch !== this.catalog.epoch) return this.guard.recover();
      this.loadSnapshot(snapshot);
      this.sync.resyncAll('controller reloaded its catalog');
      return;
    }
    await this.guard.recover();
  }

  async stop(): Promise<void> {
    this.abort.abort();
    await this.replicas?.withdraw();
    this.guard?.restartWatch?.();
    await this.closer.close(this.log);
    await this.options.store.close();
  }
}

/** A wildcard listen host cannot be dialled: advertise the machine's name instead. */
function advertisedHost(host: string): string {
  return host === '0.0.0.0' || host === '[::]' || host === '::' ? hostname() : host;
}
