import { gatewayDefaultsShape, type GatewayDefaults } from '../../config/federation-config.js';
import type { LocalExport } from '../../discovery/provider.js';
import type { ClusterRecord, ServicePort } from '../../model/catalog.js';
import type { ClustersetServiceView } from '../../model/clusterset.js';
import { compilePolicySet } from '../../policy/compile.js';
import { PolicyIndex } from '../../policy/resolve.js';
import type { CatalogData } from '../control/catalog-replica.js';
import { ControlViewPublisher, type ControlView, type LocalCluster } from '../view/control-view.js';
import { RoutingTable, type RouteEntry } from './routing-table.js';

const local: LocalCluster = { cluster: 'us-east', region: 'us-east-1', zone: 'us-east-1a', trustDomain: 'us-east.acme.internal', labels: { version: 'v1' } };
const defaults = gatewayDefaultsShape.defaultFactory?.() as GatewayDefaults;

function cluster(name: string, region: string, over: Partial<ClusterRecord> = {}): ClusterRecord {
  return { name, region, zone: `${region}a`, trustDomain: `${name}.acme.internal`, gatewayAddresses: [`${name}.example:15443`], labels: {}, state: 'active', stateReason: '', stateChangedBy: '', stateChangedAt: 0, joinedAt: 0, ...over };
}

const http: ServicePort = { name: 'http', port: 8080, protocol: 'http' };
const grpc: ServicePort = { name: 'grpc', port: 9090, protocol: 'grpc' };

function service(exporters: Array<[string, number]>, ports = [http]): ClustersetServiceView {
  return { namespace: 'default', name: 'payments', ports, exporters: exporters.map(([c, ready]) => ({ cluster: c, ports, readyEndpoints: ready, totalEndpoints: 3, createdAt: 0 })), conflicts: [] };
}

function catalog(clusters: ClusterRecord[], services: ClustersetServiceView[]): CatalogData {
  return { epoch: 'e', revision: 1, policyRevision: 0, clusters: new Map(clusters.map((c) => [c.name, c])), services: new Map(services.map((s) => [`${s.namespace}/${s.name}`, s])), bundles: new Map(), policies: new Map() };
}

function localExport(ready: number, ports = [{ ...http, targetPort: 80 }]): LocalExport {
  return { namespace: 'default', name: 'payments', ports, endpoints: Array.from({ length: 2 }, (_, i) => ({ address: `10.0.0.${i}:80`, ready: i < ready })), consumers: [], createdAt: 0 };
}

const peers = [cluster('us-east', 'us-east-1', { labels: { version: 'v1' } }), cluster('us-west', 'us-west-2', { labels: { version: 'v2' } }), cluster('eu-west', 'eu-west-1', { labels: { version: 'v2' } })];

function publisher(data: CatalogData, exports: LocalExport[] = []): ControlViewPublisher {
  return new ControlViewPublisher(local, { federation: 'acme', catalog: data, defaults, localExports: { exports: new Map(exports.map((e) => [`${e.namespace}/${e.name}`, e])), source: 'test' } });
}

function entry(result: ReturnType<RoutingTable['resolve']>): RouteEntry {
  if (!('targets' in result)) throw new Error(`expected a route, got ${result.code}: ${result.message}`);
  return result;
}

