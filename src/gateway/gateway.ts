import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { Logger } from '../core/logger.js';
import { Closer, runResilient } from '../core/lifecycle.js';
import type { ClusterConfig } from '../config/cluster-config.js';
import type { FederationDirectory } from '../config/load.js';
import type { Registry } from '../admin/metrics.js';
import type { DiscoveryProvider } from '../discovery/provider.js';
import { SpiffeId } from '../model/spiffe-id.js';
import type { ClusterInfo } from '../proto/gen/fedgate.js';
import { describeGateway } from './admin-view.js';
import { AppliedPolicies, applyPolicySet } from './control/applied-policies.js';
import { CatalogReplica, memberTrustDomains, type CatalogData } from './control/catalog-replica.js';
import { clusterInfoOf, ControllerLink } from './control/controller-link.js';
import { importsOf } from './control/export-source.js';
import { builtinDefaults, SettingsStore } from './control/settings-store.js';
import { loadStaticFederation } from './control/static-federation.js';
import { LocalForwarder } from './endpoint/local-forwarder.js';
import { GatewayIdentity } from './gateway-identity.js';
import { inboundStack } from './inbound/inbound-stack.js';
import { outboundStack } from './logical/outbound-stack.js';
import { GatewayMetrics } from './request/request-metrics.js';
import { FailoverTracker } from './registry/failover-tracker.js';
import { HealthChecker, healthCheckConfig } from './registry/health-checker.js';
import { connectPeerHealth } from './registry/peer-health.js';
import { OutlierRegistry } from './registry/outlier-registry.js';
import { PoolRegistry } from './registry/pool-registry.js';
import { observeUpstream } from './registry/upstream-observer.js';
import { RoutingTable } from './routing/routing-table.js';
import { CallerIdentities } from './server/caller-identities.js';
import { GatewayListeners, resolveLimits, type GatewayLimits } from './server/listeners.js';
import { ControlViewPublisher, logBlackholeChanges, type ControlView } from './view/control-view.js';

export type { GatewayLimits };

export interface GatewayOptions {
  cluster: ClusterConfig;
  log: Logger;
  registry: Registry;
  /** Static mode (no controller): the federation read from federation-config. */
  federation?: FederationDirectory;
  discovery: DiscoveryProvider;
  /** Where the join token comes from when the cluster has not joined yet. */
  token?: string;
  version?: string;
  limits?: Partial<GatewayLimits>;
}

/**
 * An east-west gateway, wired: the control view and what produces it (catalog, policies,
 * settings, discovery, health checks, outlier detection), the registries that follow it, the
 * request path, the listeners and the link to the controller. Each part owns one concern; this
 * class only connects them. The data plane never waits on the control plane: it serves from the
 * view it has, which starts from what the last run persisted.
 */
