import type { DiscoveryProvider, ImportedService } from '../../discovery/provider.js';
import type { CatalogData } from './catalog-replica.js';
import type { ExportSpec } from '../../proto/gen/fedgate.js';

/** The local cluster's exports, as discovery sees them; the controller client mirrors them upwards. */
export interface ExportSource {
  /** The complete current set. */
  current(): ExportSpec[];
  /** Called after any change; the client works out what changed against what it last sent. */
  onChange(listener: () => void): () => void;
}

/** An export source whose set is replaced by hand (tests, benchmarks, static mode). */
export class StaticExportSource implements ExportSource {
  private specs: ExportSpec[];
  private readonly listeners = new Set<() => void>();

  constructor(specs: ExportSpec[] = []) {
    this.specs = specs;
  }

  current(): ExportSpec[] {
    return this.specs;
  }

  set(specs: ExportSpec[]): void {
    this.specs = specs;
    for (const listener of this.listeners) listener();
  }

  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}

/** The exports a discovery provider sees, as the controller client sends them. */
export function discoveryExports(discovery: DiscoveryProvider): ExportSource {
  return {
    current: (): ExportSpec[] =>
      [...discovery.current().exports.values()].map((e) => ({
        namespace: e.namespace,
        name: e.name,
        ports: e.ports.map((p) => ({ name: p.name, port: p.port, protocol: p.protocol })),
        readyEndpoints: e.endpoints.filter((ep) => ep.ready).length,
        totalEndpoints: e.endpoints.length,
        consumers: e.consumers,
        createdAtMs: e.createdAt,
      })),
    onChange: (listener) => discovery.onChange(() => listener()),
  };
}

/** The catalog's clusterset services, as providers that mirror them (Kubernetes ServiceImports) take them. */
export function importsOf(data: CatalogData): ImportedService[] {
  return [...data.services.values()].map((s) => ({ namespace: s.namespace, name: s.name, ports: s.ports.map((p) => ({ name: p.name, port: p.port, protocol: p.protocol })), clusters: s.exporters.map((e) => e.cluster) }));
}
