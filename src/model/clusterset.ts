import { serviceKey, type ExportRecord, type ServicePort } from './catalog.js';

export interface ServiceExporterView {
  cluster: string;
  ports: ServicePort[];
  readyEndpoints: number;
  totalEndpoints: number;
  createdAt: number;
}

export interface ExportConflictView {
  cluster: string;
  reason: string;
}

/** A clusterset service: every compatible export of one namespace/name. */
export interface ClustersetServiceView {
  namespace: string;
  name: string;
  /** Union of the compatible exporters' ports. */
  ports: ServicePort[];
  exporters: ServiceExporterView[];
  /** Exports left out because they contradict an older one. */
  conflicts: ExportConflictView[];
}

function describePort(p: ServicePort): string {
  return `${p.name} ${p.port}/${p.protocol}`;
}

/**
 * Merges the exports of one service, following the Multi-Cluster Services rule: the oldest export
 * (ties: cluster name) defines the service; a later export whose ports contradict the ports
 * established so far — same name with another number or protocol, or the same number under
 * another name or protocol — is a conflict, reported and left out, never silently merged.
 */
export function mergeExports(exports: readonly ExportRecord[]): ClustersetServiceView | undefined {
  if (exports.length === 0) return undefined;
  const ordered = [...exports].sort((a, b) => a.createdAt - b.createdAt || (a.cluster < b.cluster ? -1 : a.cluster > b.cluster ? 1 : 0));
  const first = ordered[0] as ExportRecord;
  const byName = new Map<string, { port: ServicePort; cluster: string }>();
  const byNumber = new Map<number, { port: ServicePort; cluster: string }>();
  const exporters: ServiceExporterView[] = [];
  const conflicts: ExportConflictView[] = [];
  for (const record of ordered) {
    let reason: string | undefined;
    for (const port of record.ports) {
      const named = byName.get(port.name);
      if (named && (named.port.port !== port.port || named.port.protocol !== port.protocol)) {
        reason = `port "${port.name}" is ${describePort(port)} here but ${describePort(named.port)} in ${named.cluster}, which exported the service first`;
        break;
      }
      const numbered = byNumber.get(port.port);
      if (numbered && (numbered.port.name !== port.name || numbered.port.protocol !== port.protocol)) {
        reason = `port ${port.port} is ${describePort(port)} here but ${describePort(numbered.port)} in ${numbered.cluster}, which exported the service first`;
        break;
      }
    }
    if (reason) {
      conflicts.push({ cluster: record.cluster, reason });
      continue;
    }
    for (const port of record.ports) {
      if (!byName.has(port.name)) byName.set(port.name, { port, cluster: record.cluster });
      if (!byNumber.has(port.port)) byNumber.set(port.port, { port, cluster: record.cluster });
    }
    exporters.push({ cluster: record.cluster, ports: record.ports, readyEndpoints: record.readyEndpoints, totalEndpoints: record.totalEndpoints, createdAt: record.createdAt });
  }
  return {
    namespace: first.namespace,
    name: first.name,
    ports: [...byName.values()].map((entry) => entry.port).sort((a, b) => a.port - b.port),
    exporters,
    conflicts,
  };
}

/**
 * What one consumer may see of a merged service: exporters whose consumer list is empty or names
 * it (its own export always). Undefined when nothing is left for it.
 */
export function viewForConsumer(merged: ClustersetServiceView, exportsByCluster: ReadonlyMap<string, ExportRecord>, consumer: string): ClustersetServiceView | undefined {
  const visible = merged.exporters.filter((exporter) => {
    if (exporter.cluster === consumer) return true;
    const consumers = exportsByCluster.get(exporter.cluster)?.consumers ?? [];
    return consumers.length === 0 || consumers.includes(consumer);
  });
  if (visible.length === 0) return undefined;
  if (visible.length === merged.exporters.length) return merged;
  const ports = new Map<string, ServicePort>();
  for (const exporter of visible) for (const port of exporter.ports) if (!ports.has(port.name)) ports.set(port.name, port);
  return { ...merged, exporters: visible, ports: [...ports.values()].sort((a, b) => a.port - b.port) };
}

export { serviceKey };
