/** `fedgate export list`: a cluster's exports read the way its gateway reads them, file or Kubernetes. */
import { rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FakeKubeApi, endpointSliceObject, serviceExportObject, serviceObject } from '../support/fake-kube-api.js';
import { LocalFederation } from '../support/federation.js';
import { runFedgate } from '../support/processes.js';

describe('fedgate export list', () => {
  let api: FakeKubeApi;
  let federation: LocalFederation;

  beforeAll(async () => {
    api = await FakeKubeApi.start();
    federation = await LocalFederation.create([
      { name: 'east', region: 'r', zone: 'a', exports: [{ service: 'payments', ports: [{ name: 'http', port: 8080, targetPort: 9001, protocol: 'http' }], endpoints: ['127.0.0.1', { address: '127.0.0.2', ready: false }], consumers: ['west'] }] },
      { name: 'west', region: 'r', zone: 'b', discovery: { mode: 'kubernetes', kubernetes: { kubeconfig: api.writeKubeconfig(join(tmpdir(), `fedgate-export-kubeconfig-${process.pid}`)) } } },
    ]);
  });
  afterAll(async () => {
    await federation.stop();
    await api.close();
    rmSync(join(tmpdir(), `fedgate-export-kubeconfig-${process.pid}`), { force: true });
  });

  it('lists the exports of a cluster file, with ports, readiness and consumers', async () => {
    const result = await runFedgate(['export', 'list', '--config', federation.cluster('east').file]);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('payments.default.svc.clusterset.local  http:8080→9001/http  endpoints 1/2 ready  consumers west');
  });

  it('lists ServiceExports from the Kubernetes API, as JSON', async () => {
    api.apply(serviceObject('default', 'ledger', [{ name: 'http', port: 8080, targetPort: 'web', appProtocol: 'http' }]));
    api.apply(endpointSliceObject('default', 'ledger', 'ledger-abc', [{ address: '10.0.0.7', ready: true }], [{ name: 'http', port: 9090 }]));
    api.apply(serviceExportObject('default', 'ledger', {}));
    const result = await runFedgate(['export', 'list', '--config', federation.cluster('west').file, '-o', 'json']);
    expect(result.code).toBe(0);
    const listed = JSON.parse(result.stdout) as { exports: Array<{ name: string; ports: Array<{ port: number; targetPort: number; protocol: string }>; endpoints: Array<{ address: string; ready: boolean }> }> };
    expect(listed.exports.map((e) => e.name)).toEqual(['ledger']);
    expect(listed.exports[0]?.ports).toEqual([{ name: 'http', port: 8080, targetPort: 9090, protocol: 'http' }]);
    expect(listed.exports[0]?.endpoints).toEqual([{ address: '10.0.0.7', ready: true }]);
  });

  it('refuses a bad output format', async () => {
    const result = await runFedgate(['export', 'list', '--config', federation.cluster('east').file, '-o', 'xml']);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain("argument 'xml' is invalid. Allowed choices are text, json, yaml.");
  });
});
