import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { Backoff, sleep } from '../core/backoff.js';
import { ConfigError, errorMessage, FedgateError, TokenError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { Closer, runResilient } from '../core/lifecycle.js';
import type { ClusterConfig } from '../config/cluster-config.js';
import { gatewayDefaultsShape, type GatewayDefaults } from '../config/federation-config.js';
import type { FederationDirectory } from '../config/load.js';
import { deepFreeze, formatPath, type ShapeIssue } from '../config/shape.js';
import { startAdminServer, type AdminServer } from '../admin/admin-server.js';
import type { Registry } from '../admin/metrics.js';
import { SpiffeId } from '../model/spiffe-id.js';
import type { PolicyRecord } from '../model/catalog.js';
import { OutlierDetector } from '../balancer/outlier-detector.js';
import type { DiscoveryProvider } from '../discovery/provider.js';
import { expectId, clientConnectionOptions } from '../pki/tls-options.js';
import type { AuthorizationRules } from '../policy/authorization.js';
import { gatewayPolicyProblems, validatePolicySet } from '../policy/policy-set.js';
import { PolicyIndex } from '../policy/resolve.js';
import { defaultServicePolicy, type ServicePolicy } from '../policy/service-policy.js';
import type { ClusterInfo, ExportSpec, ExportVerdict } from '../proto/gen/fedgate.js';
import { AppliedPolicies } from './control/applied-policies.js';
import { CatalogReplica, type CatalogData } from './control/catalog-replica.js';
import { ControllerClient } from './control/controller-client.js';
import type { ExportSource } from './control/export-source.js';
import { joinFederation, readMembership, writeMembership, type FederationMembership } from './control/join-client.js';
import { staticCatalog } from './control/static-catalog.js';
import { CallerIdentities } from './caller-identities.js';
import { GatewayIdentity } from './gateway-identity.js';
import { HealthChecker } from './health/health-checker.js';
import { InboundServer } from './inbound/inbound-server.js';
import { authorizationOutcome, authorizeLayer, type AuthorizationDeps } from './layers/authorize.js';
import { balanceAndForward } from './layers/balance.js';
import { circuitBreakerLayer } from './layers/circuit-breaker.js';
import { faultLayer } from './layers/fault.js';
import { RetryBudget, retryLayer } from './layers/retry.js';
import { routeChooser, routeLayer } from './layers/route.js';
import { timeoutLayer } from './layers/timeout.js';
import type { Outcome } from './outcome.js';
import { OutboundServer } from './outbound/outbound-server.js';
import { TcpImportListener } from './outbound/tcp-import.js';
import { compose, type Handler } from './pipeline.js';
import type { RequestContext } from './request-context.js';
import { GatewayMetrics } from './request-metrics.js';
import { RoutingTable } from './routing-table.js';
import { LocalForwarder } from './upstream/local-forwarder.js';
import { PeerPool } from './upstream/peer-pool.js';
import { forwardToPeer } from './upstream/remote-forwarder.js';

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

export interface GatewayLimits {
  headersTimeoutMs: number;
  requestTimeoutMs: number;
  handshakeTimeoutMs: number;
  idleTimeoutMs: number;
  maxHeaderBytes: number;
  maxConcurrentStreams: number;
  connectTimeoutMs: number;
}

const DEFAULT_LIMITS: GatewayLimits = {
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 300_000,
  handshakeTimeoutMs: 10_000,
  idleTimeoutMs: 300_000,
  maxHeaderBytes: 16 * 1024,
  maxConcurrentStreams: 1000,
  connectTimeoutMs: 2000,
};

const BUILTIN_DEFAULTS: GatewayDefaults = deepFreeze(gatewayDefaultsShape.defaultFactory?.() as GatewayDefaults);

export function validateDefaults(value: unknown): { defaults?: GatewayDefaults; problem?: string } {
  const issues: ShapeIssue[] = [];
  const defaults = gatewayDefaultsShape.check(value, ['defaults'], issues);
  if (!defaults) return { problem: issues.map((i) => `${formatPath(i.path)}: ${i.message}`).join('; ') };
  return { defaults: deepFreeze(defaults) };
}

/**
 * An east-west gateway: the inbound mTLS listener for other clusters, the outbound listener for
 * local clients, TCP imports, and the control-plane client. The data plane never waits on the
 * control plane: it routes by whatever catalog it last applied (persisted across restarts).
 */
export class Gateway {
  readonly identity: GatewayIdentity;
  readonly metrics: GatewayMetrics;
  /** This process among the cluster's gateway replicas: host, pid and a random suffix against pid reuse. */
  readonly instanceId = `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
  private readonly closer = new Closer();
  private readonly abort = new AbortController();
  private readonly catalog: CatalogReplica;
  private staticData: CatalogData | undefined;
  private defaults: GatewayDefaults = BUILTIN_DEFAULTS;
  private federationName = '';
  private readonly outliers: OutlierDetector;
  /** Services whose outlier detection a policy configures: their own counts and ejections. */
  private readonly serviceOutliers = new Map<string, { detector: OutlierDetector; config: string; policy: ServicePolicy; defaults: GatewayDefaults }>();
  private readonly policies: AppliedPolicies;
  private readonly authorizationCache = new Map<string, AuthorizationRules>();
  private readonly callers: CallerIdentities;
  private readonly health: HealthChecker;
  readonly routing: RoutingTable;
  /** Pools by peer cluster (shared), or by peer and service (a policy sized the service's connections). */
  private readonly pools = new Map<string, { pool: PeerPool; cluster: string; trustDomain: string; addresses: string; sizing: string }>();
  private readonly forwarder: LocalForwarder;
  private readonly policyCache = new Map<string, ServicePolicy>();
  private readonly retryBudgets = new Map<string, RetryBudget>();
  private readonly firstFailure = new Map<string, number>();
  /** Clusters traffic has been moved away from, until they recover: one failover per outage. */
  private readonly failedOver = new Set<string>();
  private readonly blackholes = new Set<string>();
  private controllerClient: ControllerClient | undefined;
  private membership: FederationMembership | undefined;
  private inbound!: InboundServer;
  private outbound!: OutboundServer;
  private readonly tcpImports: TcpImportListener[] = [];
  private admin!: AdminServer;
  private lastVerdicts: ExportVerdict[] = [];
  private listening = false;
  private readonly limits: GatewayLimits;

  constructor(private readonly options: GatewayOptions) {
    const { cluster, log } = options;
    const configured = cluster.spec.gateway.limits;
    this.limits = {
      ...DEFAULT_LIMITS,
      headersTimeoutMs: configured.headersTimeout,
      requestTimeoutMs: configured.requestTimeout,
      maxHeaderBytes: configured.maxHeaderBytes,
      idleTimeoutMs: configured.idleTimeout,
      handshakeTimeoutMs: configured.handshakeTimeout,
      maxConcurrentStreams: configured.maxConcurrentStreams,
      ...(options.limits ?? {}),
    };
    this.metrics = new GatewayMetrics(options.registry);
    this.identity = GatewayIdentity.load(cluster, cluster.spec.gateway.certificateTtl ?? BUILTIN_DEFAULTS.certificateTtl, log.child({ component: 'identity' }));
    this.catalog = new CatalogReplica({
      stateDir: options.federation ? undefined : cluster.stateDir,
      log: log.child({ component: 'catalog' }),
      // Policies are not part of this check: a set this gateway cannot apply is refused on its own
      // (AppliedPolicies), and must not hold back the rest of the catalog.
      check: (candidate, previous) => GatewayIdentity.checkBundles(candidate.bundles, previous.bundles),
    });
    this.policies = new AppliedPolicies({
      stateDir: options.federation ? undefined : cluster.stateDir,
      limits: { cluster: cluster.metadata.name, allowFaultInjection: cluster.spec.gateway.policies.allowFaultInjection },
      log: log.child({ component: 'policies' }),
    });
    this.callers = new CallerIdentities(cluster.spec.trustDomain, cluster.spec.gateway.callers);
    const defaults = this.defaults;
    this.outliers = new OutlierDetector({
      consecutiveErrors: defaults.outlierDetection.consecutiveErrors,
      intervalMs: defaults.outlierDetection.interval,
      baseEjectionTimeMs: defaults.outlierDetection.baseEjectionTime,
      maxEjectionPercent: defaults.outlierDetection.maxEjectionPercent,
    });
    this.health = new HealthChecker(
      { intervalMs: defaults.healthCheck.interval, timeoutMs: defaults.healthCheck.timeout, unhealthyThreshold: defaults.healthCheck.unhealthyThreshold, healthyThreshold: defaults.healthCheck.healthyThreshold },
      (peer, timeoutMs) => this.ping(peer, timeoutMs),
      log.child({ component: 'health' }),
    );
    this.routing = new RoutingTable(
      { region: cluster.spec.region, zone: cluster.spec.zone, cluster: cluster.metadata.name, labels: cluster.metadata.labels },
      {
        catalog: () => this.data,
        discovery: () => options.discovery.current(),
        alive: (peer) => this.health.isAlive(peer),
        outliers: (service, policy) => this.outliersFor(service, policy),
        policyFor: (namespace, name) => this.policyFor(namespace, name),
      },
    );
    this.forwarder = new LocalForwarder(log.child({ component: 'local' }));
  }

  get name(): string {
    return this.options.cluster.metadata.name;
  }

  get data(): CatalogData {
    return this.staticData ?? this.catalog.data;
  }

  get ports(): { inbound: number; outbound: number; admin: number; tcp: number[] } {
    return { inbound: this.inbound?.port ?? 0, outbound: this.outbound?.port ?? 0, admin: this.admin?.port ?? 0, tcp: this.tcpImports.map((t) => t.port) };
  }

  private get log(): Logger {
    return this.options.log;
  }

  policyFor(namespace: string, name: string): ServicePolicy {
    const key = `${namespace}/${name}`;
    let policy = this.policyCache.get(key);
    if (!policy) {
      policy = this.policies.index.servicePolicy(this.defaults, namespace, name, { cluster: this.name, region: this.options.cluster.spec.region });
      this.policyCache.set(key, policy);
    }
    return policy;
  }

  private authorizationFor(namespace: string, name: string): AuthorizationRules {
    const key = `${namespace}/${name}`;
    let rules = this.authorizationCache.get(key);
    if (!rules) {
      rules = this.policies.index.authorization(namespace, name, this.name);
      this.authorizationCache.set(key, rules);
    }
    return rules;
  }

  /** The gateway-wide outlier detector, or the service's own when a policy configures one. */
  /**
   * Every service has its own outlier detector (a policy's settings, else the federation
   * defaults): a service failing behind a healthy peer gateway — a blackhole, a broken deployment —
   * takes that cluster out for that service only. A peer gateway that is down is the health
   * checker's to detect, for every service at once.
   */
  private outliersFor(service: string, policy: ServicePolicy): OutlierDetector {
    // Called for every request: while neither the service's policy nor the defaults changed, the
    // detector is returned as is, without recomputing its settings.
    const known = this.serviceOutliers.get(service);
    if (known && known.policy === policy && known.defaults === this.defaults) return known.detector;
    const od = policy.outlierDetection;
    const d = this.defaults.outlierDetection;
    const settings = od.dedicated
      ? { consecutiveErrors: od.consecutiveErrors, intervalMs: od.intervalMs, baseEjectionTimeMs: od.baseEjectionTimeMs, maxEjectionPercent: od.maxEjectionPercent }
      : { consecutiveErrors: d.consecutiveErrors, intervalMs: d.interval, baseEjectionTimeMs: d.baseEjectionTime, maxEjectionPercent: d.maxEjectionPercent };
    const config = `${settings.consecutiveErrors}/${settings.intervalMs}/${settings.baseEjectionTimeMs}/${settings.maxEjectionPercent}`;
    if (known) {
      if (known.config !== config) {
        known.detector.configure(settings);
        known.config = config;
      }
      known.policy = policy;
      known.defaults = this.defaults;
      return known.detector;
    }
    const detector = new OutlierDetector(settings);
    detector.onChange((cluster, ejected) => {
      this.log.warn({ cluster, service, ejected }, ejected ? 'cluster ejected for one service by its outlier detection' : 'cluster back for one service');
      if (ejected) this.metrics.failovers.inc({ destination_cluster: cluster, reason: 'outlier-ejection' });
      this.routing.invalidate();
    });
    this.serviceOutliers.set(service, { detector, config, policy, defaults: this.defaults });
    return detector;
  }

  private changed(): void {
    this.policyCache.clear();
    this.authorizationCache.clear();
    this.routing.invalidate();
  }

  /** Applies the policy set a catalog carries (refusing it whole if this gateway cannot). */
  private applyPolicies(data: CatalogData): void {
    const result = this.policies.update(data.policies, data.policyRevision);
    if (result === 'unchanged') return;
    this.metrics.policyApplies.inc({ result });
    this.metrics.policyRevision.set({ state: 'applied' }, this.policies.appliedRevision);
    this.metrics.policyRevision.set({ state: 'latest' }, this.policies.latestRevision);
    if (result === 'applied') this.changed();
  }

  async start(): Promise<void> {
    const { cluster, log } = this.options;
    await this.identity.start(this.abort.signal);
    this.closer.add('svid', () => this.identity.stop());

    if (this.options.federation) {
      this.loadStatic(this.options.federation);
    } else {
      this.loadSettings();
      this.policies.loadPersisted();
      this.catalog.loadPersisted();
      this.applyPolicies(this.data);
    }
    this.applyCatalog(this.data);
    this.reportImports(this.data);
    this.catalog.onChange((data) => {
      this.applyPolicies(data);
      this.applyCatalog(data);
      this.reportImports(data);
      this.changed();
    });
    this.options.discovery.onChange(() => this.changed());
    this.health.onChange((peer, alive, reason) => this.onHealth(peer, alive, reason));
    this.outliers.onChange((peer, ejected) => this.onEjection(peer, ejected));

    await this.startListeners();
    this.health.start();
    this.closer.add('health', () => this.health.stop());
    const signal = this.abort.signal;
    void runResilient({ name: 'discovery', start: (s) => this.options.discovery.start(s) }, signal, { log, backoff: { initialMs: 500, maxMs: 10_000 } });
    const ejectionTimer = setInterval(() => {
      // An ejection that ended must reach the cached routes: rebuild them when one is due.
      const detectors = [this.outliers, ...[...this.serviceOutliers.values()].map((s) => s.detector)];
      if (detectors.some((d) => (d.nextExpiry() ?? Infinity) <= Date.now())) this.routing.invalidate();
      for (const d of detectors) d.decay();
    }, 250);
    ejectionTimer.unref();
    this.closer.add('ejections', () => clearInterval(ejectionTimer));

    if (!this.options.federation && cluster.spec.controller) {
      void this.connectController(signal);
    }
    log.info({ cluster: this.name, mode: this.options.federation ? 'static' : 'joined', ...this.ports, revision: this.data.revision }, 'gateway started');
  }

  /** Joins if needed (retrying while the controller is unreachable), then keeps the Sync stream up. */
  private async connectController(signal: AbortSignal): Promise<void> {
    const { cluster, log } = this.options;
    this.membership = readMembership(cluster.stateDir);
    const backoff = new Backoff({ initialMs: 500, maxMs: 15_000 });
    while (!this.membership && !signal.aborted) {
      const token = this.readToken();
      if (!token) {
        log.error({ stateDir: cluster.stateDir }, 'not a member of a federation and no join token: set spec.controller.tokenFile, or run "fedgate join"');
        return;
      }
      try {
        this.membership = await joinFederation({ token, info: this.clusterInfo(), bundle: this.identity.ownBundle, log: log.child({ component: 'join' }) });
        writeMembership(cluster.stateDir, this.membership);
      } catch (error) {
        if (error instanceof TokenError || (error instanceof FedgateError && /join refused/.test(error.message) && !/UNAVAILABLE/.test(error.message))) {
          log.error({ err: errorMessage(error) }, 'join failed; fix the token and restart the gateway');
          return;
        }
        log.warn({ err: errorMessage(error) }, 'join failed; retrying');
        await sleep(backoff.next(), signal).catch(() => undefined);
      }
    }
    if (!this.membership || signal.aborted) return;
    this.controllerClient = new ControllerClient({
      membership: this.membership,
      info: () => this.clusterInfo(),
      svid: this.identity.svid,
      ownBundle: () => this.identity.bundleRecord(),
      refreshOwnBundle: () => this.identity.refreshOwnBundle(),
      catalog: this.catalog,
      exports: this.exportSource(),
      log: log.child({ component: 'controller-sync' }),
      instance: this.instanceId,
      version: this.options.version,
      onVerdicts: (verdicts) => {
        this.lastVerdicts = verdicts;
        this.options.discovery.reportStatus?.(verdicts);
      },
      onSettings: (settings) => this.applySettings(settings.federation, settings.defaultsJson),
      policyStatus: () => ({ appliedRevision: this.policies.appliedRevision, nack: this.policies.nack }),
    });
    await runResilient(this.controllerClient, signal, { log, backoff: { initialMs: 200, maxMs: 10_000 }, healthyAfterMs: 10_000 });
  }

  private readToken(): string | undefined {
    if (this.options.token) return this.options.token.trim();
    const file = this.options.cluster.spec.controller?.tokenFile;
    if (file && existsSync(file)) return readFileSync(file, 'utf8').trim();
    return undefined;
  }

  clusterInfo(): ClusterInfo {
    const c = this.options.cluster;
    return {
      name: c.metadata.name,
      region: c.spec.region,
      zone: c.spec.zone,
      trustDomain: c.spec.trustDomain,
      gatewayAddresses: [...(c.spec.gateway.advertise ?? [c.spec.gateway.inbound])].map((a) => (this.inbound && a.endsWith(':0') ? a.replace(/:0$/, `:${this.inbound.port}`) : a)),
      labels: { ...c.metadata.labels },
      state: '',
      stateReason: '',
      stateChangedBy: '',
      stateChangedAtMs: 0,
      joinedAtMs: 0,
      blackholedServices: [],
    };
  }

  private exportSource(): ExportSource {
    const discovery = this.options.discovery;
    return {
      current: (): ExportSpec[] =>
        [...discovery.current().exports.values()].map((e) => ({
          namespace: e.namespace,
          name: e.name,
          ports: e.ports.map((p) => ({ name: p.name, port: p.port, protocol: p.protocol })),
          readyEndpoints: e.endpoints.filter((ep) => ep.ready).length,
          totalEndpoints: e.endpoints.length,
          consumers: e.consumers,
          createdAtMs: e.createdAt,
        })),
      onChange: (listener) => discovery.onChange(() => listener()),
    };
  }

  private settingsFile(): string {
    return join(this.options.cluster.stateDir, 'settings.json');
  }

  private loadSettings(): void {
    const file = this.settingsFile();
    if (!existsSync(file)) return;
    try {
      const saved = JSON.parse(readFileSync(file, 'utf8')) as { federation: string; defaults: unknown };
      const { defaults, problem } = validateDefaults(saved.defaults);
      if (defaults) {
        this.defaults = defaults;
        this.federationName = saved.federation;
        this.configureFromDefaults();
      } else this.log.warn({ file, problem }, 'persisted federation settings invalid; using built-in defaults');
    } catch (error) {
      this.log.warn({ file, err: errorMessage(error) }, 'persisted federation settings unreadable');
    }
  }

  private applySettings(federation: string, defaultsJson: string): void {
    let parsed: unknown;
    try {
      parsed = JSON.parse(defaultsJson);
    } catch (error) {
      this.log.error({ err: errorMessage(error) }, 'federation settings are not JSON; keeping the current ones');
      return;
    }
    const { defaults, problem } = validateDefaults(parsed);
    if (!defaults) {
      this.log.error({ problem }, 'federation defaults rejected; keeping the current ones');
      return;
    }
    this.defaults = defaults;
    this.federationName = federation;
    this.configureFromDefaults();
    this.changed();
    try {
      mkdirSync(this.options.cluster.stateDir, { recursive: true });
      const file = this.settingsFile();
      writeFileSync(`${file}.tmp`, JSON.stringify({ federation, defaults }));
      renameSync(`${file}.tmp`, file);
    } catch (error) {
      this.log.warn({ err: errorMessage(error) }, 'could not persist federation settings');
    }
  }

  private configureFromDefaults(): void {
    const d = this.defaults;
    this.health.configure({ intervalMs: d.healthCheck.interval, timeoutMs: d.healthCheck.timeout, unhealthyThreshold: d.healthCheck.unhealthyThreshold, healthyThreshold: d.healthCheck.healthyThreshold });
    this.outliers.configure({ consecutiveErrors: d.outlierDetection.consecutiveErrors, intervalMs: d.outlierDetection.interval, baseEjectionTimeMs: d.outlierDetection.baseEjectionTime, maxEjectionPercent: d.outlierDetection.maxEjectionPercent });
  }

  private loadStatic(federation: FederationDirectory): void {
    this.defaults = federation.federation.spec.defaults;
    this.federationName = federation.federation.metadata.name;
    this.configureFromDefaults();
    // A static federation's policies are configuration: a set this gateway cannot apply stops it
    // at start, with every problem, rather than running without them.
    const validated = validatePolicySet(federation.policyDocuments.map((doc) => ({ document: doc.value, source: doc.source, lineOf: (path) => doc.lineOf(path) })));
    if (validated.issues.length > 0) throw new ConfigError(validated.issues);
    const index = new PolicyIndex(validated.set);
    const problems = gatewayPolicyProblems(index, { cluster: this.name, allowFaultInjection: this.options.cluster.spec.gateway.policies.allowFaultInjection });
    if (problems.length > 0) throw new ConfigError(problems.map((message) => ({ source: join(federation.root, 'policies'), path: '', message })));
    const records: PolicyRecord[] = validated.policies.map((p) => ({ ...p, revision: 1 }));
    this.policies.useStatic(index, records, records.length > 0 ? 1 : 0);
    this.staticData = staticCatalog(federation, records, this.name, this.log);
  }

  /** Keeps trust, pools and health checks in step with the catalog. */
  /** A drill's blackhole comes with the catalog (set through the controller's audited admin API). */
  private applyBlackholes(services: readonly string[]): void {
    const next = new Set(services);
    for (const service of next) if (!this.blackholes.has(service)) this.log.warn({ service }, 'blackhole on: no longer answering for this service (drill)');
    for (const service of this.blackholes) if (!next.has(service)) this.log.warn({ service }, 'blackhole off: answering for this service again');
    this.blackholes.clear();
    for (const service of next) this.blackholes.add(service);
  }

  /** Providers that mirror the clusterset (Kubernetes ServiceImports) learn every catalog change. */
  private reportImports(data: CatalogData): void {
    const report = this.options.discovery.reportImports?.bind(this.options.discovery);
    if (!report) return;
    report(
      [...data.services.values()].map((service) => ({
        namespace: service.namespace,
        name: service.name,
        ports: service.ports.map((p) => ({ name: p.name, port: p.port, protocol: p.protocol })),
        clusters: service.exporters.map((e) => e.cluster),
      })),
    );
  }

  private applyCatalog(data: CatalogData): void {
    this.applyBlackholes(data.clusters.get(this.name)?.blackholed ?? []);
    const problems = this.identity.applyCatalogBundles(data.bundles.values());
    for (const problem of problems) this.log.error({ problem }, 'bundle rejected');
    for (const [key, entry] of this.pools) {
      const record = data.clusters.get(entry.cluster);
      if (!record || record.trustDomain !== entry.trustDomain || record.state === 'left') {
        entry.pool.close('left the federation');
        this.pools.delete(key);
      } else if (record.gatewayAddresses.join(',') !== entry.addresses) {
        entry.pool.recycle();
        entry.addresses = record.gatewayAddresses.join(',');
      }
    }
    const peers = [...data.clusters.values()].filter((c) => c.name !== this.name && c.state !== 'left').map((c) => c.name);
    this.health.setPeers(peers);
    for (const peer of peers) this.metrics.upstreamHealthy.set({ destination_cluster: peer }, this.health.isAlive(peer) ? 1 : 0);
    this.inbound?.dropDepartedPeers();
  }

  /**
   * The pool to a peer's gateway: the shared one, or the service's own when a policy sized its
   * connections (so one service's circuit-breaking limits never starve another's traffic).
   */
  private poolFor(cluster: string, service?: string, policy?: ServicePolicy): PeerPool | undefined {
    const dedicated = service !== undefined && policy?.connectionPool.dedicated === true;
    const key = dedicated ? `${cluster}|${service}` : cluster;
    const d = this.defaults.connectionPool;
    const pool = dedicated && policy ? policy.connectionPool : undefined;
    const sizing = pool ? `${pool.maxConnectionsPerPeer}/${pool.maxPendingRequests}/${pool.maxRequestsPerConnection}` : `${d.maxConnectionsPerPeer}/${d.maxPendingRequests}/0`;
    const existing = this.pools.get(key);
    if (existing) {
      if (existing.sizing === sizing) return existing.pool;
      existing.pool.retire();
      this.pools.delete(key);
    }
    const record = this.data.clusters.get(cluster);
    if (!record) return undefined;
    const expected = SpiffeId.gateway(record.trustDomain, record.name);
    const created = new PeerPool({
      cluster,
      addresses: () => this.data.clusters.get(cluster)?.gatewayAddresses ?? [],
      tls: () => clientConnectionOptions(this.identity.svid.current, this.identity.trust, this.identity.verifier, expectId(expected)),
      maxConnections: pool?.maxConnectionsPerPeer ?? d.maxConnectionsPerPeer,
      maxPending: pool?.maxPendingRequests ?? d.maxPendingRequests,
      maxRequestsPerConnection: pool?.maxRequestsPerConnection ?? 0,
      connectTimeoutMs: this.limits.connectTimeoutMs,
      log: this.log.child({ component: 'pool', peer: cluster, ...(dedicated ? { service } : {}) }),
    });
    this.pools.set(key, { pool: created, cluster, trustDomain: record.trustDomain, addresses: record.gatewayAddresses.join(','), sizing });
    return created;
  }

  private ping(cluster: string, timeoutMs: number): Promise<number> {
    const pool = this.poolFor(cluster);
    if (!pool) return Promise.reject(new Error(`${cluster} is not in the catalog`));
    return pool.ping(timeoutMs);
  }

  private onHealth(cluster: string, alive: boolean, reason: string): void {
    this.metrics.upstreamHealthy.set({ destination_cluster: cluster }, alive ? 1 : 0);
    if (!alive) {
      this.completeFailover(cluster, 'health-check');
    } else {
      this.firstFailure.delete(cluster);
      this.failedOver.delete(cluster);
      this.outliers.uneject(cluster);
      for (const { detector } of this.serviceOutliers.values()) detector.uneject(cluster);
    }
    this.routing.invalidate();
    if (!alive) this.log.warn({ cluster, reason }, 'traffic moved away from an unhealthy cluster');
  }

  private onEjection(cluster: string, ejected: boolean): void {
    if (ejected) {
      this.log.warn({ cluster }, 'cluster ejected by outlier detection');
      this.completeFailover(cluster, 'outlier-ejection');
    } else if (this.health.isAlive(cluster)) {
      this.failedOver.delete(cluster);
    }
    this.routing.invalidate();
  }

  /** Traffic has fully moved away from `cluster`: count it, and time it from the first failure seen. */
  private completeFailover(cluster: string, reason: string): void {
    if (this.failedOver.has(cluster)) return;
    this.failedOver.add(cluster);
    const first = this.firstFailure.get(cluster) ?? Date.now();
    this.metrics.failovers.inc({ destination_cluster: cluster, reason });
    this.metrics.failoverSeconds.observe({ destination_cluster: cluster }, (Date.now() - first) / 1000);
    this.firstFailure.delete(cluster);
  }

  private observe(ctx: RequestContext, cluster: string, outcome: Outcome): void {
    const route = ctx.route;
    const detector = route ? this.outliersFor(route.key, route.policy) : this.outliers;
    const failed =
      outcome.kind === 'failure'
        ? outcome.failure.code === 'connect-failed' || outcome.failure.code === 'upstream-reset' || outcome.failure.code === 'timeout'
        : outcome.response.status === 502 || outcome.response.status === 503 || outcome.response.status === 504;
    if (!failed) {
      detector.success(cluster);
      return;
    }
    if (!this.firstFailure.has(cluster)) this.firstFailure.set(cluster, Date.now());
    if (cluster !== this.name && outcome.kind === 'failure' && outcome.failure.code === 'connect-failed') this.health.reportFailure(cluster, outcome.failure.message);
    detector.failure(cluster, Math.max(1, detector === this.outliers ? this.data.clusters.size : (route?.targets.length ?? 1)));
  }

  private budget(key: string): RetryBudget {
    let budget = this.retryBudgets.get(key);
    if (!budget) {
      budget = new RetryBudget();
      this.retryBudgets.set(key, budget);
    }
    return budget;
  }

  private authorizationDepsValue: AuthorizationDeps | undefined;

  private authorizationDeps(): AuthorizationDeps {
    this.authorizationDepsValue ??= { rules: (namespace, name) => this.authorizationFor(namespace, name), metrics: this.metrics, log: this.log.child({ component: 'authz' }) };
    return this.authorizationDepsValue;
  }

  private outboundPipeline(): Handler<RequestContext> {
    const authorization = this.authorizationDeps();
    const terminal = balanceAndForward({
      localCluster: this.name,
      local: (ctx, route) => {
        if (!route.localExport || !route.localPort) return { kind: 'failure', failure: { code: 'no-healthy-upstream', message: `${route.name}.${route.namespace} is not exported here`, retriable: true } };
        // Served here without an inbound hop: the same authorization as for other clusters' callers.
        return authorizationOutcome(authorization, ctx) ?? this.forwarder.forward(ctx, route.localExport, route.localPort, this.name);
      },
      remote: (ctx, route, cluster) => {
        const pool = this.poolFor(cluster, route.key, route.policy);
        if (!pool) return { kind: 'failure', failure: { code: 'connect-failed', message: `${cluster} is not in the catalog`, cluster, retriable: true } };
        return forwardToPeer(ctx, pool);
      },
      observe: (ctx, cluster, outcome) => this.observe(ctx, cluster, outcome),
      choose: routeChooser(this.routing),
    });
    return compose<RequestContext>(
      [circuitBreakerLayer(this.metrics.overflows), routeLayer(this.metrics), faultLayer(this.metrics), timeoutLayer(), retryLayer((key) => this.budget(key), this.metrics.retries)],
      terminal,
    );
  }

  private inboundPipeline(): Handler<RequestContext> {
    const terminal: Handler<RequestContext> = async (ctx) => {
      const exported = this.options.discovery.current().exports.get(ctx.service.key);
      const port = exported?.ports.find((p) => p.port === ctx.service.port);
      if (!exported || !port) return { kind: 'failure', failure: { code: 'service-not-exported', message: `${ctx.service.key} is no longer exported`, retriable: false } };
      return this.forwarder.forward(ctx, exported, port, this.name);
    };
    return compose<RequestContext>([authorizeLayer(this.authorizationDeps())], terminal);
  }

  private async startListeners(): Promise<void> {
    const { cluster, log } = this.options;
    const gateway = cluster.spec.gateway;
    this.inbound = new InboundServer(
      {
        localCluster: this.name,
        identity: this.identity,
        catalog: () => this.data,
        discovery: () => this.options.discovery.current(),
        policyFor: (namespace, name) => this.policyFor(namespace, name),
        pipeline: this.inboundPipeline(),
        authorize: (request) => authorizationOutcome(this.authorizationDeps(), request),
        blackholed: (key) => this.blackholes.has(key),
        metrics: this.metrics,
        log: log.child({ component: 'inbound' }),
      },
      { listen: gateway.inbound, handshakeTimeoutMs: this.limits.handshakeTimeoutMs, headersTimeoutMs: this.limits.headersTimeoutMs, idleTimeoutMs: this.limits.idleTimeoutMs, maxConcurrentStreams: this.limits.maxConcurrentStreams, maxHeaderBytes: this.limits.maxHeaderBytes },
    );
    await this.inbound.start();
    this.closer.add('inbound', () => this.inbound.close());
    this.outbound = new OutboundServer(
      {
        localCluster: this.name,
        callerIdentity: (remoteAddress) => this.callers.of(remoteAddress, this.identity.spiffeId.toString()),
        routing: this.routing,
        defaultPolicy: () => defaultServicePolicy(this.defaults),
        pipeline: this.outboundPipeline(),
        metrics: this.metrics,
        log: log.child({ component: 'outbound' }),
      },
      { listen: gateway.outbound, headersTimeoutMs: this.limits.headersTimeoutMs, requestTimeoutMs: this.limits.requestTimeoutMs, maxHeaderBytes: this.limits.maxHeaderBytes, idleTimeoutMs: this.limits.idleTimeoutMs, maxConcurrentStreams: this.limits.maxConcurrentStreams },
    );
    await this.outbound.start();
    this.closer.add('outbound', () => this.outbound.close());
    for (const tcp of gateway.tcpImports) {
      const listener = new TcpImportListener(
        {
          localCluster: this.name,
          routing: this.routing,
          pool: (_route, peer) => this.poolFor(peer),
          metrics: this.metrics,
          log: log.child({ component: 'tcp', service: tcp.service }),
          connectTimeoutMs: this.limits.connectTimeoutMs,
          callerIdentity: (remoteAddress) => this.callers.of(remoteAddress, this.identity.spiffeId.toString()),
          authorize: (request) => authorizationOutcome(this.authorizationDeps(), request),
        },
        { service: tcp.service, port: tcp.port, listen: tcp.listen, attempts: 3 },
      );
      await listener.start();
      this.tcpImports.push(listener);
      this.closer.add(`tcp ${tcp.service}`, () => listener.close());
    }
    this.closer.add('pools', () => {
      for (const entry of this.pools.values()) entry.pool.close('gateway stopping');
      this.forwarder.close();
    });
    this.admin = await startAdminServer({
      listen: gateway.admin,
      registry: this.options.registry,
      log: log.child({ component: 'admin' }),
      readiness: () => this.readiness(),
      config: () => this.describe(),
    });
    this.closer.add('admin', () => this.admin.close());
    this.listening = true;
  }

  readiness(): { ready: boolean; reason?: string } {
    if (!this.listening) return { ready: false, reason: 'listeners starting' };
    const identity = this.identity.health();
    if (!identity.ready) return identity;
    if (!this.options.federation && this.data.revision === 0) return { ready: false, reason: 'no catalog yet (controller not reached, nothing persisted)' };
    return { ready: true };
  }

  describe(): unknown {
    const data = this.data;
    return {
      cluster: this.name,
      instance: this.instanceId,
      federation: this.federationName || this.membership?.federation,
      mode: this.options.federation ? 'static' : 'joined',
      controllerConnected: this.controllerClient?.connected ?? false,
      identity: this.identity.spiffeId.toString(),
      certificate: { source: this.identity.certificateSource, serial: this.identity.svid.current.certificate.serialNumber, notAfter: this.identity.svid.current.notAfter.toISOString() },
      ports: this.ports,
      catalog: {
        epoch: data.epoch,
        revision: data.revision,
        policyRevision: data.policyRevision,
        clusters: [...data.clusters.values()].map((c) => ({ name: c.name, region: c.region, zone: c.zone, state: c.state, addresses: c.gatewayAddresses })),
        services: [...data.services.values()].map((s) => ({
          service: `${s.namespace}/${s.name}`,
          ports: s.ports,
          exporters: s.exporters.map((e) => ({ cluster: e.cluster, ready: e.readyEndpoints, total: e.totalEndpoints })),
          conflicts: s.conflicts,
        })),
        bundles: [...data.bundles.values()].map((b) => ({ trustDomain: b.trustDomain, sequence: b.sequence })),
      },
      policies: this.policies.describe(),
      localExports: [...this.options.discovery.current().exports.values()].map((e) => ({
        service: `${e.namespace}/${e.name}`,
        ports: e.ports,
        ready: e.endpoints.filter((ep) => ep.ready).length,
        total: e.endpoints.length,
        consumers: e.consumers,
      })),
      verdicts: this.lastVerdicts,
      health: this.health.snapshot(),
      blackholed: [...this.blackholes],
      defaults: this.defaults,
    };
  }

  async stop(): Promise<void> {
    this.abort.abort();
    this.catalog.persistNow();
    await this.closer.close(this.log);
  }
}

