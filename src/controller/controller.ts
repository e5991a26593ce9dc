import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { Backoff, sleep } from '../core/backoff.js';
import { ErrorCodes, errorMessage, StoreError } from '../core/errors.js';
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
import type { AuditEntry, Store, WatchEvent } from '../store/store.js';
import { heartbeatInterval } from './gateway-status.js';

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
  private storeReady = false;
  private catalogLoaded = false;
  private rebuilding = false;
  private restartWatch: (() => void) | undefined;
  /** The store answers but no longer holds this catalog's epoch: not ready until rebuilt. */
  private storeStateLost = false;
  /** The store connection generation whose epoch was last checked against the catalog. */
  private verifiedGeneration = -1;
  private readonly startedAt = Date.now();
  /** API addresses of the live replicas, this one first: what gateways fail over between. */
  private replicaAddresses: string[] = [];
  private liveReplicaIds: ReadonlySet<string> = new Set();
  /** The audit log as last read, so a rebuild after the store lost its state can write it back. */
  private auditCopy: AuditEntry[] = [];
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

    await this.connectStore();

    this.sync = new SyncService({
      catalog: this.catalog,
      store,
      verifier: this.verifier,
      log: this.log.child({ component: 'sync' }),
      replicaId: this.replicaId,
      leaseTtlMs: this.spec.controller.leaseTtl,
      maxExportsPerCluster: this.spec.controller.maxExportsPerCluster,
      serving: () => !this.rebuilding,
      metrics: { sessions: this.metrics.sessions, rejected: this.metrics.rejected },
      settings: { federation: federation.metadata.name, defaultsJson: JSON.stringify(gatewayDefaultsDocument(federation.spec.defaults)) },
      controllerAddresses: () => (this.replicaAddresses.length > 0 ? this.replicaAddresses : [this.addresses.api]),
    });

    await this.startGrpc();
    await this.startAdmin();
    this.trust.onChange(() => this.refreshCredentials());

    const signal = this.abort.signal;
    const components: Component[] = [
      { name: 'catalog-watch', start: (s) => this.watchCatalog(s) },
      { name: 'store-health', start: (s) => this.watchStoreHealth(s) },
      { name: 'replica-registry', start: (s) => this.announceReplica(s) },
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
    this.log.info({ replica: this.replicaId, ...this.addresses, store: store.kind, federation: federation.metadata.name }, 'controller started');
    return this.addresses;
  }

  /** Opens the store, waiting (with back-off) while it is unreachable; the admin server reports not ready meanwhile. */
  private async connectStore(): Promise<void> {
    const backoff = new Backoff({ initialMs: 200, maxMs: 5000 });
    for (;;) {
      try {
        const { epoch, created } = await this.options.store.open();
        const snapshot = await this.options.store.snapshot();
        this.loadSnapshot(snapshot);
        this.storeReady = true;
        this.catalogLoaded = true;
        this.verifiedGeneration = this.options.store.connectionGeneration;
        this.metrics.storeUp.set(1);
        this.log.info({ epoch, created, revision: snapshot.revision, clusters: snapshot.clusters.length }, created ? 'store initialised' : 'catalog loaded from the store');
        return;
      } catch (error) {
        this.metrics.storeUp.set(0);
        this.log.warn({ err: errorMessage(error) }, 'store unavailable at start; retrying');
        await sleep(backoff.next(), this.abort.signal);
      }
    }
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
      replicaId: this.replicaId,
      joinAddress: () => this.addresses.join,
      caAddress: () => this.addresses.admin,
      caHash: this.identity.caHash,
      defaultTokenTtlMs: spec.tokenTtl,
      leaseTtlMs: spec.leaseTtl,
      // Read at every status call: a replica that started since the last heartbeat counts at once.
      liveReplicas: async () => {
        try {
          this.liveReplicaIds = new Set((await this.options.store.listReplicas(Date.now())).map((r) => r.id));
        } catch {
          // the store is away: the last known set
        }
        return this.liveReplicaIds;
      },
      storeReady: () => this.storeReady,
      drillMetrics: {
        runs: counter(this.options.registry, 'fedgate_drill_runs_total', 'Drills finished, by service, mode and outcome (passed, failed, aborted)', ['service', 'mode', 'outcome']),
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
        replicas: this.replicaAddresses,
        auditCopy: { entries: this.auditCopy.length, newestAt: this.auditCopy[0]?.at ?? 0 },
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
    if (!this.storeReady) return { ready: false, reason: 'store unreachable' };
    if (!this.catalogLoaded) return { ready: false, reason: 'catalog not loaded' };
    if (this.rebuilding || this.storeStateLost) return { ready: false, reason: 'rebuilding the catalog after the store lost its state' };
    if (!this.options.store.connectionUp) return { ready: false, reason: 'store unreachable (connection down)' };
    if (this.options.store.connectionGeneration !== this.verifiedGeneration) return { ready: false, reason: 'the store connection was re-established; checking it still holds the catalog' };
    return { ready: true };
  }

  /** Follows the change stream into the catalog and pushes every revision to the gateways. */
  private async watchCatalog(signal: AbortSignal): Promise<void> {
    const local = new AbortController();
    const stop = (): void => local.abort();
    signal.addEventListener('abort', stop, { once: true });
    this.restartWatch = stop;
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
      if (!this.rebuilding) this.sync.broadcast(event.revision, touched);
      this.metrics.revision.set(this.catalog.revision);
      this.metrics.applyLatency.observe(Number(process.hrtime.bigint() - started) / 1e9);
      return;
    }
    if (event.reason === 'snapshot-required') {
      this.log.warn({ revision: this.catalog.revision }, 'change log no longer reaches this replica; reloading a snapshot');
      const snapshot = await this.options.store.snapshot();
      if (snapshot.epoch !== this.catalog.epoch) return this.recoverFromEpochLoss();
      this.loadSnapshot(snapshot);
      this.sync.resyncAll('controller reloaded its catalog');
      return;
    }
    await this.recoverFromEpochLoss();
  }

  /**
   * The store lost its state (Redis restarted without persistence) or was replaced. Never publish
   * the empty catalog that results: the replica holding the last good catalog writes it back under
   * a new epoch (under a lock, so only one does), every gateway gets a snapshot of it, and gateways
   * are asked to re-send their exports, which are the source of truth for what they export.
   */
  private async recoverFromEpochLoss(): Promise<void> {
    const { store } = this.options;
    this.rebuilding = true;
    this.metrics.epochLosses.inc();
    this.log.error({ epoch: this.catalog.epoch, revision: this.catalog.revision }, 'the store lost its state; rebuilding the catalog (gateways keep serving their last snapshot)');
    const backoff = new Backoff({ initialMs: 200, maxMs: 2000 });
    while (!this.abort.signal.aborted) {
      try {
        const epoch = await store.epoch();
        const snapshot = epoch === undefined ? undefined : await store.snapshot();
        const storeEmpty = snapshot === undefined || snapshot.clusters.length === 0;
        if (storeEmpty && !this.catalog.isEmpty) {
          const token = await store.acquireLock('restore', this.replicaId, 30_000);
          if (token === undefined) {
            await sleep(backoff.next(), this.abort.signal);
            continue;
          }
          const fence = { lock: 'restore', holder: this.replicaId, token };
          try {
            const restored = await store.restore({ ...this.catalog.toSnapshot(), audit: this.auditCopy }, fence);
            this.log.warn({ epoch: restored.epoch, revision: restored.revision, clusters: this.catalog.clusters.size }, 'catalog written back to the store from memory');
          } catch (error) {
            if (!(error instanceof StoreError && error.code === ErrorCodes.STORE_CONFLICT)) throw error;
          } finally {
            await store.releaseLock(fence).catch(() => undefined);
          }
        }
        await store.open();
        const current = await store.snapshot();
        if (current.clusters.length === 0 && !this.catalog.isEmpty) {
          await sleep(backoff.next(), this.abort.signal);
          continue;
        }
        this.loadSnapshot(current);
        break;
      } catch (error) {
        this.log.warn({ err: errorMessage(error) }, 'catalog rebuild attempt failed; retrying');
        await sleep(backoff.next(), this.abort.signal).catch(() => undefined);
      }
    }
    this.rebuilding = false;
    this.storeStateLost = false;
    this.verifiedGeneration = this.options.store.connectionGeneration;
    this.sync.resyncAll('the federation store lost its state and was rebuilt');
    this.log.info({ epoch: this.catalog.epoch, revision: this.catalog.revision }, 'catalog rebuilt; gateways asked to re-send their exports');
  }

  private async watchStoreHealth(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      const wasReady = this.storeReady;
      try {
        const generation = this.options.store.connectionGeneration;
        await this.options.store.ping();
        // A store that answers again may have come back empty (Redis restarted without its data):
        // until the watch notices and the catalog is written back, this replica is not ready, and
        // the watch is nudged instead of waiting out its back-off.
        const epoch = await this.options.store.epoch();
        if (epoch === this.catalog.epoch) this.verifiedGeneration = generation;
        if (epoch !== this.catalog.epoch && !this.rebuilding && !this.storeStateLost) {
          this.storeStateLost = true;
          this.log.error({ epoch: this.catalog.epoch, found: epoch ?? 'none' }, 'the store no longer holds this catalog; not ready until it is rebuilt');
          this.restartWatch?.();
        }
        this.storeReady = true;
        this.metrics.storeUp.set(1);
        if (!wasReady) {
          this.log.info('store reachable again');
          this.sync.storeRecovered();
        }
      } catch (error) {
        this.storeReady = false;
        this.metrics.storeUp.set(0);
        if (wasReady) this.log.error({ err: errorMessage(error) }, 'store unreachable; gateways keep their catalog, writes wait');
      }
      try {
        await sleep(1000, signal);
      } catch {
        return;
      }
    }
  }

  /**
   * Announces this replica in the store and follows the set of live replicas, so that every
   * gateway learns all of them (in the Sync settings) and can fail over without a load balancer.
   * The same loop keeps a copy of the audit log for a rebuild.
   */
  private async announceReplica(signal: AbortSignal): Promise<void> {
    const { store } = this.options;
    const ttl = this.spec.controller.leaseTtl;
    const interval = heartbeatInterval(ttl);
    try {
      while (!signal.aborted) {
        const now = Date.now();
        await store.putReplica({ id: this.replicaId, apiAddress: this.addresses.api, startedAt: this.startedAt, expiresAt: now + ttl });
        const replicas = await store.listReplicas(now);
        this.liveReplicaIds = new Set(replicas.map((r) => r.id));
        const others = replicas.filter((r) => r.id !== this.replicaId).map((r) => r.apiAddress);
        const next = [this.addresses.api, ...others.filter((a) => a !== this.addresses.api)];
        if (next.join(',') !== this.replicaAddresses.join(',')) {
          const first = this.replicaAddresses.length === 0;
          this.replicaAddresses = next;
          if (!first) this.log.info({ replicas: next }, 'controller replicas changed; telling the gateways');
          this.sync.replicasChanged();
        }
        if (!this.rebuilding && !this.storeStateLost) {
          const audit = await store.listAudit(1000);
          // An empty log right after a loss must not replace the copy that is to restore it.
          if (audit.length > 0 || this.auditCopy.length === 0) this.auditCopy = audit;
        }
        await sleep(interval, signal);
      }
    } catch (error) {
      if (signal.aborted) return;
      throw error;
    }
  }

  async stop(): Promise<void> {
    this.abort.abort();
    await this.options.store.removeReplica(this.replicaId).catch(() => undefined);
    this.restartWatch?.();
    await this.closer.close(this.log);
    await this.options.store.close();
  }
}

/** A wildcard listen host cannot be dialled: advertise the machine's name instead. */
function advertisedHost(host: string): string {
  return host === '0.0.0.0' || host === '[::]' || host === '::' ? hostname() : host;
}
