import { parseConsumers, protocolOf, translateExport, type Translation } from './export-translator.js';
import type { RawObject } from './kube-resources.js';

function serviceExport(annotations?: Record<string, string>): RawObject {
  return { apiVersion: 'multicluster.x-k8s.io/v1alpha1', kind: 'ServiceExport', metadata: { name: 'cart', namespace: 'shop', uid: 'u1', creationTimestamp: '2025-03-01T10:00:00Z', ...(annotations ? { annotations } : {}) } };
}

function service(spec: Record<string, unknown>): RawObject {
  return { metadata: { name: 'cart', namespace: 'shop' }, spec };
}

function slice(name: string, endpoints: unknown[], ports: unknown[] = [], addressType = 'IPv4'): RawObject {
  return { metadata: { name, namespace: 'shop', labels: { 'kubernetes.io/service-name': 'cart' } }, addressType, endpoints, ports } as RawObject;
}

function translate(svc: RawObject | undefined, slices: RawObject[] = [], exp = serviceExport()): Translation {
  return translateExport({ serviceExport: exp, service: svc, slices, cluster: 'us-east' });
}

describe('protocolOf', () => {
  it.each([
    [{ appProtocol: 'http' }, 'http'],
    [{ appProtocol: 'kubernetes.io/h2c' }, 'http2'],
    [{ appProtocol: 'grpc', name: 'http' }, 'grpc'],
    [{ appProtocol: 'kubernetes.io/wss', name: 'http' }, 'tcp'],
    [{ appProtocol: 'https' }, 'tcp'],
    [{ appProtocol: 'something-else', name: 'grpc-api' }, 'grpc'],
    [{ name: 'http' }, 'http'],
    [{ name: 'http-web' }, 'http'],
    [{ name: 'http2' }, 'http2'],
    [{ name: 'h2c-internal' }, 'http2'],
    [{ name: 'grpc' }, 'grpc'],
    [{ name: 'grpc-web' }, 'http'],
    [{ name: 'tcp-db' }, 'tcp'],
    [{ name: 'mysql' }, 'tcp'],
    [{ name: 'httpx' }, 'tcp'],
    [{}, 'tcp'],
  ])('%j → %s', (port, protocol) => {
    expect(protocolOf(port)).toBe(protocol);
  });
});

describe('parseConsumers', () => {
  it.each([
    [undefined, { consumers: [] }],
    ['', { consumers: [] }],
    ['us-west', { consumers: ['us-west'] }],
    [' us-west , eu-west,us-west,', { consumers: ['eu-west', 'us-west'] }],
  ])('%j', (value, result) => {
    expect(parseConsumers(value, 'us-east')).toEqual(result);
  });

  it.each([
    ['us_west', 'annotation fedgate.io/consumers: "us_west" is not a cluster name (DNS labels, comma-separated)'],
    ['A, b c', 'annotation fedgate.io/consumers: "A", "b c" are not cluster names (DNS labels, comma-separated)'],
    ['us-east', 'annotation fedgate.io/consumers lists its own cluster "us-east"; local callers are always allowed'],
  ])('refuses %j', (value, problem) => {
    expect(parseConsumers(value, 'us-east')).toEqual({ problem });
  });
});

describe('translateExport', () => {
  it('resolves named target ports through the slices and falls back to numbers and the service port', () => {
    const t = translate(
      service({
        ports: [
          { name: 'http', port: 80, targetPort: 'web', protocol: 'TCP' },
          { name: 'metrics', port: 9100, targetPort: 9101, protocol: 'TCP' },
          { name: 'tcp-raw', port: 7000, protocol: 'TCP' },
        ],
      }),
      [slice('a', [{ addresses: ['10.0.0.1'] }], [{ name: 'http', port: 8080, protocol: 'TCP' }, { name: 'metrics', port: 9101, protocol: 'TCP' }])],
    );
    expect(t.kind === 'exported' && t.export.ports).toEqual([
      { name: 'http', port: 80, targetPort: 8080, protocol: 'http' },
      { name: 'metrics', port: 9100, targetPort: 9101, protocol: 'tcp' },
      { name: 'tcp-raw', port: 7000, targetPort: 7000, protocol: 'tcp' },
    ]);
    expect(t.kind === 'exported' && t.export.createdAt).toBe(Date.parse('2025-03-01T10:00:00Z'));
  });

  it('names an unnamed single port, and leaves UDP ports out with a warning', () => {
    const t = translate(service({ ports: [{ port: 5000 }, { name: 'dns', port: 53, protocol: 'UDP' }] }));
    expect(t).toMatchObject({ kind: 'exported', warnings: ['port 53/UDP skipped: fedgate carries TCP only'] });
    expect(t.kind === 'exported' && t.export.ports).toEqual([{ name: 'port-5000', port: 5000, targetPort: 5000, protocol: 'tcp' }]);
  });

  it('reads readiness: absent means ready, terminating-but-serving is not ready, duplicates count once', () => {
    const t = translate(service({ ports: [{ name: 'http', port: 80 }] }), [
      slice('a', [
        { addresses: ['10.0.0.1'] },
        { addresses: ['10.0.0.2'], conditions: { ready: false } },
        { addresses: ['10.0.0.3'], conditions: { ready: false, serving: true, terminating: true } },
        { addresses: [] },
      ]),
      slice('b', [{ addresses: ['10.0.0.2'], conditions: { ready: true } }]),
      slice('c', 'not a list' as unknown as unknown[]),
    ]);
    expect(t.kind === 'exported' && t.export.endpoints).toEqual([
      { address: '10.0.0.1', ready: true },
      { address: '10.0.0.2', ready: true },
      { address: '10.0.0.3', ready: false },
    ]);
    expect(t.kind === 'exported' && t.warnings).toHaveLength(2);
  });

  it.each([
    ['no Service', undefined, serviceExport(), { reason: 'ServiceNotFound', keepPrevious: false }],
    ['ExternalName', service({ type: 'ExternalName', externalName: 'x.example.com' }), serviceExport(), { reason: 'ServiceTypeNotSupported', keepPrevious: false }],
    ['UDP only', service({ ports: [{ port: 53, protocol: 'UDP' }] }), serviceExport(), { reason: 'NoSupportedPorts', keepPrevious: false }],
    ['ports not a list', service({ ports: 'oops' }), serviceExport(), { reason: 'InvalidService', keepPrevious: true }],
    ['port not a number', service({ ports: [{ name: 'http', port: '80' }] }), serviceExport(), { reason: 'InvalidService', keepPrevious: true }],
    ['bad consumers', service({ ports: [{ port: 80 }] }), serviceExport({ 'fedgate.io/consumers': 'no_way' }), { reason: 'InvalidConsumers', keepPrevious: true }],
  ])('%s → not exported', (_what, svc, exp, result) => {
    expect(translate(svc, [], exp)).toMatchObject({ kind: 'invalid', ...result });
  });
});