export class Gateway {
  readonly identity: GatewayIdentity;
  readonly metrics: GatewayMetrics;
  /** This process among the cluster's gateway replicas: host, pid and a random suffix against pid reuse. */
  readonly instanceId = `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
  private readonly closer = new Closer();
  private readonly abort = new AbortController();
  private readonly views: ControlViewPublisher;
  private readonly catalog: CatalogReplica;
  private readonly policies: AppliedPolicies;
  private readonly settings: SettingsStore;
  private readonly health: HealthChecker;
  private readonly outliers: OutlierRegistry;
  private readonly pools: PoolRegistry;
  private readonly forwarder: LocalForwarder;
  private readonly routing = new RoutingTable();
  private readonly listeners: GatewayListeners;
  private readonly link: ControllerLink | undefined;
  private listening = false;

  constructor(private readonly options: GatewayOptions) {
    const { cluster, log } = options;
    const stateDir = options.federation ? undefined : cluster.stateDir;
    this.metrics = new GatewayMetrics(options.registry);
    const limits = resolveLimits(cluster, options.limits);
    this.identity = GatewayIdentity.load(cluster, cluster.spec.gateway.certificateTtl ?? builtinDefaults().certificateTtl, log.child({ component: 'identity' }));
    const local = { cluster: cluster.metadata.name, region: cluster.spec.region, zone: cluster.spec.zone, trustDomain: cluster.spec.trustDomain, labels: cluster.metadata.labels };
    this.views = new ControlViewPublisher(local, { federation: '', catalog: CatalogReplica.EMPTY, defaults: builtinDefaults(), localExports: options.discovery.current() });
    // Policies are not part of this check: a set this gateway cannot apply is refused on its own
    // (AppliedPolicies), and must not hold back the rest of the catalog.
    this.catalog = new CatalogReplica({ stateDir, log: log.child({ component: 'catalog' }), check: (candidate, previous) => GatewayIdentity.checkBundles(candidate.bundles, previous.bundles) });
    this.policies = new AppliedPolicies({ stateDir, limits: { cluster: local.cluster, allowFaultInjection: cluster.spec.gateway.policies.allowFaultInjection }, log: log.child({ component: 'policies' }) });
    this.settings = new SettingsStore({
      stateDir,
      log: log.child({ component: 'settings' }),
      onChange: (s) => {
        // The aliases change what the policy set means: it is compiled again under them.
        if (this.policies.setContext({ trustDomainAliases: s.trustDomainAliases }) === 'applied') this.views.update({ policies: this.policies.index });
        this.views.update({ federation: s.federation, defaults: s.defaults });
      },
    });
    const onLimit = (listener: string) => (kind: string) => this.metrics.limitRefused(listener, kind);
    const view = (): ControlView => this.views.current;
    this.pools = new PoolRegistry({ identity: this.identity, view, connectTimeoutMs: limits.connectTimeoutMs, http2: limits.http2, onLimit: onLimit('peer'), log: log.child({ component: 'pool' }) });
    this.health = new HealthChecker(healthCheckConfig(this.views.current.defaults), (peer, timeoutMs) => this.pools.ping(this.views.current, peer, timeoutMs), log.child({ component: 'health' }));
    this.outliers = new OutlierRegistry({ view: this.views.current, publish: (ejections) => this.views.update({ ejections }), log: log.child({ component: 'outliers' }) });
    this.forwarder = new LocalForwarder(log.child({ component: 'local' }), undefined, { limits: limits.http2, onLimit: onLimit('local-h2c') });
    const failovers = new FailoverTracker(this.metrics);
    const observe = observeUpstream({ localCluster: local.cluster, outliers: this.outliers, health: this.health, failovers });
    this.wireView(failovers);
    this.listeners = new GatewayListeners({
      cluster,
      limits: limits,
      identity: this.identity,
      callers: new CallerIdentities(cluster.spec.trustDomain, cluster.spec.gateway.callers),
      view,
      routing: this.routing,
      pools: this.pools,
      inbound: inboundStack({ localCluster: local.cluster, forwarder: this.forwarder, metrics: this.metrics, log: log.child({ component: 'authz' }) }),
      outbound: outboundStack({ localCluster: local.cluster, routing: this.routing, pools: this.pools, forwarder: this.forwarder, observe, metrics: this.metrics, log: log.child({ component: 'authz' }) }),
      metrics: this.metrics,
      registry: options.registry,
      readiness: () => this.readiness(),
      config: () => this.describe(),
      log,
    });
    this.link =
      options.federation || !cluster.spec.controller
        ? undefined
        : new ControllerLink({
            cluster,
            token: options.token,
            info: () => this.clusterInfo(),
            identity: this.identity,
            catalog: this.catalog,
            discovery: options.discovery,
            settings: this.settings,
            policies: this.policies,
            instance: this.instanceId,
            version: options.version,
            log,
          });
  }

  /** What feeds the control view, and what follows it. */
  private wireView(failovers: FailoverTracker): void {
    const { discovery, log } = this.options;
    this.catalog.onChange((data) => this.onCatalog(data));
    discovery.onChange((state) => this.views.update({ localExports: state }));
    connectPeerHealth({ health: this.health, outliers: this.outliers, failovers, views: this.views, metrics: this.metrics, log });
    this.views.watch((view, previous) => {
      this.outliers.onView(view);
      if (view.catalog === previous.catalog) return;
      this.pools.onView(view);
      this.listeners?.inbound?.dropDepartedPeers(view);
      // Providers that mirror the clusterset (Kubernetes ServiceImports) learn every catalog change.
      discovery.reportImports?.(importsOf(view.catalog));
      logBlackholeChanges(log, view, previous);
    });
  }

  /** A catalog applied: its policy set, its trust bundles, then the view. */
  private onCatalog(data: CatalogData): void {
    applyPolicySet(this.policies, data, this.metrics);
    const controller = this.link?.membership?.controllerSpiffeId;
    for (const problem of this.identity.applyCatalogBundles(data.bundles.values(), memberTrustDomains(data), controller ? SpiffeId.parse(controller).trustDomain : undefined)) {
      this.options.log.error({ problem }, 'bundle rejected');
    }
    this.views.update({ catalog: data, policies: this.policies.index });
  }

  get name(): string {
    return this.options.cluster.metadata.name;
  }

  get ports(): { inbound: number; outbound: number; admin: number; tcp: number[] } {
    return this.listeners.ports;
  }

  async start(): Promise<void> {
    const { cluster, federation, log } = this.options;
    await this.identity.start(this.abort.signal);
    this.closer.add('svid', () => this.identity.stop());
    if (federation) {
      const loaded = loadStaticFederation(federation, cluster, log);
      this.settings.useStatic(loaded.settings);
      this.policies.useStatic(loaded.index, loaded.records, loaded.revision);
      this.onCatalog(loaded.catalog);
    } else {
      this.settings.loadPersisted();
      this.policies.loadPersisted();
      if (!this.catalog.loadPersisted()) this.views.update({ policies: this.policies.index });
    }
    await this.listeners.start();
    this.closer.add('listeners', () => this.listeners.close(log));
    this.closer.add('pools', () => {
      this.pools.close('gateway stopping');
      this.forwarder.close();
    });
    this.listening = true;
    this.health.start();
    this.closer.add('health', () => this.health.stop());
    this.outliers.start();
    this.closer.add('outliers', () => this.outliers.stop());
    const signal = this.abort.signal;
    void runResilient({ name: 'discovery', start: (s) => this.options.discovery.start(s) }, signal, { log, backoff: { initialMs: 500, maxMs: 10_000 } });
    if (this.link) void this.link.run(signal);
    log.info({ mode: federation ? 'static' : 'joined', ...this.ports, revision: this.views.current.catalog.revision }, 'gateway started');
  }

  readiness(): { ready: boolean; reason?: string } {
    if (!this.listening) return { ready: false, reason: 'listeners starting' };
    const identity = this.identity.health();
    if (!identity.ready) return identity;
    if (this.link?.problem) return { ready: false, reason: this.link.problem };
    if (!this.options.federation && this.views.current.catalog.revision === 0) return { ready: false, reason: 'no catalog yet (controller not reached, nothing persisted)' };
    return { ready: true };
  }

  clusterInfo(): ClusterInfo {
    return clusterInfoOf(this.options.cluster, this.ports.inbound);
  }

  describe(): unknown {
    const view = this.views.current;
    const svid = this.identity.svid.current;
    return describeGateway(
      view,
      {
        cluster: this.name,
        instance: this.instanceId,
        mode: this.options.federation ? 'static' : 'joined',
        federation: view.federation || this.link?.membership?.federation,
        controllerConnected: this.link?.connected ?? false,
        controlProblem: this.link?.problem,
        controllers: this.link?.controllers() ?? [],
        identity: this.identity.spiffeId.toString(),
        certificate: { source: this.identity.certificateSource, serial: svid.certificate.serialNumber, notAfter: svid.notAfter.toISOString() },
        ports: this.ports,
        verdicts: this.link?.verdicts ?? [],
      },
      { policies: this.policies, health: this.health, outliers: this.outliers },
    );
  }

  async stop(): Promise<void> {
    this.abort.abort();
    this.catalog.persistNow();
    await this.closer.close(this.options.log);
  }
}
