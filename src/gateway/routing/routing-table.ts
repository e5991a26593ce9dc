import type { ClusterRecord, ServicePort } from '../../model/catalog.js';
import type { ClustersetServiceView } from '../../model/clusterset.js';
import { loadBalancer, type Picker, type Target } from '../../balancer/picker.js';
import '../../balancer/locality-priority.js';
import type { LocalExport, LocalExportPort } from '../../discovery/provider.js';
import type { RouteDestination, ServicePolicy } from '../../policy/service-policy.js';
import type { Failure } from '../request/outcome.js';
import type { ControlView } from '../view/control-view.js';

/** What a clusterset service (at one port) resolves to on this gateway. */
export interface RouteEntry {
  key: string;
  namespace: string;
  name: string;
  port: ServicePort;
  /** `name.namespace.svc.clusterset.local:port`: the authority requests carry upstream. */
  authority: string;
  targets: Target[];
  picker: Picker;
  policy: ServicePolicy;
  /** This cluster's own export of the service, when it has one (served without a remote hop). */
  localExport: LocalExport | undefined;
  localPort: LocalExportPort | undefined;
  /** Cluster records of the targets, for peer addresses and trust domains. */
  clusters: ReadonlyMap<string, ClusterRecord>;
  /** Pickers over the clusters of one route destination (built on first use, dropped with the entry). */
  subsets: Map<string, { picker: Picker; clusters: readonly string[] }>;
}

/**
 * Resolves clusterset services to targets and pickers: a function of the control view and nothing
 * else. Entries are built on first use and kept while the view is the same; a new view (catalog,
 * local exports, health, ejections, policies) starts a fresh set, so a request never pays for
 * more than one build and the picker it uses is always that of the view it started under.
 */
export class RoutingTable {
  private entries = new Map<string, RouteEntry>();
  private builtFor = -1;

  constructor(private readonly balancer = 'locality-priority') {}

  resolve(view: ControlView, namespace: string, name: string, port: number | undefined): RouteEntry | Failure {
    return this.resolveKey(view, `${namespace}/${name}:${port ?? ''}`, namespace, name, port);
  }

  /** resolve() with the entry key (`namespace/name:port`) already built: the request path reuses one per authority. */
  resolveKey(view: ControlView, cacheKey: string, namespace: string, name: string, port: number | undefined): RouteEntry | Failure {
    if (view.version !== this.builtFor) {
      // A request that started under an older view may still ask: it gets an entry of its own view, uncached.
      if (view.version < this.builtFor) return this.build(view, namespace, name, port);
      this.entries = new Map();
      this.builtFor = view.version;
    }
    const cached = this.entries.get(cacheKey);
    if (cached) return cached;
    const built = this.build(view, namespace, name, port);
    if ('targets' in built) this.entries.set(cacheKey, built);
    return built;
  }

