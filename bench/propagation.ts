/**
 * Catalog propagation: N simulated gateways (the real join + sync client) on one controller
 * process backed by a real redis-server. Measures how long one export change takes to be applied
 * by every gateway, and how long a new gateway needs for its full snapshot.
 *
 *   npm run bench:propagation                      # 50 clusters × 1,000 services, 40 changes
 *   CLUSTERS=10 SERVICES=200 CHANGES=20 npm run bench:propagation
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { connectAdmin, readAdminCredentials } from '../src/cli/controller-api.js';
import type { ExportSpec } from '../src/proto/gen/fedgate.js';
import { eventually, exportSpec, joinSimulatedGateway, writeFederationYaml, type SimulatedGateway } from '../test/support/control-plane.js';
import { freePorts } from '../test/support/ports.js';
import { FedgateProcess, waitForHttp } from '../test/support/processes.js';
import { RedisProcess } from '../test/support/redis-server.js';

const CLUSTERS = Number(process.env.CLUSTERS ?? 50);
const SERVICES = Number(process.env.SERVICES ?? 1000);
const CHANGES = Number(process.env.CHANGES ?? 40);

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] as number;
}

function rssMiB(pid: number | undefined): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
  return Math.round(kb / 1024);
}

function exportsOf(ready: number): ExportSpec[] {
  return Array.from({ length: SERVICES }, (_, i) => exportSpec(`svc-${i}`, { readyEndpoints: ready, totalEndpoints: 1000, createdAtMs: 1 }));
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'fedgate-bench-propagation-'));
  const redis = await RedisProcess.start();
  const [api, joinPort, admin] = (await freePorts(3)) as [number, number, number];
  const config = writeFederationYaml({ dir, name: 'controller', pkiDir: join(dir, 'controller-pki'), ports: { api, join: joinPort, admin }, store: { url: redis.url } });
  const controller = FedgateProcess.start('controller', ['controller', '--config', config], { FEDGATE_LOG_LEVEL: 'warn' }, (process.env.CONTROLLER_NODE_ARGS ?? '').split(' ').filter(Boolean));
  const gateways: SimulatedGateway[] = [];
  try {
    await waitForHttp(`http://127.0.0.1:${admin}/readyz`, 200, 20_000, controller);
    const adminConnection = connectAdmin(`127.0.0.1:${api}`, readAdminCredentials(join(dir, 'controller-pki', 'admin')));
    console.log(`# fedgate bench:propagation — node ${process.version}, ${cpus().length}× ${cpus()[0]?.model ?? 'cpu'}`);
    console.log(`# ${CLUSTERS} clusters × ${SERVICES} services (same names in every cluster), controller + redis-server 7 as separate processes`);
    const setupStart = Date.now();
    for (let c = 0; c < CLUSTERS; c++) {
      gateways.push(await joinSimulatedGateway(adminConnection, dir, `c${String(c).padStart(3, '0')}`, { exports: exportsOf(5) }));
    }
    await eventually(
      () => gateways.every((g) => g.catalog.data.services.size === SERVICES && g.catalog.data.services.get('default/svc-0')?.exporters.length === CLUSTERS),
      'every gateway sees every export',
      600_000,
    );
    console.log(`converged: ${CLUSTERS} gateways hold ${SERVICES} services × ${CLUSTERS} exporters after ${((Date.now() - setupStart) / 1000).toFixed(1)} s of joining`);

    // A new gateway: time from stream open to its applied snapshot.
    const snapshotStart = process.hrtime.bigint();
    const newcomer = await joinSimulatedGateway(adminConnection, dir, 'newcomer');
    await eventually(() => newcomer.catalog.data.services.size === SERVICES && newcomer.catalog.data.services.get(`default/svc-${SERVICES - 1}`)?.exporters.length === CLUSTERS, 'newcomer snapshot', 120_000);
    const snapshotMs = Number(process.hrtime.bigint() - snapshotStart) / 1e6;
    const sizeBytes = JSON.stringify([...newcomer.catalog.data.services.values()]).length;
    newcomer.stop();

    // One export change at a time; every gateway records when it applied it.
    const allApplied: number[] = [];
    const perGateway: number[] = [];
    for (let k = 0; k < CHANGES; k++) {
      const source = gateways[k % CLUSTERS] as SimulatedGateway;
      const service = `default/svc-${(k * 37) % SERVICES}`;
      const ready = 6 + k;
      const start = process.hrtime.bigint();
      const pending = new Set(gateways);
      const times: number[] = [];
      const done = new Promise<void>((resolve) => {
        const offs = gateways.map((g) =>
          g.catalog.onChange((data) => {
            if (!pending.has(g)) return;
            if (data.services.get(service)?.exporters.find((e) => e.cluster === source.name)?.readyEndpoints === ready) {
              pending.delete(g);
              times.push(Number(process.hrtime.bigint() - start) / 1e6);
              if (pending.size === 0) {
                offs.forEach((off) => off());
                resolve();
              }
            }
          }),
        );
      });
      source.exports.set(source.exports.current().map((spec) => (`${spec.namespace}/${spec.name}` === service ? { ...spec, readyEndpoints: ready } : spec)));
      await done;
      allApplied.push(Math.max(...times));
      perGateway.push(...times);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    allApplied.sort((a, b) => a - b);
    perGateway.sort((a, b) => a - b);
    const rss = rssMiB(controller.pid);
    console.log('');
    console.log('| measure | p50 | p99 | max |');
    console.log('| --- | ---: | ---: | ---: |');
    console.log(`| one export change → applied by all ${CLUSTERS} gateways (ms, ${CHANGES} changes) | ${percentile(allApplied, 50).toFixed(1)} | ${percentile(allApplied, 99).toFixed(1)} | ${allApplied[allApplied.length - 1]?.toFixed(1)} |`);
    console.log(`| one export change → applied by one gateway (ms, ${perGateway.length} samples) | ${percentile(perGateway, 50).toFixed(1)} | ${percentile(perGateway, 99).toFixed(1)} | ${perGateway[perGateway.length - 1]?.toFixed(1)} |`);
    console.log('');
    console.log(`full snapshot for a new gateway (join + stream + apply ${SERVICES} services × ${CLUSTERS} exporters, ~${Math.round(sizeBytes / 1024)} KiB as JSON): ${snapshotMs.toFixed(0)} ms`);
    console.log(`controller RSS: ${rss} MiB`);
    adminConnection.close();
  } finally {
    for (const g of gateways) g.stop();
    await controller.stop();
    await redis.stop();
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
