/**
 * Failover with real gateway processes: a local backend marked unready or crashing, a remote
 * gateway SIGKILLed under load, failback, proportional spill, and drain through the controller.
 */
import { jest } from '@jest/globals';
import { readFileSync, writeFileSync } from 'node:fs';
import { startHttpBackend } from '../../src/demo/sample-backends.js';
import { runLoad, type Sample } from '../../src/drill/load-generator.js';
import { LocalFederation } from '../support/federation.js';
import { http1 } from '../support/http-client.js';
import { freePorts } from '../support/ports.js';
import { eventually } from '../support/control-plane.js';
import { httpGet } from '../support/processes.js';

jest.setTimeout(90_000);

const AUTHORITY = 'payments.default.svc.clusterset.local:8080';

function share(samples: Sample[], cluster: string): number {
  return samples.filter((s) => s.ok && s.servedBy === cluster).length / Math.max(1, samples.length);
}

async function healthOf(federation: LocalFederation, from: string): Promise<Record<string, { alive: boolean }>> {
  return (JSON.parse((await httpGet(`${federation.adminUrl(from)}/config`)).body) as { health: Record<string, { alive: boolean }> }).health;
}

describe('failover between clusters', () => {
  let federation: LocalFederation;
  const backends: Array<{ close(): Promise<void> }> = [];
  let ports: number[];

  beforeAll(async () => {
    ports = await freePorts(3);
    backends.push(await startHttpBackend('eu-north', '127.0.0.1', ports[0] as number));
    backends.push(await startHttpBackend('us-east', '127.0.0.1', ports[1] as number));
    backends.push(await startHttpBackend('eu-central', '127.0.0.1', ports[2] as number));
    // eu-central calls payments; eu-north (same region, other zone) is its best remote priority,
    // us-east (another region) the next. eu-central also exports payments itself (priority 0).
    federation = await LocalFederation.create([
      { name: 'eu-central', region: 'eu-1', zone: 'a', exports: [{ service: 'payments', ports: [{ name: 'http', port: 8080, targetPort: ports[2] as number, protocol: 'http' }] }] },
      { name: 'eu-north', region: 'eu-1', zone: 'b', exports: [{ service: 'payments', ports: [{ name: 'http', port: 8080, targetPort: ports[0] as number, protocol: 'http' }] }] },
      { name: 'us-east', region: 'us-1', zone: 'a', exports: [{ service: 'payments', ports: [{ name: 'http', port: 8080, targetPort: ports[1] as number, protocol: 'http' }] }] },
    ]);
    await federation.startAll();
  });

  afterAll(async () => {
    await federation?.stop();
    for (const b of backends) await b.close();
  });

  function setLocalEndpoints(endpoints: unknown): void {
    const file = federation.cluster('eu-central').file;
    const text = readFileSync(file, 'utf8').replace(/"endpoints":\[[^\]]*\]/, `"endpoints":${JSON.stringify(endpoints)}`);
    writeFileSync(file, text);
  }

  it('serves locally while the local export is ready, and moves to the next priority when it is not', async () => {
    const before = await runLoad({ kind: 'http', address: federation.outbound('eu-central'), authority: AUTHORITY }, { rps: 200, durationMs: 1000 });
    expect(share(before, 'eu-central')).toBe(1);
    setLocalEndpoints([{ address: '127.0.0.1', ready: false }]);
    await eventually(async () => JSON.parse((await http1(federation.outbound('eu-central'), AUTHORITY)).body).servedBy === 'eu-north', 'traffic moved to eu-north');
    const after = await runLoad({ kind: 'http', address: federation.outbound('eu-central'), authority: AUTHORITY }, { rps: 200, durationMs: 1000 });
    expect(after.filter((s) => !s.ok)).toEqual([]);
    expect(share(after, 'eu-north')).toBe(1);
  });

  it('spills proportionally when the best priority is half ready (overprovisioning 1.4: 70 / 30)', async () => {
    // eu-central: 10 endpoints, 5 ready → health 50 % × 1.4 = 70 % stays local, 30 % spills to eu-north.
    setLocalEndpoints(Array.from({ length: 10 }, (_, i) => ({ address: '127.0.0.1', ready: i < 5 })));
    await eventually(async () => JSON.parse((await httpGet(`${federation.adminUrl('eu-central')}/config`)).body).localExports[0].ready === 5, 'reload seen');
    const samples = await runLoad({ kind: 'http', address: federation.outbound('eu-central'), authority: AUTHORITY }, { rps: 500, durationMs: 4000 });
    const local = share(samples, 'eu-central');
    const north = share(samples, 'eu-north');
    console.log(`partial degradation split over ${samples.length} requests: eu-central ${(local * 100).toFixed(1)} %, eu-north ${(north * 100).toFixed(1)} %`);
    expect(samples.filter((s) => !s.ok)).toEqual([]);
    expect(local).toBeGreaterThan(0.65);
    expect(local).toBeLessThan(0.75);
    expect(north).toBeGreaterThan(0.25);
    expect(share(samples, 'us-east')).toBe(0);
  });

  it('retries onto another cluster when the local backend crashes before its readiness changes', async () => {
    setLocalEndpoints([{ address: '127.0.0.1', ready: true }]);
    await eventually(async () => JSON.parse((await httpGet(`${federation.adminUrl('eu-central')}/config`)).body).localExports[0].total === 1, 'reload seen');
    await backends[2]?.close();
    const samples = await runLoad({ kind: 'http', address: federation.outbound('eu-central'), authority: AUTHORITY }, { rps: 200, durationMs: 1500 });
    expect(samples.filter((s) => !s.ok)).toEqual([]);
    expect(share(samples, 'eu-north')).toBe(1);
    backends[2] = await startHttpBackend('eu-central', '127.0.0.1', ports[2] as number);
    setLocalEndpoints([{ address: '127.0.0.1', ready: false }]);
  });

  it('loses no idempotent request when a remote gateway is SIGKILLed, then fails back without flapping', async () => {
    setLocalEndpoints([{ address: '127.0.0.1', ready: false }]);
    await eventually(async () => JSON.parse((await http1(federation.outbound('eu-central'), AUTHORITY)).body).servedBy === 'eu-north', 'eu-north serves');
    let killedAt = 0;
    const load = runLoad({ kind: 'http', address: federation.outbound('eu-central'), authority: AUTHORITY }, { rps: 200, durationMs: 4000 });
    await new Promise((resolve) => setTimeout(resolve, 1000));
    killedAt = performance.now();
    const killedWall = Date.now();
    await federation.cluster('eu-north').process?.kill('SIGKILL');
    let unhealthyAfter = Number.NaN;
    void eventually(async () => (await healthOf(federation, 'eu-central'))['eu-north']?.alive === false, 'eu-north unhealthy', 5000).then(() => {
      unhealthyAfter = performance.now() - killedAt;
    });
    const samples = await load;
    const failed = samples.filter((s) => !s.ok);
    const killedOffset = killedWall - (Date.now() - 4000);
    const lastNorth = Math.max(...samples.filter((s) => s.servedBy === 'eu-north').map((s) => s.at));
    const firstEast = Math.min(...samples.filter((s) => s.servedBy === 'us-east').map((s) => s.at));
    const metrics = (await httpGet(`${federation.adminUrl('eu-central')}/metrics`)).body;
    const failoverSeconds = /fedgate_failover_seconds_sum\{[^}]*destination_cluster="eu-north"[^}]*\} ([\d.e-]+)/.exec(metrics)?.[1];
    console.log(
      `SIGKILL of eu-north: ${samples.length} requests, ${failed.length} failed; last answer from eu-north at ${lastNorth.toFixed(0)} ms, first from us-east at ${firstEast.toFixed(0)} ms (kill at ≈${killedOffset.toFixed(0)} ms); ` +
        `eu-north marked unhealthy ${unhealthyAfter.toFixed(0)} ms after the kill; fedgate_failover_seconds ${failoverSeconds}`,
    );
    expect(failed).toEqual([]);
    expect(share(samples, 'us-east')).toBeGreaterThan(0.3);

    // Failback: eu-north returns; traffic goes back to it and stays there.
    await federation.start('eu-north');
    await eventually(async () => (await healthOf(federation, 'eu-central'))['eu-north']?.alive === true, 'eu-north healthy again', 10_000);
    const back = await runLoad({ kind: 'http', address: federation.outbound('eu-central'), authority: AUTHORITY }, { rps: 200, durationMs: 2000 });
    expect(back.filter((s) => !s.ok)).toEqual([]);
    expect(share(back, 'eu-north')).toBe(1);
    const flaps = /fedgate_failovers_total\{[^}]*destination_cluster="eu-north"[^}]*\} (\d+)/.exec((await httpGet(`${federation.adminUrl('eu-central')}/metrics`)).body)?.[1];
    expect(Number(flaps)).toBe(1);
  });
});

