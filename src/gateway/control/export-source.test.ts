import type { DiscoveryProvider, DiscoveryState, LocalExport } from '../../discovery/provider.js';
import type { CatalogData } from './catalog-replica.js';
import { discoveryExports, importsOf, StaticExportSource } from './export-source.js';

/** A discovery provider whose state the test sets, as the file provider's is set by its YAML. */
class SetDiscovery implements DiscoveryProvider {
  readonly name = 'set';
  private state: DiscoveryState = { exports: new Map(), source: 'test' };
  private readonly listeners = new Set<(state: DiscoveryState) => void>();
  current(): DiscoveryState {
    return this.state;
  }
  onChange(listener: (state: DiscoveryState) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
  async start(): Promise<void> {}
  set(exports: LocalExport[]): void {
    this.state = { exports: new Map(exports.map((e) => [`${e.namespace}/${e.name}`, e])), source: 'test' };
    for (const l of this.listeners) l(this.state);
  }
}

describe('discoveryExports', () => {
  it('sends each export with its ports, endpoint counts and consumers, never endpoint addresses', () => {
    const discovery = new SetDiscovery();
    const source = discoveryExports(discovery);
    let changes = 0;
    const stop = source.onChange(() => (changes += 1));
    discovery.set([{ namespace: 'shop', name: 'payments', ports: [{ name: 'http', port: 8080, targetPort: 80, protocol: 'http' }], endpoints: [{ address: '10.0.0.1', ready: true }, { address: '10.0.0.2', ready: false }], consumers: ['us-west'], createdAt: 42 }]);
    expect(changes).toBe(1);
    expect(source.current()).toEqual([{ namespace: 'shop', name: 'payments', ports: [{ name: 'http', port: 8080, protocol: 'http' }], readyEndpoints: 1, totalEndpoints: 2, consumers: ['us-west'], createdAtMs: 42 }]);
    expect(JSON.stringify(source.current())).not.toContain('10.0.0.');
    stop();
    discovery.set([]);
    expect(changes).toBe(1);
  });
});

describe('StaticExportSource', () => {
  it('replaces its set by hand and tells its listeners', () => {
    const source = new StaticExportSource();
    const seen: number[] = [];
    const stop = source.onChange(() => seen.push(source.current().length));
    expect(source.current()).toEqual([]);
    source.set([{ namespace: 'shop', name: 'a', ports: [], readyEndpoints: 0, totalEndpoints: 0, consumers: [], createdAtMs: 0 }]);
    stop();
    source.set([]);
    expect(seen).toEqual([1]);
  });
});

describe('importsOf', () => {
  it('lists the catalog’s clusterset services with their ports and exporting clusters', () => {
    const ports = [{ name: 'grpc', port: 9090, protocol: 'grpc' as const }];
    const data: CatalogData = {
      epoch: 'e',
      revision: 1,
      policyRevision: 0,
      clusters: new Map(),
      bundles: new Map(),
      policies: new Map(),
      services: new Map([['shop/greeter', { namespace: 'shop', name: 'greeter', ports, exporters: [{ cluster: 'us-west', ports, readyEndpoints: 1, totalEndpoints: 1, createdAt: 0 }, { cluster: 'eu-west', ports, readyEndpoints: 0, totalEndpoints: 1, createdAt: 1 }], conflicts: [] }]]),
    };
    expect(importsOf(data)).toEqual([{ namespace: 'shop', name: 'greeter', ports: [{ name: 'grpc', port: 9090, protocol: 'grpc' }], clusters: ['us-west', 'eu-west'] }]);
  });
});
