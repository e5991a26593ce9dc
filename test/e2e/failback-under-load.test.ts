/**
 * Failback driven by health (issue 24): a peer gateway SIGKILLed and restarted at once, within the
 * health checks' window so that they never saw it down, is ejected by outlier detection for its
 * services; its first passing health check lifts that ejection, and in-flight calls it reset are
 * replayed on another cluster. Real processes: a controller, three gateways, HTTP and gRPC backends.
 */
import { jest } from '@jest/globals';
import { startHttpBackend } from '../../src/demo/sample-backends.js';
import { runLoad, type Sample } from '../../src/drill/load-generator.js';
import { startEchoServer } from '../../src/proto/echo-service.js';
import { eventually } from '../support/control-plane.js';
import { LocalFederation, type ClusterSpecYaml } from '../support/federation.js';
import { freePorts } from '../support/ports.js';
import { httpGet, waitForHttp } from '../support/processes.js';

jest.setTimeout(180_000);

const KILLS = Number(process.env.FEDGATE_TEST_KILLS ?? 10);

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined);
});

async function backends(names: string[]): Promise<Map<string, { http: number; grpc: number }>> {
  const ports = await freePorts(names.length * 2);
  const result = new Map<string, { http: number; grpc: number }>();
  for (const [i, name] of names.entries()) {
    const http = await startHttpBackend(name, '127.0.0.1', ports[i * 2] as number);
    const grpc = await startEchoServer(name, `127.0.0.1:${ports[i * 2 + 1] as number}`);
    cleanups.push(() => http.close(), () => grpc.close());
    result.set(name, { http: http.port, grpc: grpc.port });
  }
  return result;
}

function cluster(name: string, region: string, zone: string, ports?: { http: number; grpc: number }): ClusterSpecYaml {
  const exports: ClusterSpecYaml['exports'] = ports
    ? [
        {
          service: 'payments',
          ports: [
            { name: 'http', port: 8080, targetPort: ports.http, protocol: 'http' },
            { name: 'grpc', port: 9090, targetPort: ports.grpc, protocol: 'grpc' },
          ],
        },
      ]
    : [];
  return { name, region, zone, exports };
}

describe('failback after a fast gateway restart', () => {
  it('a gateway killed and restarted at once under 300 rps takes its traffic back within 2 s, with no failed HTTP request or unary gRPC call over 10 kills', async () => {
    const ports = await backends(['east', 'west']);
    // edge calls payments; east (same region and zone) is preferred, west takes over while east is down.
    const federation = await LocalFederation.create([cluster('edge', 'r1', 'a'), cluster('east', 'r1', 'a', ports.get('east')), cluster('west', 'r2', 'b', ports.get('west'))], { controller: { leaseTtl: '3s' } });
    cleanups.push(() => federation.stop());
    await federation.startAll();
    await eventually(async () => {
      const samples = await runLoad({ kind: 'http', address: federation.outbound('edge'), authority: 'payments.default.svc.clusterset.local:8080' }, { rps: 50, durationMs: 200 });
      return samples.every((s) => s.ok && s.servedBy === 'east');
    }, 'edge reaches east');

    const abort = new AbortController();
    const origin = performance.now();
    const completions: Array<{ kind: string; sample: Sample; doneAt: number }> = [];
    const record = (kind: string) => (sample: Sample) => completions.push({ kind, sample, doneAt: sample.at + sample.latencyMs });
    const http = runLoad({ kind: 'http', address: federation.outbound('edge'), authority: 'payments.default.svc.clusterset.local:8080' }, { rps: 300, durationMs: 120_000, signal: abort.signal, origin }, record('http'));
    const grpc = runLoad({ kind: 'grpc', address: federation.outbound('edge'), authority: 'payments.default.svc.clusterset.local:9090' }, { rps: 300, durationMs: 120_000, signal: abort.signal, origin }, record('grpc'));
    const backTimes: number[] = [];
    try {
      for (let kill = 0; kill < KILLS; kill++) {
        await federation.cluster('east').process?.kill('SIGKILL');
        const handle = federation.cluster('east');
        await federation.start('east');
        await waitForHttp(`http://127.0.0.1:${handle.ports.admin}/readyz`);
        const readyAt = performance.now() - origin;
        // Back: both protocols answered by east again, with requests sent after the restart.
        try {
          await eventually(
            () => ['http', 'grpc'].every((kind) => completions.some((c) => c.kind === kind && c.sample.at >= readyAt && c.sample.servedBy === 'east')),
            `traffic back to east after restart ${kill + 1}`,
            15_000,
          );
        } catch (error) {
          const config = (await httpGet(`${federation.adminUrl('edge')}/config`)).body;
          const recent = completions.filter((c) => c.sample.at >= readyAt);
          const served = Object.entries(recent.reduce<Record<string, number>>((acc, c) => ({ ...acc, [`${c.kind}:${c.sample.servedBy ?? c.sample.status}`]: (acc[`${c.kind}:${c.sample.servedBy ?? c.sample.status}`] ?? 0) + 1 }), {}));
          throw new Error(`${(error as Error).message}\nserved since the restart: ${JSON.stringify(served)}\nedge /config: ${config}`);
        }
        const back = Math.max(...['http', 'grpc'].map((kind) => Math.min(...completions.filter((c) => c.kind === kind && c.sample.at >= readyAt && c.sample.servedBy === 'east').map((c) => c.doneAt)))) - readyAt;
        backTimes.push(back);
      }
    } finally {
      abort.abort();
      await Promise.all([http, grpc]);
    }
    const failed = completions.filter((c) => !c.sample.ok);
    const byKind = (kind: string) => completions.filter((c) => c.kind === kind).length;
    console.log(
      `10 kill + restart cycles: ${byKind('http')} HTTP requests and ${byKind('grpc')} gRPC calls, ${failed.length} failed; traffic back after ${backTimes.map((t) => t.toFixed(0)).join(', ')} ms (max ${Math.max(...backTimes).toFixed(0)} ms)`,
    );
    expect(failed.map((c) => `${c.kind} ${c.sample.status} ${c.sample.error ?? ''}`)).toEqual([]);
    expect(Math.max(...backTimes)).toBeLessThanOrEqual(2000);
  });
});
