/**
 * Kubernetes discovery at scale: SERVICES Services, EndpointSlices and ServiceExports (default
 * 5,000) in the fake Kubernetes API server (in this process, speaking the real list/watch protocol
 * over HTTP). The controller and the us-east gateway (Kubernetes discovery) run as processes; the
 * second gateway, eu-west, is the real join + Sync client and catalog replica in this process, so
 * the moment a change reaches its catalog is taken from its change callback, not from polling.
 * Measures how long until every export is in us-east's discovery, in eu-west's catalog, and
 * written back as Ready on the ServiceExports; how long mass deletes and creates (watch events,
 * not a list) take to reach eu-west; and the latency of one endpoint change.
 *
 *   npm run bench:discovery                # 5,000 services
 *   SERVICES=1000 CHANGES=10 npm run bench:discovery
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { clusterFromObject } from '../src/config/load.js';
import { createSilentLogger } from '../src/core/logger.js';
import { KubernetesDiscoveryProvider } from '../src/discovery/kubernetes/kubernetes-provider.js';
import type { CatalogData } from '../src/gateway/control/catalog-replica.js';
import { joinSimulatedGateway, type SimulatedGateway } from '../test/support/control-plane.js';
import { FakeKubeApi, conditionsOf, endpointSliceObject, serviceExportObject, serviceObject } from '../test/support/fake-kube-api.js';
import { LocalFederation } from '../test/support/federation.js';
import { httpGet } from '../test/support/processes.js';

const SERVICES = Number(process.env.SERVICES ?? 5000);
const CHANGES = Number(process.env.CHANGES ?? 20);
const NAMESPACES = 10;

interface GatewayConfigView {
  localExports: Array<{ service: string; ready: number }>;
}

function nameOf(i: number): { namespace: string; name: string } {
  return { namespace: `team-${i % NAMESPACES}`, name: `svc-${String(i).padStart(5, '0')}` };
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] as number;
}

function slice(i: number, ready: boolean): ReturnType<typeof endpointSliceObject> {
  const { namespace, name } = nameOf(i);
  return endpointSliceObject(namespace, name, `${name}-abcde`, [{ address: `10.${(i >> 8) & 255}.${i & 255}.1`, ready }, { address: `10.${(i >> 8) & 255}.${i & 255}.2`, ready: true }], [{ name: 'http', port: 8080 }]);
}

async function until<T>(check: () => Promise<T | undefined | false> | T | undefined | false, what: string, timeoutMs = 600_000, intervalMs = 25): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

async function configOf(federation: LocalFederation, cluster: string): Promise<GatewayConfigView> {
  return JSON.parse((await httpGet(`${federation.adminUrl(cluster)}/config`, 30_000)).body) as GatewayConfigView;
}

function exportedBy(data: CatalogData, cluster: string): number {
  let count = 0;
  for (const service of data.services.values()) if (service.exporters.some((e) => e.cluster === cluster)) count += 1;
  return count;
}

/** Resolves with the time (performance.now()) at which the gateway's catalog first satisfies `check`. */
function whenCatalog(gateway: SimulatedGateway, check: (data: CatalogData) => boolean): Promise<number> {
  if (check(gateway.catalog.data)) return Promise.resolve(performance.now());
  return new Promise((resolve) => {
    const off = gateway.catalog.onChange((data) => {
      if (!check(data)) return;
      off();
      resolve(performance.now());
    });
  });
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(2)} s`;
}

async function main(): Promise<void> {
  const api = await FakeKubeApi.start({ bookmarkIntervalMs: 10_000 });
  const dir = mkdtempSync(join(tmpdir(), 'fedgate-bench-discovery-'));
  const kubeconfig = api.writeKubeconfig(join(dir, 'kubeconfig'));
  const rows: Array<[string, string]> = [];
  let federation: LocalFederation | undefined;
  let euWest: SimulatedGateway | undefined;
  try {
    console.log(`# fedgate bench:discovery — node ${process.version}, ${cpus().length}× ${cpus()[0]?.model ?? 'cpu'}`);
    console.log(`# ${SERVICES} Services + EndpointSlices (2 endpoints each) + ServiceExports in ${NAMESPACES} namespaces; fake API server and eu-west (join + Sync client, catalog replica) in the bench process; controller and us-east gateway as processes`);
    for (let i = 0; i < SERVICES; i++) {
      const { namespace, name } = nameOf(i);
      api.apply(serviceObject(namespace, name, [{ name: 'http', port: 80, targetPort: 'web', appProtocol: 'http' }]));
      api.apply(slice(i, true));
      api.apply(serviceExportObject(namespace, name));
    }

    // 1. The provider alone, in this process: list + watch of the three resources → first state.
    {
      const cluster = clusterFromObject(
        { apiVersion: 'fedgate.io/v1alpha1', kind: 'Cluster', metadata: { name: 'probe' }, spec: { region: 'r', zone: 'z', trustDomain: 'probe.test.internal', discovery: { mode: 'kubernetes', kubernetes: { kubeconfig } } } },
        join(dir, 'clusters', 'probe.yaml'),
      );
      const provider = new KubernetesDiscoveryProvider(cluster, createSilentLogger(), { env: {} });
      const abort = new AbortController();
      const start = performance.now();
      const done = provider.start(abort.signal);
      await provider.whenSynced();
      const ms = performance.now() - start;
      if (provider.current().exports.size !== SERVICES) throw new Error(`provider synced ${provider.current().exports.size} exports, expected ${SERVICES}`);
      rows.push([`provider alone (in-process): start → ${SERVICES} exports listed, translated and published`, `${ms.toFixed(0)} ms`]);
      // Let its status writes finish before the gateway's own start, then stop it.
      await until(() => api.list('serviceexports').every((o) => conditionsOf(o).Valid), 'probe status written');
      abort.abort();
      await done;
    }

    federation = await LocalFederation.create([{ name: 'us-east', region: 'us-1', zone: 'a', discovery: { mode: 'kubernetes', kubernetes: { kubeconfig } } }], { controller: {} });
    const env = { FEDGATE_LOG_LEVEL: 'warn' };
    await federation.startController(env);
    euWest = await joinSimulatedGateway(federation.admin(), dir, 'eu-west');
    const gateway = euWest;

    // 2. Cold start of the us-east gateway with everything already in the API server.
    const writesBefore = api.requestsMatching({ method: 'PATCH', resource: 'serviceexports', subresource: 'status' }).length;
    const visible = whenCatalog(gateway, (data) => exportedBy(data, 'us-east') === SERVICES);
    const spawnedAt = performance.now();
    await federation.start('us-east', env);
    const readyAt = performance.now();
    const fed = federation;
    await until(async () => (await configOf(fed, 'us-east')).localExports.length === SERVICES, 'us-east discovery', 600_000, 50);
    const discoveredAt = performance.now();
    const visibleAt = await visible;
    await until(() => api.list('serviceexports').every((o) => conditionsOf(o).Ready?.status === 'True'), 'Ready=True on every ServiceExport', 600_000, 100);
    const acceptedAt = performance.now();
    const coldWrites = api.requestsMatching({ method: 'PATCH', resource: 'serviceexports', subresource: 'status' }).length - writesBefore;
    rows.push(['us-east gateway process: spawn → /readyz', `${(readyAt - spawnedAt).toFixed(0)} ms`]);
    rows.push([`us-east gateway process: spawn → ${SERVICES} exports in its discovery (/config, polled every 50 ms)`, seconds(discoveredAt - spawnedAt)]);
    rows.push([`us-east gateway process: spawn → ${SERVICES} services in eu-west's catalog`, seconds(visibleAt - spawnedAt)]);
    rows.push([`us-east gateway process: spawn → Ready=True written on all ${SERVICES} ServiceExports (${coldWrites} status patches)`, seconds(acceptedAt - spawnedAt)]);

    // 3. Mass delete and re-create of the ServiceExports: watch events, not a list.
    const gone = whenCatalog(gateway, (data) => exportedBy(data, 'us-east') === 0);
    let start = performance.now();
    for (let i = 0; i < SERVICES; i++) {
      const { namespace, name } = nameOf(i);
      api.remove('serviceexports', namespace, name);
    }
    rows.push([`${SERVICES} ServiceExports deleted → gone from eu-west's catalog`, seconds((await gone) - start)]);
    const back = whenCatalog(gateway, (data) => exportedBy(data, 'us-east') === SERVICES);
    start = performance.now();
    for (let i = 0; i < SERVICES; i++) {
      const { namespace, name } = nameOf(i);
      api.apply(serviceExportObject(namespace, name));
    }
    rows.push([`${SERVICES} ServiceExports created → all in eu-west's catalog`, seconds((await back) - start)]);
    await until(() => api.list('serviceexports').every((o) => conditionsOf(o).Ready?.status === 'True'), 'Ready=True again', 600_000, 100);

    // 4. One endpoint readiness change at a time → eu-west's catalog.
    const latencies: number[] = [];
    for (let k = 0; k < CHANGES; k++) {
      const i = (k * 97) % SERVICES;
      const key = `${nameOf(i).namespace}/${nameOf(i).name}`;
      // Every slice has 2 ready endpoints now; each change takes one of them out.
      const ready = 1;
      const seen = whenCatalog(gateway, (data) => data.services.get(key)?.exporters.find((e) => e.cluster === 'us-east')?.readyEndpoints === ready);
      const t0 = performance.now();
      api.apply(slice(i, false));
      latencies.push((await seen) - t0);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    latencies.sort((a, b) => a - b);
    rows.push([`one EndpointSlice readiness change → eu-west's catalog (p50 / p99 / max of ${CHANGES})`, `${percentile(latencies, 50).toFixed(1)} / ${percentile(latencies, 99).toFixed(1)} / ${(latencies[latencies.length - 1] ?? NaN).toFixed(1)} ms`]);

    console.log('');
    console.log('| measure | time |');
    console.log('| --- | ---: |');
    for (const [measure, value] of rows) console.log(`| ${measure} | ${value} |`);
  } finally {
    euWest?.stop();
    await federation?.stop();
    await api.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().then(
  // Leave through the event loop so piped stdout is flushed; a lingering gRPC handle gets a second.
  () => setTimeout(() => process.exit(0), 1000).unref(),
  (error: unknown) => {
    console.error(error);
    process.exitCode = 1;
    setTimeout(() => process.exit(1), 1000).unref();
  },
);
