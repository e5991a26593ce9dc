/**
 * The policy commands as users run them (the built CLI in a child process): exit codes, messages
 * with file:line: path, JSON output; and a static federation's gateway with policies/ (applied at
 * start, or refused at start with every problem).
 */
import { jest } from '@jest/globals';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startHttpBackend } from '../../src/demo/sample-backends.js';
import { LocalFederation } from '../support/federation.js';
import { http1 } from '../support/http-client.js';
import { freePorts } from '../support/ports.js';
import { FedgateProcess, runFedgate } from '../support/processes.js';

jest.setTimeout(60_000);

const GOOD = `apiVersion: fedgate.io/v1alpha1
kind: TrafficPolicy
metadata: {name: payments, namespace: shop}
spec:
  service: payments
  timeout: 2s
`;

const BAD = `apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata:
  name: payments
  namespace: shop
spec:
  hosts: [payments]
  http:
    - route:
        - destination: {host: payments, subset: v1}
          weight: 90
        - destination: {host: payments, subset: v2}
          weight: 20
---
apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata: {name: payments, namespace: shop}
spec:
  host: payments
  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]
---
apiVersion: fedgate.io/v1alpha1
kind: FaultPolicy
metadata: {name: chaos, namespace: shop}
spec:
  service: payments
  faults:
    - abort: {httpStatus: 700, percentage: 10}
`;

describe('fedgate policy validate / apply', () => {
  let dir: string;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'fedgate-policy-cli-'));
    mkdirSync(join(dir, 'good'));
    mkdirSync(join(dir, 'policies'));
    writeFileSync(join(dir, 'good', 'payments.yaml'), GOOD);
    writeFileSync(join(dir, 'policies', 'payments.yaml'), BAD);
  });

  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('exits 0 on a valid directory and says so', async () => {
    const result = await runFedgate(['policy', 'validate', '-f', 'good'], { cwd: dir });
    expect(result).toEqual({ code: 0, stdout: '1 documents in 1 files: 0 errors, 0 warnings — valid\n', stderr: '' });
  });

  it('exits 1 and prints every error with file:line: path', async () => {
    const result = await runFedgate(['policy', 'validate', '-f', 'policies'], { cwd: dir });
    expect(result.code).toBe(1);
    expect(result.stderr.trim().split('\n')).toEqual([
      'error: policies/payments.yaml:13: spec.http[0].route[1].weight: weights must sum to 100 (got 110)',
      'error: policies/payments.yaml:28: spec.faults[0].abort.httpStatus: must be an integer between 200 and 599, got 700',
    ]);
    expect(result.stdout).toBe('3 documents in 1 files: 2 errors, 0 warnings\n');
  });

  it('-o json gives machines the same findings', async () => {
    const result = await runFedgate(['policy', 'validate', '-f', 'policies', '-o', 'json'], { cwd: dir });
    expect(result.code).toBe(1);
    const report = JSON.parse(result.stdout) as { valid: boolean; errors: Array<{ source: string; line: number; path: string; message: string }>; documents: string[] };
    expect(report.valid).toBe(false);
    expect(report.documents).toEqual(['VirtualService/shop/payments', 'DestinationRule/shop/payments', 'FaultPolicy/shop/chaos']);
    expect(report.errors.map((e) => [e.source, e.line, e.path])).toEqual([
      ['policies/payments.yaml', 13, 'spec.http[0].route[1].weight'],
      ['policies/payments.yaml', 28, 'spec.faults[0].abort.httpStatus'],
    ]);
  });

  it('apply refuses an invalid set before contacting any controller', async () => {
    const result = await runFedgate(['policy', 'apply', '-f', 'policies', '--controller', '127.0.0.1:1', '--credentials', dir], { cwd: dir });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('nothing applied: 2 errors');
  });

  it('reads kubectl output from standard input: a List, server-populated fields ignored', async () => {
    const list = [
      'apiVersion: v1',
      'kind: List',
      'items:',
      '  - apiVersion: fedgate.io/v1alpha1',
      '    kind: TrafficPolicy',
      '    metadata:',
      '      name: payments',
      '      namespace: shop',
      '      uid: 0b6f0a4e-4f55-4b8e-9d8e-0c3d6d1f2a11',
      '      resourceVersion: "4821"',
      '      generation: 1',
      '      creationTimestamp: "2026-11-20T10:00:00Z"',
      '      annotations:',
      '        kubectl.kubernetes.io/last-applied-configuration: "{}"',
      '      managedFields: [{manager: kubectl, operation: Update}]',
      '    spec: {service: payments, timeout: 2s}',
      '  - apiVersion: fedgate.io/v1alpha1',
      '    kind: RoutePolicy',
      '    metadata: {name: reviews, namespace: shop, uid: x}',
      '    spec:',
      '      service: reviews',
      '      routes: [{name: all, destinations: [{cluster: one, weight: 50}, {cluster: two, weight: 60}]}]',
      '    status: {}',
      'metadata: {resourceVersion: ""}',
      '',
    ].join('\n');
    const result = await runFedgate(['policy', 'validate', '-f', '-'], { cwd: dir, input: list });
    expect(result.code).toBe(1);
    expect(result.stderr).toBe('error: <stdin>:22: spec.routes[0].destinations: weights must sum to 100 (got 110)\n');
    expect(result.stdout).toBe('2 documents in 1 files: 1 errors, 0 warnings\n');
  });

  it('a file that does not exist is a usage error (exit 2)', async () => {
    const result = await runFedgate(['policy', 'validate', '-f', 'nowhere.yaml'], { cwd: dir });
    expect(result).toMatchObject({ code: 2, stderr: 'fedgate: nowhere.yaml: no such file or directory\n' });
  });
});

describe('a static federation with policies/', () => {
  let federation: LocalFederation;
  const backends: Array<{ close(): Promise<void> }> = [];

  afterEach(async () => {
    await federation?.stop();
    for (const b of backends.splice(0)) await b.close();
  });

  it('applies the directory at gateway start (a route rule choosing the other cluster)', async () => {
    const [a, b] = (await freePorts(2)) as [number, number];
    backends.push(await startHttpBackend('one', '127.0.0.1', a), await startHttpBackend('two', '127.0.0.1', b));
    const exportOf = (port: number) => [{ service: 'payments', ports: [{ name: 'http', port: 8080, targetPort: port, protocol: 'http' as const }] }];
    federation = await LocalFederation.create(
      [
        { name: 'one', region: 'r1', zone: 'a', exports: exportOf(a) },
        { name: 'two', region: 'r2', zone: 'a', exports: exportOf(b) },
      ],
      { policies: { 'route.yaml': 'apiVersion: fedgate.io/v1alpha1\nkind: RoutePolicy\nmetadata: {name: to-two}\nspec:\n  service: payments\n  routes: [{name: all, destinations: [{cluster: two}]}]\n' } },
    );
    await federation.startAll();
    const answer = await http1(federation.outbound('one'), 'payments.default.svc.clusterset.local:8080');
    expect((JSON.parse(answer.body) as { servedBy: string }).servedBy).toBe('two');
  });

  it('a gateway whose policies/ is invalid does not start, and says why with file:line', async () => {
    federation = await LocalFederation.create([{ name: 'one', region: 'r1', zone: 'a' }], { policies: { 'bad.yaml': BAD } });
    const gateway = FedgateProcess.start('gateway-one', ['gateway', '--config', federation.cluster('one').file]);
    const code = await gateway.exited;
    expect(code).not.toBe(0);
    expect(gateway.logs).toContain('policies/bad.yaml:13: spec.http[0].route[1].weight: weights must sum to 100 (got 110)');
  });
});
