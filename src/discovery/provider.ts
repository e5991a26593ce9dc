import type { Protocol } from '../model/catalog.js';

/** A port of a local export: the clusterset port, the endpoints' port, and how to speak to it. */
export interface LocalExportPort {
  name: string;
  port: number;
  targetPort: number;
  protocol: Protocol;
}

/** An endpoint of a local service; only the gateway of this cluster ever sees its address. */
export interface LocalEndpoint {
  address: string;
  ready: boolean;
}

export interface LocalExport {
  namespace: string;
  name: string;
  ports: LocalExportPort[];
  endpoints: LocalEndpoint[];
  /** Clusters allowed to consume it; empty means every cluster. */
  consumers: string[];
  /** When this export first appeared (MCS conflict seniority); 0 when unknown. */
  createdAt: number;
}

export interface DiscoveryState {
  /** By `namespace/name`. */
  exports: ReadonlyMap<string, LocalExport>;
  /** Where the state came from, for /config and logs (file path, API server). */
  source: string;
}

/** Per-export feedback from the federation (accepted, or in conflict and why). */
export interface ExportStatus {
  namespace: string;
  name: string;
  accepted: boolean;
  reason: string;
}

/** Clusterset services known from the catalog, for providers that mirror them (ServiceImport). */
export interface ImportedService {
  namespace: string;
  name: string;
  ports: Array<{ name: string; port: number; protocol: Protocol }>;
  clusters: string[];
}

/**
 * Where a gateway learns its cluster's exports. Implementations: the file provider (cluster YAML,
 * hot-reloaded) and the Kubernetes provider (ServiceExport, Service, EndpointSlice). Both pass
 * test/contract/discovery.
 */
export interface DiscoveryProvider {
  readonly name: string;
  /** The current state; always complete (never a partial view after an error). */
  current(): DiscoveryState;
  /** Called after every change of `current()`. */
  onChange(listener: (state: DiscoveryState) => void): () => void;
  /** Runs until the signal aborts (watches, informers). */
  start(signal: AbortSignal): Promise<void>;
  /** Export verdicts from the controller (Kubernetes writes them as ServiceExport conditions). */
  reportStatus?(statuses: readonly ExportStatus[]): void;
  /** The catalog's clusterset services (Kubernetes maintains ServiceImports from them). */
  reportImports?(imports: readonly ImportedService[]): void;
}

export function exportKeyOf(e: Pick<LocalExport, 'namespace' | 'name'>): string {
  return `${e.namespace}/${e.name}`;
}
