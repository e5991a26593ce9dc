/**
 * Logs: one value per key on every line. A controller and two gateways (real processes, debug
 * level) go through joining, traffic, authorization decisions, a policy apply, a peer gateway
 * killed and restarted; then every JSON line any of them wrote is read key by key (JSON.parse would
 * keep the last of two values silently) and the test fails on a key given twice.
 */
import { jest } from '@jest/globals';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startHttpBackend } from '../../src/demo/sample-backends.js';
import { eventually } from '../support/control-plane.js';
import { LocalFederation } from '../support/federation.js';
import { http1 } from '../support/http-client.js';
import { duplicateKeys } from '../support/json-keys.js';
import { freePorts } from '../support/ports.js';
import { httpGet, runFedgate, type FedgateProcess } from '../support/processes.js';

jest.setTimeout(120_000);

const AUTHZ = `apiVersion: fedgate.io/v1alpha1
kind: AuthorizationPolicy
metadata: {name: ledger, namespace: shop}
spec:
  service: ledger
  action: ALLOW
  rules: [{from: [{clusters: [east, west]}]}]
`;

describe('log lines of a federation run', () => {
  let federation: LocalFederation;
  let scratch: string;
  const backends: Array<{ close(): Promise<void> }> = [];
  const processes: FedgateProcess[] = [];

  beforeAll(async () => {
    scratch = mkdtempSync(join(tmpdir(), 'fedgate-log-keys-'));
    const [east, west] = (await freePorts(2)) as [number, number];
    backends.push(await startHttpBackend('east', '127.0.0.1', east), await startHttpBackend('west', '127.0.0.1', west));
    const ledger = (port: number) => [{ service: 'ledger', namespace: 'shop', ports: [{ name: 'http', port: 8080, targetPort: port, protocol: 'http' as const }] }];
    federation = await LocalFederation.create(
      [
        { name: 'east', region: 'r1', zone: 'a', exports: ledger(east), callers: [{ address: '127.0.0.2', namespace: 'shop', serviceAccount: 'web' }] },
        { name: 'west', region: 'r2', zone: 'a', exports: ledger(west) },
      ],
      { controller: {}, defaults: 'healthCheck: {interval: 200ms, unhealthyThreshold: 2}' },
    );
    await federation.startAll({ FEDGATE_LOG_LEVEL: 'debug' });
  });

  afterAll(async () => {
    await federation?.stop();
    for (const b of backends) await b.close();
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  });

  it('has one value per key on every line of every process', async () => {
    const outbound = federation.outbound('east');
    const authority = 'ledger.shop.svc.clusterset.local:8080';
    await eventually(async () => (await http1(outbound, authority)).status === 200, 'east reaches ledger');
    const file = join(scratch, 'authz.yaml');
    writeFileSync(file, AUTHZ);
    const applied = await runFedgate(['policy', 'apply', '-f', file, ...federation.cliTarget()]);
    expect(applied.code).toBe(0);
    for (const cluster of ['east', 'west']) {
      await eventually(async () => (JSON.parse((await httpGet(`${federation.adminUrl(cluster)}/config`)).body) as { policies: { inSync: boolean; documents: unknown[] } }).policies.documents.length === 1 || undefined, `${cluster} applies the policy`);
    }
    // Traffic from a mapped caller and from the gateway's own identity: authorization decisions are logged at debug level.
    for (let i = 0; i < 20; i++) await http1(outbound, authority, { localAddress: i % 2 === 0 ? '127.0.0.2' : '127.0.0.1' });

    // A peer gateway dies and comes back: the survivors log events about another cluster.
    const east = federation.cluster('east').process as FedgateProcess;
    const westBefore = federation.cluster('west').process as FedgateProcess;
    await westBefore.kill('SIGKILL');
    await eventually(() => east.logs.includes('peer gateway unhealthy'), 'east notices west is down', 20_000);
    const westAfter = await federation.start('west', { FEDGATE_LOG_LEVEL: 'debug' });
    await eventually(() => east.logs.includes('peer gateway healthy again'), 'east sees west again', 20_000);
    for (let i = 0; i < 10; i++) await http1(outbound, authority);
    processes.push(federation.controller?.process as FedgateProcess, east, westBefore, westAfter);
    await Promise.all([east.stop(), westAfter.stop()]);

    const problems: Array<{ process: string; keys: string[]; line: string }> = [];
    let lines = 0;
    for (const process of processes) {
      for (const line of process.logs.split('\n')) {
        if (!line.startsWith('{')) continue; // the start-up banner is text
        lines++;
        const keys = duplicateKeys(line);
        if (keys.length > 0) problems.push({ process: process.name, keys, line });
      }
    }
    console.log(`log lines checked: ${lines} from ${processes.length} processes`);
    expect(problems).toEqual([]);
    expect(lines).toBeGreaterThan(50);

    // The event about the peer keeps the gateway's own cluster as "cluster" and still names the peer.
    const unhealthy = east.logs.split('\n').find((l) => l.includes('peer gateway unhealthy'));
    const event = JSON.parse(unhealthy as string) as Record<string, unknown>;
    expect(event.cluster).toBe('east');
    expect(JSON.stringify(event)).toContain('"west"');
  });
});
