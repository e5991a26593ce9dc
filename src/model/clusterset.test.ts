import type { ExportRecord } from './catalog.js';
import { mergeExports, viewForConsumer } from './clusterset.js';

function exp(cluster: string, createdAt: number, ports: ExportRecord['ports'], consumers: string[] = []): ExportRecord {
  return { cluster, namespace: 'default', name: 'payments', ports, readyEndpoints: 1, totalEndpoints: 2, consumers, createdAt };
}

describe('mergeExports (MCS conflict resolution)', () => {
  it('merges compatible exports and unions their ports', () => {
    const merged = mergeExports([
      exp('b', 2, [{ name: 'http', port: 80, protocol: 'http' }]),
      exp('a', 1, [{ name: 'http', port: 80, protocol: 'http' }, { name: 'grpc', port: 9090, protocol: 'grpc' }]),
    ]);
    expect(merged?.exporters.map((e) => e.cluster)).toEqual(['a', 'b']);
    expect(merged?.ports.map((p) => p.name)).toEqual(['http', 'grpc']);
    expect(merged?.conflicts).toEqual([]);
  });

  it('lets the oldest export win and reports the contradiction', () => {
    const merged = mergeExports([
      exp('young', 5, [{ name: 'http', port: 81, protocol: 'http' }]),
      exp('old', 1, [{ name: 'http', port: 80, protocol: 'http' }]),
      exp('other', 3, [{ name: 'web', port: 80, protocol: 'http2' }]),
    ]);
    expect(merged?.exporters.map((e) => e.cluster)).toEqual(['old']);
    expect(merged?.conflicts).toEqual([
      { cluster: 'other', reason: 'port 80 is web 80/http2 here but http 80/http in old, which exported the service first' },
      { cluster: 'young', reason: 'port "http" is http 81/http here but http 80/http in old, which exported the service first' },
    ]);
  });

  it('breaks ties by cluster name', () => {
    const merged = mergeExports([exp('z', 1, [{ name: 'http', port: 80, protocol: 'http' }]), exp('m', 1, [{ name: 'http', port: 80, protocol: 'tcp' }])]);
    expect(merged?.exporters.map((e) => e.cluster)).toEqual(['m']);
    expect(merged?.conflicts.map((c) => c.cluster)).toEqual(['z']);
  });

  it('shows each consumer only the exports meant for it', () => {
    const records = [exp('a', 1, [{ name: 'http', port: 80, protocol: 'http' }], ['c']), exp('b', 2, [{ name: 'http', port: 80, protocol: 'http' }])];
    const merged = mergeExports(records);
    const byCluster = new Map(records.map((r) => [r.cluster, r]));
    expect(viewForConsumer(merged!, byCluster, 'c')?.exporters.map((e) => e.cluster)).toEqual(['a', 'b']);
    expect(viewForConsumer(merged!, byCluster, 'd')?.exporters.map((e) => e.cluster)).toEqual(['b']);
    expect(viewForConsumer(merged!, byCluster, 'a')?.exporters.map((e) => e.cluster)).toEqual(['a', 'b']);
    const onlyA = mergeExports([records[0]!]);
    expect(viewForConsumer(onlyA!, byCluster, 'd')).toBeUndefined();
  });
});
