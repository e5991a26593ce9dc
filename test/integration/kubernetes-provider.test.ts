/**
 * The Kubernetes discovery provider against the fake API server: the real @kubernetes/client-node
 * informers over real HTTP, with dropped watches, 410 Gone, failed lists, status conditions and
 * ServiceImports.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { clusterFromObject } from '../../src/config/load.js';
import { createRootLogger, createSilentLogger } from '../../src/core/logger.js';
import { KubernetesDiscoveryProvider, type KubernetesProviderOptions } from '../../src/discovery/kubernetes/kubernetes-provider.js';
import type { DiscoveryState } from '../../src/discovery/provider.js';
import { eventually } from '../support/control-plane.js';
import { FakeKubeApi, conditionsOf, endpointSliceObject, serviceExportObject, serviceObject, type KubeObject } from '../support/fake-kube-api.js';

interface Running {
  provider: KubernetesDiscoveryProvider;
  changes: DiscoveryState[];
  stop(): Promise<void>;
}

let api: FakeKubeApi;
let dir: string;
const running: Running[] = [];

beforeEach(async () => {
  api = await FakeKubeApi.start({ bookmarkIntervalMs: 200 });
  dir = mkdtempSync(join(tmpdir(), 'fedgate-k8s-provider-'));
  api.writeKubeconfig(join(dir, 'kubeconfig'));
});

afterEach(async () => {
  await Promise.all(running.splice(0).map((r) => r.stop()));
  await api.close();
  rmSync(dir, { recursive: true, force: true });
});

async function startProvider(options: KubernetesProviderOptions = {}, namespaces: string[] = []): Promise<Running> {
  const cluster = clusterFromObject(
    {
      apiVersion: 'fedgate.io/v1alpha1',
      kind: 'Cluster',
      metadata: { name: 'us-east' },
      // A relative kubeconfig path is taken from the cluster file's directory.
      spec: { region: 'us-1', zone: 'a', trustDomain: 'us-east.test.internal', discovery: { mode: 'kubernetes', kubernetes: { kubeconfig: '../kubeconfig', namespaces } } },
    },
    join(dir, 'clusters', 'us-east.yaml'),
  );
  const provider = new KubernetesDiscoveryProvider(cluster, process.env.DEBUG_K8S ? createRootLogger({ level: 'debug', destination: process.stdout as never }) : createSilentLogger(), { batchMs: 5, backoff: { initialMs: 50, maxMs: 200 }, writeBackoff: { initialMs: 50, maxMs: 200 }, env: {}, ...options });
  const changes: DiscoveryState[] = [];
  provider.onChange((state) => changes.push(state));
  const abort = new AbortController();
  const done = provider.start(abort.signal);
  await provider.whenSynced();
  const handle = {
    provider,
    changes,
    stop: async () => {
      abort.abort();
      await done;
    },
  };
  running.push(handle);
  return handle;
}

function createCart(options: { ready?: boolean[]; consumers?: string } = {}): void {
  api.apply(serviceObject('shop', 'cart', [{ name: 'http', port: 8080, targetPort: 'web' }, { name: 'grpc-api', port: 9000, targetPort: 9001 }, { name: 'dns', port: 53, protocol: 'UDP' }]));
  api.apply(
    endpointSliceObject(
      'shop',
      'cart',
      'cart-a',
      (options.ready ?? [true, true]).map((ready, i) => ({ address: `10.0.0.${i + 1}`, ready })),
      [{ name: 'http', port: 9090 }, { name: 'grpc-api', port: 9001 }],
    ),
  );
  api.apply(serviceExportObject('shop', 'cart', options.consumers === undefined ? undefined : { 'fedgate.io/consumers': options.consumers }));
}

function readyOf(provider: KubernetesDiscoveryProvider, key = 'shop/cart'): number | undefined {
  return provider.current().exports.get(key)?.endpoints.filter((e) => e.ready).length;
}

function setSlice(ready: boolean[], slice = 'cart-a'): KubeObject {
  return api.apply(endpointSliceObject('shop', 'cart', slice, ready.map((r, i) => ({ address: `10.0.0.${i + 1}`, ready: r })), [{ name: 'http', port: 9090 }, { name: 'grpc-api', port: 9001 }]));
}

describe('exports from ServiceExport, Service and EndpointSlice', () => {
  it('exports a service while its ServiceExport exists, with ports, protocols, endpoints and consumers', async () => {
    const { provider, changes } = await startProvider();
    expect(provider.current().exports.size).toBe(0);
    createCart({ consumers: 'us-west, eu-west' });
    const exported = await eventually(() => provider.current().exports.get('shop/cart'), 'shop/cart exported');
    const serviceExport = api.get('serviceexports', 'shop', 'cart') as KubeObject;
    expect(exported).toEqual({
      namespace: 'shop',
      name: 'cart',
      // The named targetPort "web" is resolved through the EndpointSlice port of the same name;
      // the UDP port is left out.
      ports: [
        { name: 'http', port: 8080, targetPort: 9090, protocol: 'http' },
        { name: 'grpc-api', port: 9000, targetPort: 9001, protocol: 'grpc' },
      ],
      endpoints: [
        { address: '10.0.0.1', ready: true },
        { address: '10.0.0.2', ready: true },
      ],
      consumers: ['eu-west', 'us-west'],
      createdAt: Date.parse(serviceExport.metadata.creationTimestamp as string),
    });
    expect(provider.current().source).toBe(`kubernetes ${api.url}`);
    // The Service, slice and ServiceExport arrived as separate events but close together.
    expect(changes.length).toBeGreaterThanOrEqual(1);

    api.remove('serviceexports', 'shop', 'cart');
    await eventually(() => !provider.current().exports.has('shop/cart'), 'export withdrawn after the ServiceExport was deleted');
    // The Service itself is still there: only the ServiceExport decides.
    expect(api.get('services', 'shop', 'cart')).toBeDefined();
  });

  it('counts ready endpoints from the slices: unready drops the count, addresses are deduplicated across slices', async () => {
    createCart({ ready: [true, true, true] });
    const { provider, changes } = await startProvider();
    expect(readyOf(provider)).toBe(3);
    const before = changes.length;
    setSlice([true, false, false]);
    await eventually(() => readyOf(provider) === 1, 'ready count 1');
    expect(provider.current().exports.get('shop/cart')?.endpoints).toHaveLength(3);
    expect(changes.length).toBe(before + 1);
    // A second slice lists 10.0.0.2 as ready (a slice migration): counted once, as ready.
    api.apply(endpointSliceObject('shop', 'cart', 'cart-b', [{ address: '10.0.0.2', ready: true }, { address: '10.0.0.9', ready: false, serving: true, terminating: true }], [{ name: 'http', port: 9090 }]));
    await eventually(() => readyOf(provider) === 2 && provider.current().exports.get('shop/cart')?.endpoints.length === 4, 'second slice merged');
    api.remove('endpointslices', 'shop', 'cart-b');
    await eventually(() => readyOf(provider) === 1 && provider.current().exports.get('shop/cart')?.endpoints.length === 3, 'second slice gone');
  });

  it('emits onChange once per real change, not for events that change nothing', async () => {
    createCart();
    const { provider, changes } = await startProvider();
    const before = changes.length;
    // Annotations the provider does not read, a status write of someone else: new resourceVersions, same export.
    const service = api.get('services', 'shop', 'cart') as KubeObject;
    api.apply({ ...service, metadata: { ...service.metadata, annotations: { note: 'x' } } });
    const slice = api.get('endpointslices', 'shop', 'cart-a') as KubeObject;
    api.apply({ ...slice, metadata: { ...slice.metadata, annotations: { note: 'y' } } });
    setSlice([true, false]);
    await eventually(() => readyOf(provider) === 1, 'unready seen');
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(changes.length).toBe(before + 1);
  });

  it('watches only the configured namespaces', async () => {
    createCart();
    api.apply(serviceObject('other', 'cart', [{ name: 'http', port: 8080 }]));
    api.apply(serviceExportObject('other', 'cart'));
    const { provider } = await startProvider({}, ['shop']);
    expect([...provider.current().exports.keys()]).toEqual(['shop/cart']);
    expect(api.requestsMatching({ method: 'GET', resource: 'services', namespace: undefined })).toHaveLength(0);
    expect(api.requestsMatching({ method: 'GET', resource: 'services', namespace: 'shop' }).length).toBeGreaterThan(0);
  });
});

describe('resilience of the watches', () => {
  it('recovers a dropped watch without losing the events made while it was down', async () => {
    createCart({ ready: [true, true] });
    const { provider } = await startProvider();
    for (const mode of ['destroy', 'end'] as const) {
      await eventually(() => api.watchCount() === 4, 'all four watches open');
      const lists = api.requestsMatching({ method: 'GET', watch: false }).length;
      expect(api.dropWatches(mode)).toBe(4);
      // Made while no watch is open: the resumed watch must replay it.
      setSlice(mode === 'destroy' ? [false, true] : [true, true]);
      await eventually(() => readyOf(provider) === (mode === 'destroy' ? 1 : 2), `change made while dropped (${mode}) is seen`);
      await eventually(() => api.watchCount() === 4, 'all four watches reopened');
      // Resumed from the last resourceVersion: no relist was needed.
      expect(api.requestsMatching({ method: 'GET', watch: false }).length).toBe(lists);
      const resumed = api.requestsMatching({ resource: 'endpointslices', watch: true }).at(-1);
      expect(Number(resumed?.query.resourceVersion)).toBeGreaterThan(1);
      expect(resumed?.query.labelSelector).toBe('kubernetes.io/service-name');
    }
  });

  it('relists after 410 Gone, and sees deletions made while it was away', async () => {
    createCart();
    api.apply(serviceObject('shop', 'orders', [{ name: 'http', port: 80 }]));
    api.apply(serviceExportObject('shop', 'orders'));
    const { provider } = await startProvider();
    expect(provider.current().exports.size).toBe(2);
    const lists = api.requestsMatching({ method: 'GET', resource: 'serviceexports', watch: false }).length;
    api.dropWatches();
    api.remove('serviceexports', 'shop', 'orders');
    setSlice([false, false]);
    api.expireHistory();
    await eventually(() => !provider.current().exports.has('shop/orders') && readyOf(provider) === 0, 'deletion and change seen after the relist');
    expect(api.requestsMatching({ method: 'GET', resource: 'serviceexports', watch: false }).length).toBe(lists + 1);
    await eventually(() => api.watchCount() === 4, 'watches reopened');
  });

  it('keeps the last good state while the API server refuses to list, and catches up when it answers again', async () => {
    createCart();
    const { provider, changes } = await startProvider();
    await eventually(() => api.watchCount() === 4, 'all four watches open');
    const before = changes.length;
    // Watches come back refused (503: ListWatch gives up, the provider restarts them), then
    // with 410 Gone, and the relists that follow fail too.
    api.failNext({ method: 'GET', watch: true }, 4, 503);
    api.failNext({ method: 'GET', watch: false, resource: 'endpointslices' }, 4, 500);
    api.dropWatches();
    setSlice([true, false]);
    api.expireHistory();
    await eventually(() => api.requestsMatching({ method: 'GET', resource: 'endpointslices', watch: false }).filter((r) => r.status === 500).length >= 2, 'failed relists');
    // Nothing was erased by the failures, and nothing was announced.
    expect(provider.current().exports.get('shop/cart')?.endpoints).toHaveLength(2);
    expect(readyOf(provider)).toBe(2);
    expect(changes.length).toBe(before);
    await eventually(() => readyOf(provider) === 1, 'change seen after the API server recovered');
    expect(changes.length).toBe(before + 1);
    await eventually(() => api.watchCount() === 4, 'watches reopened');
  });

  it('skips a malformed object, keeps the last good export, and never crashes', async () => {
    createCart();
    const { provider } = await startProvider();
    const good = provider.current().exports.get('shop/cart');
    const service = api.get('services', 'shop', 'cart') as KubeObject;
    api.apply({ ...service, spec: { ports: 'oops' } });
    await eventually(() => conditionsOf(api.get('serviceexports', 'shop', 'cart')).Valid?.reason === 'InvalidService', 'Valid=False InvalidService');
    expect(provider.current().exports.get('shop/cart')).toEqual(good);
    // Other exports are unaffected by the bad one.
    api.apply(serviceObject('shop', 'fine', [{ name: 'http', port: 80 }]));
    api.apply(serviceExportObject('shop', 'fine'));
    await eventually(() => provider.current().exports.has('shop/fine'), 'a good export next to the bad one');
    api.apply({ ...service, spec: { ports: [{ name: 'http', port: 8080, targetPort: 'web', protocol: 'TCP' }] } });
    await eventually(() => conditionsOf(api.get('serviceexports', 'shop', 'cart')).Valid?.status === 'True', 'valid again');
    expect(provider.current().exports.get('shop/cart')?.ports).toEqual([{ name: 'http', port: 8080, targetPort: 9090, protocol: 'http' }]);
  });

  it('restarts from a fresh relist when start() runs again, dropping exports deleted in between', async () => {
    createCart();
    api.apply(serviceObject('shop', 'orders', [{ name: 'http', port: 80 }]));
    api.apply(serviceExportObject('shop', 'orders'));
    const first = await startProvider();
    expect(first.provider.current().exports.size).toBe(2);
    await first.stop();
    running.splice(running.indexOf(first), 1);
    api.remove('serviceexports', 'shop', 'orders');
    // The same provider object started again (what the gateway's runResilient does).
    const abort = new AbortController();
    const done = first.provider.start(abort.signal);
    await eventually(() => first.provider.current().exports.size === 1, 'orders withdrawn after the restart');
    abort.abort();
    await done;
  });
});

describe('ServiceExport status conditions', () => {
  it('writes Valid, Ready and Conflict, and rewrites nothing that did not change', async () => {
    createCart();
    const { provider } = await startProvider();
    const statusWrites = (): number => api.requestsMatching({ method: 'PATCH', resource: 'serviceexports', subresource: 'status' }).length;
    await eventually(() => conditionsOf(api.get('serviceexports', 'shop', 'cart')).Valid, 'conditions written');
    let conditions = conditionsOf(api.get('serviceexports', 'shop', 'cart'));
    expect(conditions.Valid).toMatchObject({ status: 'True', reason: 'Valid', message: 'exported as cart.shop.svc.clusterset.local' });
    expect(conditions.Ready).toMatchObject({ status: 'Unknown', reason: 'Pending' });
    expect(conditions.Conflict).toMatchObject({ status: 'Unknown' });

    provider.reportStatus([{ namespace: 'shop', name: 'cart', accepted: true, reason: '' }]);
    await eventually(() => conditionsOf(api.get('serviceexports', 'shop', 'cart')).Ready?.status === 'True', 'Ready=True');
    conditions = conditionsOf(api.get('serviceexports', 'shop', 'cart'));
    expect(conditions.Conflict).toMatchObject({ status: 'False', reason: 'NoConflict' });
    expect(conditions.Valid?.lastTransitionTime).toBeDefined();

    // Nothing changes: the same verdict again, an endpoint change, our own writes coming back.
    await new Promise((resolve) => setTimeout(resolve, 100));
    const settled = statusWrites();
    provider.reportStatus([{ namespace: 'shop', name: 'cart', accepted: true, reason: '' }]);
    setSlice([true, false]);
    await eventually(() => readyOf(provider) === 1, 'endpoint change seen');
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(statusWrites()).toBe(settled);

    const reason = 'port "http" is http 8080/http here but http 8080/grpc in us-west, which exported the service first';
    provider.reportStatus([{ namespace: 'shop', name: 'cart', accepted: false, reason }]);
    await eventually(() => conditionsOf(api.get('serviceexports', 'shop', 'cart')).Conflict?.status === 'True', 'Conflict=True');
    conditions = conditionsOf(api.get('serviceexports', 'shop', 'cart'));
    expect(conditions.Conflict).toMatchObject({ status: 'True', reason: 'PortConflict', message: reason });
    expect(conditions.Ready).toMatchObject({ status: 'False', reason: 'Conflict' });
    expect(conditions.Valid?.status).toBe('True');
  });

  it('keeps other controllers\' conditions and the transition time of conditions whose status stays', async () => {
    createCart();
    const { provider } = await startProvider({ now: () => new Date('2030-01-01T00:00:00Z') });
    await eventually(() => conditionsOf(api.get('serviceexports', 'shop', 'cart')).Valid, 'conditions written');
    const object = api.get('serviceexports', 'shop', 'cart') as KubeObject;
    const foreign = { type: 'Synced', status: 'True', reason: 'Other', message: 'another controller', lastTransitionTime: '2020-01-01T00:00:00Z' };
    api.apply({ ...object, status: { conditions: [...((object.status as { conditions: unknown[] }).conditions ?? []), foreign] } });
    provider.reportStatus([{ namespace: 'shop', name: 'cart', accepted: true, reason: '' }]);
    await eventually(() => conditionsOf(api.get('serviceexports', 'shop', 'cart')).Ready?.status === 'True', 'Ready=True');
    const conditions = conditionsOf(api.get('serviceexports', 'shop', 'cart'));
    expect(conditions.Synced).toEqual(foreign);
    expect(conditions.Valid?.lastTransitionTime).toBe('2030-01-01T00:00:00Z');
  });

  it('reports a ServiceExport without a Service, and one with bad consumers, as not valid', async () => {
    const { provider } = await startProvider();
    api.apply(serviceExportObject('shop', 'ghost'));
    await eventually(() => conditionsOf(api.get('serviceexports', 'shop', 'ghost')).Valid?.status === 'False', 'Valid=False');
    expect(conditionsOf(api.get('serviceexports', 'shop', 'ghost')).Valid).toMatchObject({ reason: 'ServiceNotFound', message: 'Service shop/ghost not found' });
    expect(conditionsOf(api.get('serviceexports', 'shop', 'ghost')).Ready).toMatchObject({ status: 'False', reason: 'NotExported' });
    expect(provider.current().exports.has('shop/ghost')).toBe(false);

    // A new export with a bad annotation is not exported.
    createCart({ consumers: 'us-west,Not_A_Cluster' });
    await eventually(() => conditionsOf(api.get('serviceexports', 'shop', 'cart')).Valid?.reason === 'InvalidConsumers', 'InvalidConsumers');
    expect(conditionsOf(api.get('serviceexports', 'shop', 'cart')).Valid?.message).toContain('"Not_A_Cluster" is not a cluster name');
    expect(provider.current().exports.has('shop/cart')).toBe(false);

    // A good annotation, then a bad edit of it: the last good export stays in force.
    api.apply(serviceExportObject('shop', 'cart', { 'fedgate.io/consumers': 'us-west' }));
    await eventually(() => provider.current().exports.get('shop/cart')?.consumers.join() === 'us-west', 'exported to us-west');
    api.apply(serviceExportObject('shop', 'cart', { 'fedgate.io/consumers': 'us-west,,us east' }));
    await eventually(() => conditionsOf(api.get('serviceexports', 'shop', 'cart')).Valid?.reason === 'InvalidConsumers', 'bad edit reported');
    expect(conditionsOf(api.get('serviceexports', 'shop', 'cart')).Valid?.message).toContain('the last valid version stays exported');
    expect(provider.current().exports.get('shop/cart')?.consumers).toEqual(['us-west']);

    // The Service appears: ghost becomes valid.
    api.apply(serviceObject('shop', 'ghost', [{ name: 'http', port: 80 }]));
    await eventually(() => provider.current().exports.has('shop/ghost'), 'ghost exported');
    await eventually(() => conditionsOf(api.get('serviceexports', 'shop', 'ghost')).Valid?.status === 'True', 'ghost valid');
  });
});

describe('ServiceImports from the catalog', () => {
  const imports = (clusters: string[], port = 8080): Parameters<KubernetesDiscoveryProvider['reportImports']>[0] => [
    { namespace: 'shop', name: 'cart', ports: [{ name: 'http', port, protocol: 'http' }, { name: 'grpc', port: 9000, protocol: 'grpc' }], clusters },
    { namespace: 'billing', name: 'ledger', ports: [{ name: 'tcp', port: 5432, protocol: 'tcp' }], clusters: ['eu-west'] },
  ];

  it('creates, updates and deletes ServiceImports to match the catalog, and leaves unmanaged ones alone', async () => {
    api.apply({ apiVersion: 'multicluster.x-k8s.io/v1alpha1', kind: 'ServiceImport', metadata: { name: 'legacy', namespace: 'shop' }, spec: { type: 'ClusterSetIP', ports: [] } });
    const { provider } = await startProvider({ clustersetIps: ['10.96.0.53'] });
    provider.reportImports(imports(['us-west', 'eu-west']));
    await eventually(() => api.get('serviceimports', 'shop', 'cart')?.status && api.get('serviceimports', 'billing', 'ledger')?.status, 'ServiceImports created');
    const cart = api.get('serviceimports', 'shop', 'cart') as KubeObject;
    expect(cart.metadata.labels).toEqual({ 'app.kubernetes.io/managed-by': 'fedgate' });
    expect(cart.spec).toEqual({
      type: 'ClusterSetIP',
      ports: [
        { name: 'http', port: 8080, protocol: 'TCP', appProtocol: 'http' },
        { name: 'grpc', port: 9000, protocol: 'TCP', appProtocol: 'grpc' },
      ],
      ips: ['10.96.0.53'],
    });
    expect(cart.status).toEqual({ clusters: [{ cluster: 'eu-west' }, { cluster: 'us-west' }] });

    // Updated: one cluster fewer, another port number.
    provider.reportImports(imports(['us-west'], 8081));
    await eventually(() => (api.get('serviceimports', 'shop', 'cart')?.status as { clusters: unknown[] }).clusters.length === 1, 'status updated');
    await eventually(() => ((api.get('serviceimports', 'shop', 'cart')?.spec as { ports: Array<{ port: number }> }).ports[0]?.port === 8081), 'spec updated');

    // Unchanged reports write nothing.
    await new Promise((resolve) => setTimeout(resolve, 100));
    const writes = api.requests.filter((r) => r.resource === 'serviceimports' && r.method !== 'GET').length;
    provider.reportImports(imports(['us-west'], 8081));
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(api.requests.filter((r) => r.resource === 'serviceimports' && r.method !== 'GET').length).toBe(writes);

    // Gone from the catalog: deleted; the unmanaged one stays.
    provider.reportImports(imports(['us-west'], 8081).slice(1));
    await eventually(() => api.get('serviceimports', 'shop', 'cart') === undefined, 'ServiceImport deleted');
    expect(api.get('serviceimports', 'billing', 'ledger')).toBeDefined();
    expect(api.get('serviceimports', 'shop', 'legacy')).toBeDefined();

    // Someone deletes a managed one by hand: it comes back.
    api.remove('serviceimports', 'billing', 'ledger');
    await eventually(() => api.get('serviceimports', 'billing', 'ledger'), 'ServiceImport recreated');
  });

  it('does not take over a ServiceImport someone else created with the same name', async () => {
    api.apply({ apiVersion: 'multicluster.x-k8s.io/v1alpha1', kind: 'ServiceImport', metadata: { name: 'cart', namespace: 'shop' }, spec: { type: 'Headless', ports: [] } });
    const { provider } = await startProvider();
    provider.reportImports(imports(['us-west']));
    await eventually(() => api.get('serviceimports', 'billing', 'ledger')?.status, 'the other ServiceImport created');
    await eventually(() => api.requestsMatching({ method: 'POST', resource: 'serviceimports', namespace: 'shop' }).some((r) => r.status === 409), 'create refused');
    expect(api.get('serviceimports', 'shop', 'cart')?.spec).toEqual({ type: 'Headless', ports: [] });
  });
});
