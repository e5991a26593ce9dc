/**
 * The DiscoveryProvider contract. The file provider and the Kubernetes provider (against the fake
 * API server, through the real client library) run this same suite; a behaviour only one of them
 * has is a bug in the contract or in that provider.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { clusterFromObject, loadClusterFile } from '../../src/config/load.js';
import { createSilentLogger } from '../../src/core/logger.js';
import { FileDiscoveryProvider } from '../../src/discovery/file-provider.js';
import { KubernetesDiscoveryProvider } from '../../src/discovery/kubernetes/kubernetes-provider.js';
import type { DiscoveryProvider, DiscoveryState, LocalExport } from '../../src/discovery/provider.js';
import type { Protocol } from '../../src/model/catalog.js';
import { eventually } from '../support/control-plane.js';
import { FakeKubeApi, conditionsOf, endpointSliceObject, serviceExportObject, serviceObject, type KubeObject } from '../support/fake-kube-api.js';

/** An export as a test declares it; each provider turns it into its own input (YAML, Kubernetes objects). */
interface ExportFixture {
  namespace: string;
  name: string;
  ports: Array<{ name: string; port: number; targetPort: number; protocol: Protocol }>;
  endpoints: Array<{ address: string; ready: boolean }>;
  consumers: string[];
}

interface Harness {
  provider: DiscoveryProvider;
  /** Declares an export, or replaces its declaration. */
  setExport(fixture: ExportFixture): Promise<void>;
  removeExport(namespace: string, name: string): Promise<void>;
  /** An edit that changes input but not the exports (a comment, an annotation nobody reads). */
  noopEdit(): Promise<void>;
  /** An edit that does not validate, to the export `fixture` names. */
  badEdit(fixture: ExportFixture): Promise<void>;
  /** Where the provider reports the refused edit (reload error, ServiceExport condition). */
  reportedProblem(fixture: ExportFixture): Promise<string | undefined>;
  stop(): Promise<void>;
}

interface HarnessFactory {
  name: string;
  create(initial: ExportFixture[]): Promise<Harness>;
}

const CLUSTER_NAME = 'us-east';

function clusterYaml(exports: readonly ExportFixture[], comment = ''): string {
  return [
    `# ${comment}`,
    'apiVersion: fedgate.io/v1alpha1',
    'kind: Cluster',
    'metadata:',
    `  name: ${CLUSTER_NAME}`,
    'spec:',
    '  region: us-1',
    '  zone: a',
    `  trustDomain: ${CLUSTER_NAME}.test.internal`,
    `  exports: ${JSON.stringify(exports.map((e) => ({ service: e.name, namespace: e.namespace, ports: e.ports, endpoints: e.endpoints, consumers: e.consumers })))}`,
    '',
  ].join('\n');
}

/** Starts a provider and waits until its first state is in place. */
function startIn(provider: DiscoveryProvider): { abort: AbortController; done: Promise<void> } {
  const abort = new AbortController();
  return { abort, done: provider.start(abort.signal) };
}

const fileFactory: HarnessFactory = {
  name: 'FileDiscoveryProvider',
  async create(initial) {
    const dir = mkdtempSync(join(tmpdir(), 'fedgate-contract-file-'));
    mkdirSync(join(dir, 'clusters'));
    const file = join(dir, 'clusters', `${CLUSTER_NAME}.yaml`);
    const declared = new Map(initial.map((e) => [`${e.namespace}/${e.name}`, e]));
    let edits = 0;
    const write = (text?: string): void => {
      edits += 1;
      writeFileSync(file, text ?? clusterYaml([...declared.values()], `edit ${edits}`));
    };
    write();
    const provider = new FileDiscoveryProvider(loadClusterFile(file, { env: {} }), createSilentLogger(), { pollIntervalMs: 50, env: {} });
    const { abort, done } = startIn(provider);
    // The watch is set up at the start of start(); give it that moment.
    await new Promise((resolve) => setTimeout(resolve, 50));
    return {
      provider,
      async setExport(fixture) {
        declared.set(`${fixture.namespace}/${fixture.name}`, fixture);
        write();
      },
      async removeExport(namespace, name) {
        declared.delete(`${namespace}/${name}`);
        write();
      },
      async noopEdit() {
        write();
      },
      async badEdit(fixture) {
        const broken = { ...fixture, ports: fixture.ports.map((p) => ({ ...p, port: 'not-a-port' as unknown as number })) };
        write(clusterYaml([...[...declared.values()].filter((e) => e.name !== fixture.name || e.namespace !== fixture.namespace), broken], `bad edit ${edits}`));
      },
      async reportedProblem() {
        return provider.lastError;
      },
      async stop() {
        abort.abort();
        await done;
        rmSync(dir, { recursive: true, force: true });
      },
    };
  },
};