describe('RoutingTable', () => {
  it('resolves a service to its exporters with their locality, health and the clusterset authority', () => {
    const view = publisher(catalog(peers, [service([['us-west', 2], ['eu-west', 0]])])).current;
    const route = entry(new RoutingTable().resolve(view, 'default', 'payments', 8080));
    expect(route.authority).toBe('payments.default.svc.clusterset.local:8080');
    expect(route.localExport).toBeUndefined();
    expect(route.targets).toEqual([
      { cluster: 'us-west', locality: { region: 'us-west-2', zone: 'us-west-2a', cluster: 'us-west' }, readyEndpoints: 2, totalEndpoints: 3, draining: false, alive: true, ejected: false },
      { cluster: 'eu-west', locality: { region: 'eu-west-1', zone: 'eu-west-1a', cluster: 'eu-west' }, readyEndpoints: 0, totalEndpoints: 3, draining: false, alive: true, ejected: false },
    ]);
    expect([...route.clusters.keys()]).toEqual(['us-west', 'eu-west']);
    expect(route.picker.pick()).toMatchObject({ type: 'complete', cluster: 'us-west' });
  });

  it('puts its own export first, from the local endpoints, and serves it without the catalog knowing the service', () => {
    const view = publisher(catalog(peers, []), [localExport(1)]).current;
    const route = entry(new RoutingTable().resolve(view, 'default', 'payments', undefined));
    expect(route.targets).toEqual([{ cluster: 'us-east', locality: local, readyEndpoints: 1, totalEndpoints: 2, draining: false, alive: true, ejected: false }]);
    expect(route.localPort).toEqual({ ...http, targetPort: 80 });
    expect(route.picker.pick()).toMatchObject({ type: 'complete', cluster: 'us-east' });
  });

  it('reports an unknown service, an unknown port and a missing port with the ports there are', () => {
    const view = publisher(catalog(peers, [service([['us-west', 1]], [http, grpc])])).current;
    const table = new RoutingTable();
    expect(table.resolve(view, 'default', 'orders', 80)).toEqual({ code: 'no-route', message: 'no cluster exports orders.default.svc.clusterset.local', retriable: false });
    expect(table.resolve(view, 'default', 'payments', 81)).toEqual({ code: 'port-not-exported', message: 'payments.default has no port 81 (ports: 8080, 9090)', retriable: false });
    expect(table.resolve(view, 'default', 'payments', undefined)).toMatchObject({ code: 'bad-request', message: expect.stringContaining('has ports 8080, 9090; name one') });
  });

  it('leaves out clusters that left or do not export the port; marks draining, unhealthy and ejected clusters', () => {
    const data = catalog([cluster('us-west', 'us-west-2', { state: 'draining' }), cluster('eu-west', 'eu-west-1'), cluster('ap-south', 'ap-south-1', { state: 'left' }), cluster('sa-east', 'sa-east-1')], [
      { ...service([['us-west', 1], ['eu-west', 1], ['ap-south', 1]]), exporters: [...service([['us-west', 1], ['eu-west', 1], ['ap-south', 1]]).exporters, { cluster: 'sa-east', ports: [grpc], readyEndpoints: 1, totalEndpoints: 1, createdAt: 0 }, { cluster: 'gone', ports: [http], readyEndpoints: 1, totalEndpoints: 1, createdAt: 0 }] },
    ]);
    const p = publisher(data);
    p.update({ unhealthy: new Set(['eu-west']), ejections: new Map([['default/payments', new Set(['us-west'])]]) });
    const route = entry(new RoutingTable().resolve(p.current, 'default', 'payments', 8080));
    expect(route.targets.map((t) => [t.cluster, t.draining, t.alive, t.ejected])).toEqual([
      ['us-west', true, true, true],
      ['eu-west', false, false, false],
    ]);
    // Nothing healthy is left: below the panic threshold, health is ignored.
    expect(route.picker.pick()).toMatchObject({ type: 'complete', panic: true });
  });

  it('keeps an entry for as long as the view is the same and builds afresh for a new view; an older view gets its own, uncached', () => {
    const p = publisher(catalog(peers, [service([['us-west', 1]])]));
    const table = new RoutingTable();
    const first = p.current;
    const a = entry(table.resolve(first, 'default', 'payments', 8080));
    expect(table.resolve(first, 'default', 'payments', 8080)).toBe(a);
    const second = p.update({ unhealthy: new Set(['us-west']) });
    const b = entry(table.resolve(second, 'default', 'payments', 8080));
    expect(b).not.toBe(a);
    expect(b.targets[0]?.alive).toBe(false);
    const old = entry(table.resolve(first, 'default', 'payments', 8080));
    expect(old).not.toBe(a);
    expect(old.targets[0]?.alive).toBe(true);
    expect(table.resolve(second, 'default', 'payments', 8080)).toBe(b);
  });

  it('gives distribute shares by cluster name, and by region split evenly among its clusters', () => {
    const p = publisher(catalog([...peers, cluster('us-west-b', 'us-west-2')], [service([['us-west', 1], ['us-west-b', 1], ['eu-west', 1]])]));
    const result = compilePolicySet([{ document: { apiVersion: 'fedgate.io/v1alpha1', kind: 'FailoverPolicy', metadata: { name: 'payments', namespace: 'default' }, spec: { service: 'payments', distribute: [{ from: 'us-east-1', to: { 'eu-west': 20, 'us-west-2': 80 } }] } }, source: 'failover.yaml' }]);
    expect(result.issues).toEqual([]);
    const view: ControlView = p.update({ policies: new PolicyIndex(result.set) });
    const route = entry(new RoutingTable().resolve(view, 'default', 'payments', 8080));
    expect(Object.fromEntries(route.targets.map((t) => [t.cluster, t.share]))).toEqual({ 'us-west': 40, 'us-west-b': 40, 'eu-west': 20 });
  });

  describe('destination', () => {
    it('selects one cluster by name, or every cluster whose labels match (the local one by its own labels), and caches the subset', () => {
      const view = publisher(catalog(peers, [service([['us-west', 1], ['eu-west', 1]])]), [localExport(2)]).current;
      const table = new RoutingTable();
      const route = entry(table.resolve(view, 'default', 'payments', 8080));
      expect(table.destination(view, route, { cluster: 'eu-west', weight: 1 }).clusters).toEqual(['eu-west']);
      const v2 = table.destination(view, route, { clusterLabels: { version: 'v2' }, weight: 1 });
      expect(v2.clusters).toEqual(['us-west', 'eu-west']);
      expect(v2.picker.pick()).toMatchObject({ type: 'complete', cluster: expect.stringMatching(/^(us-west|eu-west)$/) });
      expect(table.destination(view, route, { clusterLabels: { version: 'v1' }, weight: 1 }).clusters).toEqual(['us-east']);
      expect(table.destination(view, route, { clusterLabels: { version: 'v2' }, weight: 5 })).toBe(v2);
      expect(table.destination(view, route, { cluster: 'nowhere', weight: 1 }).clusters).toEqual([]);
    });
  });
});
