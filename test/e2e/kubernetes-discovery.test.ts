/**
 * Kubernetes discovery with real processes: us-east's gateway learns its exports from a fake
 * Kubernetes API server (ServiceExport + Service + EndpointSlice), the controller spreads them,
 * and eu-west's gateway calls them through its outbound listener. us-west (file discovery) also
 * exports payments, in the same region as eu-west but another zone, so eu-west prefers us-east
 * (same zone) and fails over to us-west.
 */
import { jest } from '@jest/globals';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startHttpBackend } from '../../src/demo/sample-backends.js';
import { eventually } from '../support/control-plane.js';
import { FakeKubeApi, conditionsOf, endpointSliceObject, serviceExportObject, serviceObject } from '../support/fake-kube-api.js';
import { LocalFederation } from '../support/federation.js';
import { http1 } from '../support/http-client.js';
import { freePorts } from '../support/ports.js';
import { httpGet } from '../support/processes.js';

jest.setTimeout(60_000);

const PAYMENTS = 'payments.default.svc.clusterset.local:8080';
const LEDGER = 'ledger.default.svc.clusterset.local:8080';

describe('Kubernetes discovery across a federation', () => {
  let api: FakeKubeApi;
  let dir: string;
  let federation: LocalFederation;
  const backends: Array<{ port: number; close(): Promise<void> }> = [];
  let eastPort: number;

  beforeAll(async () => {
    api = await FakeKubeApi.start();
    dir = mkdtempSync(join(tmpdir(), 'fedgate-e2e-k8s-'));
    const kubeconfig = api.writeKubeconfig(join(dir, 'kubeconfig'));
    const [east, west] = (await freePorts(2)) as [number, number];
    eastPort = east;
    backends.push(await startHttpBackend('us-east', '127.0.0.1', east));
    backends.push(await startHttpBackend('us-west', '127.0.0.1', west));
    federation = await LocalFederation.create(
      [
        { name: 'us-east', region: 'us-1', zone: 'a', discovery: { mode: 'kubernetes', kubernetes: { kubeconfig } } },
        { name: 'us-west', region: 'us-1', zone: 'b', exports: [{ service: 'payments', ports: [{ name: 'http', port: 8080, targetPort: west, protocol: 'http' }] }] },
        { name: 'eu-west', region: 'us-1', zone: 'a' },
      ],
      { controller: {} },
    );
    await federation.startAll();
  });

  afterAll(async () => {
    await federation?.stop();
    for (const backend of backends) await backend.close();
    await api?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  function setEndpoint(service: string, ready: boolean): void {
    api.apply(endpointSliceObject('default', service, `${service}-7f2k`, [{ address: '127.0.0.1', ready }], [{ name: 'http', port: eastPort }]));
  }

  async function controllerView(service: string): Promise<{ clusters: string[]; readyEndpoints: number; totalEndpoints: number } | undefined> {
    const status = await federation.admin().call.status({});
    return status.services.find((s) => s.namespace === 'default' && s.name === service);
  }

  /** Ready endpoints eu-west's gateway holds for an exporter: what its balancer weighs. */
  async function readyAtEuWest(service: string, exporter: string): Promise<number | undefined> {
    const config = JSON.parse((await httpGet(`${federation.adminUrl('eu-west')}/config`)).body) as { catalog: { services: Array<{ service: string; exporters: Array<{ cluster: string; ready: number }> }> } };
    return config.catalog.services.find((s) => s.service === `default/${service}`)?.exporters.find((e) => e.cluster === exporter)?.ready;
  }

  async function servedBy(authority: string): Promise<string | number> {
    const response = await http1(federation.outbound('eu-west'), authority);
    return response.status === 200 ? (JSON.parse(response.body) as { servedBy: string }).servedBy : response.status;
  }

  it('exports ServiceExports to the federation, and another cluster calls them', async () => {
    for (const service of ['payments', 'ledger']) {
      api.apply(serviceObject('default', service, [{ name: 'http', port: 8080, targetPort: 'web', appProtocol: 'http' }]));
      setEndpoint(service, true);
      api.apply(serviceExportObject('default', service, { 'fedgate.io/consumers': 'eu-west' }));
    }
    await eventually(async () => (await servedBy(PAYMENTS)) === 'us-east', 'eu-west reaches payments in us-east (same zone)', 20_000);
    await eventually(async () => (await servedBy(LEDGER)) === 'us-east', 'eu-west reaches ledger in us-east', 20_000);
    const response = await http1(federation.outbound('eu-west'), LEDGER);
    expect(JSON.parse(response.body)).toMatchObject({ servedBy: 'us-east', authority: LEDGER });
    expect(await controllerView('ledger')).toMatchObject({ clusters: ['us-east'], readyEndpoints: 1, totalEndpoints: 1 });
    expect((await controllerView('payments'))?.clusters.sort()).toEqual(['us-east', 'us-west']);
    // The controller's verdicts came back down and were written to the ServiceExports.
    await eventually(() => conditionsOf(api.get('serviceexports', 'default', 'ledger')).Ready?.status === 'True', 'Ready=True on the ServiceExport');
    expect(conditionsOf(api.get('serviceexports', 'default', 'ledger')).Valid).toMatchObject({ status: 'True', reason: 'Valid' });
    expect(conditionsOf(api.get('serviceexports', 'default', 'payments')).Conflict).toMatchObject({ status: 'False' });
    // The gateway mirrors the clusterset into its cluster as ServiceImports (from the catalog it holds).
    await eventually(() => ((api.get('serviceimports', 'default', 'payments')?.status as { clusters?: Array<{ cluster: string }> } | undefined)?.clusters?.length ?? 0) === 2, 'ServiceImport payments with both exporters');
    expect(api.get('serviceimports', 'default', 'payments')?.status).toEqual({ clusters: [{ cluster: 'us-east' }, { cluster: 'us-west' }] });
    expect((api.get('serviceimports', 'default', 'payments')?.spec as { ports: unknown[] }).ports).toEqual([{ name: 'http', port: 8080, protocol: 'TCP', appProtocol: 'http' }]);
  });

  it('reports unready endpoints to the controller, and traffic fails over to the other exporter', async () => {
    setEndpoint('ledger', false);
    setEndpoint('payments', false);
    await eventually(async () => (await controllerView('ledger'))?.readyEndpoints === 0, 'ledger ready count 0 at the controller');
    expect((await controllerView('ledger'))?.totalEndpoints).toBe(1);
    // A request eu-west still sends to us-east is retried to us-west, within the retry budget: 20
    // at once before the catalog update arrives would exhaust it. Wait for the update itself.
    await eventually(async () => (await readyAtEuWest('payments', 'us-east')) === 0, 'eu-west holds payments in us-east as unready', 20_000);
    await eventually(async () => (await servedBy(PAYMENTS)) === 'us-west', 'payments failed over to us-west');
    const served = await Promise.all(Array.from({ length: 20 }, () => servedBy(PAYMENTS)));
    expect(served).toEqual(Array.from({ length: 20 }, () => 'us-west'));
    // No cluster has a ready ledger endpoint.
    expect(await servedBy(LEDGER)).toBeGreaterThanOrEqual(500);

    setEndpoint('payments', true);
    setEndpoint('ledger', true);
    await eventually(async () => (await servedBy(PAYMENTS)) === 'us-east', 'payments back in us-east once ready');
    await eventually(async () => (await servedBy(LEDGER)) === 'us-east', 'ledger served again');
  });

  it('withdraws an export everywhere when its ServiceExport is deleted', async () => {
    api.remove('serviceexports', 'default', 'ledger');
    await eventually(async () => (await controllerView('ledger')) === undefined, 'ledger gone from the controller');
    await eventually(async () => (await servedBy(LEDGER)) === 404, 'eu-west gets 404 (no route) for ledger');
    // Ledger had consumers [eu-west]: us-east never imported it. Payments stays imported while us-west exports it.
    expect(api.get('serviceimports', 'default', 'ledger')).toBeUndefined();
    // The Service and its endpoints are untouched: only the export went.
    expect(api.get('services', 'default', 'ledger')).toBeDefined();

    api.remove('serviceexports', 'default', 'payments');
    await eventually(async () => (await controllerView('payments'))?.clusters.join() === 'us-west', 'payments exported by us-west only');
    await eventually(async () => (await servedBy(PAYMENTS)) === 'us-west', 'payments served by us-west');
    await eventually(() => ((api.get('serviceimports', 'default', 'payments')?.status as { clusters?: unknown[] } | undefined)?.clusters?.length ?? 0) === 1, 'ServiceImport payments down to us-west');
  });
});