const APP_PROTOCOL: Record<Protocol, string | undefined> = { http: 'http', http2: 'kubernetes.io/h2c', grpc: 'grpc', tcp: undefined };

const kubernetesFactory: HarnessFactory = {
  name: 'KubernetesDiscoveryProvider',
  async create(initial) {
    const api = await FakeKubeApi.start();
    const dir = mkdtempSync(join(tmpdir(), 'fedgate-contract-k8s-'));
    const kubeconfig = api.writeKubeconfig(join(dir, 'kubeconfig'));
    const apply = (fixture: ExportFixture): void => {
      api.apply(
        serviceObject(
          fixture.namespace,
          fixture.name,
          fixture.ports.map((p) => ({ name: p.name, port: p.port, targetPort: p.targetPort, ...(APP_PROTOCOL[p.protocol] ? { appProtocol: APP_PROTOCOL[p.protocol] } : {}) })),
        ),
      );
      api.apply(endpointSliceObject(fixture.namespace, fixture.name, `${fixture.name}-x1`, fixture.endpoints, fixture.ports.map((p) => ({ name: p.name, port: p.targetPort }))));
    };
    const exportObject = (fixture: ExportFixture): KubeObject => serviceExportObject(fixture.namespace, fixture.name, fixture.consumers.length > 0 ? { 'fedgate.io/consumers': fixture.consumers.join(',') } : undefined);
    for (const fixture of initial) {
      apply(fixture);
      api.apply(exportObject(fixture));
    }
    const cluster = clusterFromObject(
      { apiVersion: 'fedgate.io/v1alpha1', kind: 'Cluster', metadata: { name: CLUSTER_NAME }, spec: { region: 'us-1', zone: 'a', trustDomain: `${CLUSTER_NAME}.test.internal`, discovery: { mode: 'kubernetes', kubernetes: { kubeconfig } } } },
      join(dir, 'clusters', `${CLUSTER_NAME}.yaml`),
    );
    const provider = new KubernetesDiscoveryProvider(cluster, createSilentLogger(), { batchMs: 5, backoff: { initialMs: 50, maxMs: 200 }, env: {} });
    const { abort, done } = startIn(provider);
    await provider.whenSynced();
    return {
      provider,
      async setExport(fixture) {
        const existed = api.get('serviceexports', fixture.namespace, fixture.name) !== undefined;
        apply(fixture);
        // A new export: its Service and slice exist first, as when a team exports a running
        // service; the ServiceExport then brings it in whole.
        if (!existed) await new Promise((resolve) => setTimeout(resolve, 50));
        api.apply(exportObject(fixture));
      },
      async removeExport(namespace, name) {
        api.remove('serviceexports', namespace, name);
      },
      async noopEdit() {
        for (const service of api.list('services')) api.apply({ ...service, metadata: { ...service.metadata, annotations: { 'example.com/touched': String(Date.now()) } } });
      },
      async badEdit(fixture) {
        api.apply(serviceExportObject(fixture.namespace, fixture.name, { 'fedgate.io/consumers': 'not a cluster!' }));
      },
      async reportedProblem(fixture) {
        const valid = conditionsOf(api.get('serviceexports', fixture.namespace, fixture.name)).Valid;
        return valid?.status === 'False' ? valid.message : undefined;
      },
      async stop() {
        abort.abort();
        await done;
        await api.close();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  },
};

function fixture(name: string, overrides: Partial<ExportFixture> = {}): ExportFixture {
  return {
    namespace: 'shop',
    name,
    ports: [
      { name: 'http', port: 8080, targetPort: 9080, protocol: 'http' },
      { name: 'grpc', port: 9000, targetPort: 9001, protocol: 'grpc' },
    ],
    endpoints: [
      { address: '10.1.0.1', ready: true },
      { address: '10.1.0.2', ready: true },
    ],
    consumers: ['eu-west'],
    ...overrides,
  };
}

function withoutCreatedAt(e: LocalExport | undefined): Omit<LocalExport, 'createdAt'> | undefined {
  if (!e) return undefined;
  const { createdAt: _createdAt, ...rest } = e;
  return rest;
}

function expected(f: ExportFixture): Omit<LocalExport, 'createdAt'> {
  return { namespace: f.namespace, name: f.name, ports: f.ports, endpoints: f.endpoints, consumers: f.consumers };
}

const settle = (ms = 300): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

describe.each([fileFactory, kubernetesFactory])('DiscoveryProvider contract: $name', (factory) => {
  let harness: Harness | undefined;
  let changes: DiscoveryState[];

  async function create(initial: ExportFixture[] = []): Promise<Harness> {
    harness = await factory.create(initial);
    changes = [];
    harness.provider.onChange((state) => changes.push(state));
    return harness;
  }

  afterEach(async () => {
    await harness?.stop();
    harness = undefined;
  });

  it('has the initial exports in its first state', async () => {
    const h = await create([fixture('cart')]);
    await eventually(() => h.provider.current().exports.has('shop/cart'), 'initial export');
    expect(withoutCreatedAt(h.provider.current().exports.get('shop/cart'))).toEqual(expected(fixture('cart')));
  });

  it('adds an export with its ports, protocols, endpoints and consumers', async () => {
    const h = await create([fixture('cart')]);
    const orders = fixture('orders', {
      ports: [
        { name: 'http2', port: 8443, targetPort: 18443, protocol: 'http2' },
        { name: 'db', port: 5432, targetPort: 15432, protocol: 'tcp' },
      ],
      endpoints: [{ address: '10.2.0.1', ready: true }],
      consumers: ['eu-west', 'us-west'],
    });
    await h.setExport(orders);
    const added = await eventually(() => h.provider.current().exports.get('shop/orders'), 'orders exported');
    expect(withoutCreatedAt(added)).toEqual(expected(orders));
    expect(typeof added.createdAt).toBe('number');
    expect(h.provider.current().exports.size).toBe(2);
  });

  it('changes the ready count when endpoint readiness changes', async () => {
    const h = await create([fixture('cart')]);
    await h.setExport(fixture('cart', { endpoints: [{ address: '10.1.0.1', ready: true }, { address: '10.1.0.2', ready: false }] }));
    await eventually(() => h.provider.current().exports.get('shop/cart')?.endpoints.filter((e) => e.ready).length === 1, 'one ready endpoint');
    expect(h.provider.current().exports.get('shop/cart')?.endpoints).toHaveLength(2);
    await h.setExport(fixture('cart', { endpoints: [{ address: '10.1.0.1', ready: false }, { address: '10.1.0.2', ready: false }] }));
    await eventually(() => h.provider.current().exports.get('shop/cart')?.endpoints.every((e) => !e.ready), 'no ready endpoint');
  });

  it('removes an export', async () => {
    const h = await create([fixture('cart'), fixture('orders')]);
    await h.removeExport('shop', 'cart');
    await eventually(() => !h.provider.current().exports.has('shop/cart'), 'cart gone');
    expect([...h.provider.current().exports.keys()]).toEqual(['shop/orders']);
  });

  it('calls onChange once per real change, with the new state, and not for edits that change nothing', async () => {
    const h = await create([fixture('cart')]);
    await settle();
    expect(changes).toHaveLength(0);
    await h.setExport(fixture('orders'));
    await eventually(() => h.provider.current().exports.has('shop/orders'), 'orders added');
    await settle();
    expect(changes).toHaveLength(1);
    expect(changes[0]).toBe(h.provider.current());
    await h.noopEdit();
    await settle();
    expect(changes).toHaveLength(1);
    await h.setExport(fixture('orders', { endpoints: [{ address: '10.1.0.1', ready: false }, { address: '10.1.0.2', ready: true }] }));
    await eventually(() => h.provider.current().exports.get('shop/orders')?.endpoints[0]?.ready === false, 'readiness changed');
    await settle();
    expect(changes).toHaveLength(2);
    await h.removeExport('shop', 'orders');
    await eventually(() => !h.provider.current().exports.has('shop/orders'), 'orders removed');
    await settle();
    expect(changes).toHaveLength(3);
    expect([...(changes[2] as DiscoveryState).exports.keys()]).toEqual(['shop/cart']);
  });

  it('reports a bad edit and keeps the last good state; the next good edit applies', async () => {
    const h = await create([fixture('cart')]);
    const good = h.provider.current().exports.get('shop/cart');
    await h.badEdit(fixture('cart'));
    const problem = await eventually(() => h.reportedProblem(fixture('cart')), 'the bad edit is reported');
    expect(problem).toMatch(/port|consumers/);
    expect(h.provider.current().exports.get('shop/cart')).toEqual(good);
    expect(changes).toHaveLength(0);
    await h.setExport(fixture('cart', { consumers: ['us-west'] }));
    await eventually(() => h.provider.current().exports.get('shop/cart')?.consumers.join() === 'us-west', 'good edit applied');
    await eventually(async () => (await h.reportedProblem(fixture('cart'))) === undefined, 'problem cleared');
  });
});