  private build(control: ControlView, namespace: string, name: string, requestedPort: number | undefined): RouteEntry | Failure {
    const key = `${namespace}/${name}`;
    const catalog = control.catalog;
    const local = control.local;
    const view: ClustersetServiceView | undefined = catalog.services.get(key);
    const localExport = control.localExports.exports.get(key);
    if (!view && !localExport) {
      return { code: 'no-route', message: `no cluster exports ${name}.${namespace}.svc.clusterset.local`, retriable: false };
    }
    const ports = new Map<number, ServicePort>();
    for (const p of view?.ports ?? []) ports.set(p.port, p);
    for (const p of localExport?.ports ?? []) if (!ports.has(p.port)) ports.set(p.port, { name: p.name, port: p.port, protocol: p.protocol });
    let port: ServicePort | undefined;
    if (requestedPort !== undefined) port = ports.get(requestedPort);
    else if (ports.size === 1) port = [...ports.values()][0];
    if (!port) {
      const known = [...ports.keys()].sort((a, b) => a - b).join(', ');
      return requestedPort === undefined
        ? { code: 'bad-request', message: `${name}.${namespace} has ports ${known}; name one in the authority (name.namespace.svc.clusterset.local:port)`, retriable: false }
        : { code: 'port-not-exported', message: `${name}.${namespace} has no port ${requestedPort} (ports: ${known})`, retriable: false };
    }
    const policy = control.servicePolicy(namespace, name);
    const targets: Target[] = [];
    const clusters = new Map<string, ClusterRecord>();
    const localPort = localExport?.ports.find((p) => p.port === port.port);
    if (localExport && localPort) {
      const ready = localExport.endpoints.filter((e) => e.ready).length;
      const record = catalog.clusters.get(local.cluster);
      targets.push({
        cluster: local.cluster,
        locality: local,
        readyEndpoints: ready,
        totalEndpoints: localExport.endpoints.length,
        draining: record?.state === 'draining',
        alive: true,
        // Local endpoints can fail too (a crashed pod before its readiness changes): eject them like a peer.
        ejected: control.isEjected(key, local.cluster),
      });
    }
    for (const exporter of view?.exporters ?? []) {
      if (exporter.cluster === local.cluster) continue;
      if (!exporter.ports.some((p) => p.port === port.port)) continue;
      const record = catalog.clusters.get(exporter.cluster);
      if (!record || record.state === 'left') continue;
      clusters.set(record.name, record);
      targets.push({
        cluster: exporter.cluster,
        locality: { region: record.region, zone: record.zone, cluster: record.name },
        readyEndpoints: exporter.readyEndpoints,
        totalEndpoints: exporter.totalEndpoints,
        // Control-plane reachability (lease) says nothing about the data plane: active health checks decide.
        draining: record.state === 'draining',
        alive: !control.unhealthy.has(exporter.cluster),
        ejected: control.isEjected(key, exporter.cluster),
      });
    }
    if (policy.failover.distribute) applyShares(targets, policy.failover.distribute);
    const picker = this.pickerOf(local, targets, policy);
    return { key, namespace, name, port, authority: `${name}.${namespace}.svc.clusterset.local:${port.port}`, targets, picker, policy, localExport, localPort, clusters, subsets: new Map() };
  }

  private pickerOf(local: ControlView['local'], targets: readonly Target[], policy: ServicePolicy): Picker {
    return loadBalancer(this.balancer).picker(targets, local, {
      overprovisioningFactor: policy.failover.overprovisioningFactor,
      panicThreshold: policy.failover.panicThreshold,
      failoverRegions: policy.failover.regionOrder,
    });
  }

  /**
   * A picker over the clusters of a route destination: one cluster by name, or every cluster whose
   * labels include the destination's. Within them, locality and health still decide.
   */
  destination(control: ControlView, route: RouteEntry, destination: RouteDestination): { picker: Picker; clusters: readonly string[] } {
    const key = destination.cluster !== undefined ? `cluster=${destination.cluster}` : Object.entries(destination.clusterLabels ?? {}).map(([k, v]) => `${k}=${v}`).sort().join(',');
    let subset = route.subsets.get(key);
    if (!subset) {
      const catalog = control.catalog;
      const selected = route.targets.filter((t) => {
        if (destination.cluster !== undefined) return t.cluster === destination.cluster;
        const labels = catalog.clusters.get(t.cluster)?.labels ?? (t.cluster === control.local.cluster ? control.local.labels : undefined) ?? {};
        return Object.entries(destination.clusterLabels ?? {}).every(([k, v]) => labels[k] === v);
      });
      // Shares from a distribute rule describe the whole service, not one destination of a split.
      const plain = selected.map((t) => (t.share === undefined ? t : { ...t, share: undefined }));
      subset = { picker: this.pickerOf(control.local, plain, route.policy), clusters: plain.map((t) => t.cluster) };
      route.subsets.set(key, subset);
    }
    return subset;
  }
}

/**
 * Turns distribute shares (by cluster name, or by region split evenly between the region's
 * clusters not named themselves) into per-target shares.
 */
function applyShares(targets: Target[], distribute: ReadonlyMap<string, number>): void {
  const byRegion = new Map<string, number>();
  for (const t of targets) if (!distribute.has(t.cluster) && distribute.has(t.locality.region)) byRegion.set(t.locality.region, (byRegion.get(t.locality.region) ?? 0) + 1);
  for (const t of targets) {
    const own = distribute.get(t.cluster);
    if (own !== undefined) t.share = own;
    else if (distribute.has(t.locality.region)) t.share = (distribute.get(t.locality.region) as number) / (byRegion.get(t.locality.region) as number);
  }
}