describe('drain through the controller', () => {
  let federation: LocalFederation;
  const backends: Array<{ close(): Promise<void> }> = [];

  beforeAll(async () => {
    const [east, west] = (await freePorts(2)) as [number, number];
    backends.push(await startHttpBackend('us-east', '127.0.0.1', east));
    backends.push(await startHttpBackend('us-west', '127.0.0.1', west));
    federation = await LocalFederation.create(
      [
        { name: 'us-east', region: 'us-east-1', zone: 'a', exports: [{ service: 'payments', ports: [{ name: 'http', port: 8080, targetPort: east, protocol: 'http' }] }] },
        { name: 'us-west', region: 'us-west-2', zone: 'a', exports: [{ service: 'payments', ports: [{ name: 'http', port: 8080, targetPort: west, protocol: 'http' }] }] },
        { name: 'eu-west', region: 'eu-west-1', zone: 'a' },
      ],
      { controller: {} },
    );
    await federation.startAll();
  });

  afterAll(async () => {
    await federation?.stop();
    for (const b of backends) await b.close();
  });

  it('takes no new requests to a draining cluster and lets the ones in flight finish', async () => {
    await eventually(async () => {
      const config = JSON.parse((await httpGet(`${federation.adminUrl('eu-west')}/config`)).body) as { catalog: { services: Array<{ exporters: unknown[] }> } };
      return config.catalog.services[0]?.exporters.length === 2;
    }, 'eu-west knows both exporters');
    // Slow requests in flight when the drain starts: traffic is split between us-east and us-west,
    // so of eight, some are on us-east (1 − 2⁻⁸ likely); every one of them must still complete.
    const inFlight = Array.from({ length: 8 }, () => http1(federation.outbound('eu-west'), AUTHORITY, { path: '/?delay=1500' }));
    await new Promise((resolve) => setTimeout(resolve, 200));
    await federation.admin().call.drainCluster({ cluster: 'us-east', reason: 'test drain' });
    await eventually(async () => {
      const config = JSON.parse((await httpGet(`${federation.adminUrl('eu-west')}/config`)).body) as { catalog: { clusters: Array<{ name: string; state: string }> } };
      return config.catalog.clusters.find((c) => c.name === 'us-east')?.state === 'draining';
    }, 'eu-west sees us-east draining');
    const during = await runLoad({ kind: 'http', address: federation.outbound('eu-west'), authority: AUTHORITY }, { rps: 200, durationMs: 1500 });
    expect(during.filter((s) => !s.ok)).toEqual([]);
    expect(share(during, 'us-west')).toBe(1);
    const finished = await Promise.all(inFlight);
    expect(finished.map((r) => r.status)).toEqual(Array(8).fill(200));
    expect(finished.some((r) => r.headers['x-fedgate-upstream-cluster'] === 'us-east')).toBe(true);
    await federation.admin().call.undrainCluster({ cluster: 'us-east', reason: '' });
    await eventually(async () => {
      const samples = await runLoad({ kind: 'http', address: federation.outbound('eu-west'), authority: AUTHORITY }, { rps: 100, durationMs: 500 });
      return share(samples, 'us-east') > 0;
    }, 'us-east takes traffic again');
  });
});
