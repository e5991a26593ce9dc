/** Domain types of the federation catalog. No I/O here: the store, controller and gateway share these. */

export const PROTOCOLS = ['http', 'http2', 'grpc', 'tcp'] as const;
export type Protocol = (typeof PROTOCOLS)[number];

export const CLUSTER_STATES = ['active', 'draining', 'unreachable', 'left'] as const;
export type ClusterState = (typeof CLUSTER_STATES)[number];

/** A federation member as the controller records it. */
export interface ClusterRecord {
  name: string;
  region: string;
  zone: string;
  trustDomain: string;
  /** Addresses other gateways dial (host:port of the inbound mTLS listener). */
  gatewayAddresses: string[];
  labels: Record<string, string>;
  state: ClusterState;
  /** Why the state last changed, and who changed it (drain is audited). */
  stateReason: string;
  stateChangedBy: string;
  stateChangedAt: number;
  joinedAt: number;
  /**
   * Services (`namespace/name`) this cluster's gateway stops answering for while a blackhole drill
   * runs. Kept in the catalog so every controller replica and a reconnecting gateway agree on it.
   */
  blackholed?: string[];
}

export interface ServicePort {
  name: string;
  port: number;
  protocol: Protocol;
}

/** One cluster's export of one service: ports and endpoint counts, never pod addresses. */
export interface ExportRecord {
  cluster: string;
  namespace: string;
  name: string;
  ports: ServicePort[];
  readyEndpoints: number;
  totalEndpoints: number;
  /** Clusters allowed to consume it; empty means all. */
  consumers: string[];
  /** When the export first appeared; the oldest export wins a conflict (MCS rule). */
  createdAt: number;
}

/** A trust domain's bundle as the controller distributes it. */
export interface BundleRecord {
  trustDomain: string;
  sequence: number;
  /** The SPIFFE bundle document (JSON text). */
  spiffeJson: string;
}

/** A policy document as stored: its identity plus the validated document. */
export interface PolicyRecord {
  /** `<kind>/<namespace>/<name>`. */
  key: string;
  kind: string;
  namespace: string;
  name: string;
  /** The document as JSON (apiVersion, kind, metadata, spec). */
  document: Record<string, unknown>;
  /** Revision at which this document was last written. */
  revision: number;
}

export type ResourceType = 'cluster' | 'export' | 'bundle' | 'policy';

/** One entry of the change log. Values are carried whole, so a watcher never re-reads the store. */
export interface Change {
  revision: number;
  type: ResourceType;
  /** cluster: name; export: `cluster/namespace/name`; bundle: trust domain; policy: policy key. */
  key: string;
  op: 'put' | 'delete';
  value?: ClusterRecord | ExportRecord | BundleRecord | PolicyRecord;
}

export function serviceKey(namespace: string, name: string): string {
  return `${namespace}/${name}`;
}

export function exportKey(record: Pick<ExportRecord, 'cluster' | 'namespace' | 'name'>): string {
  return `${record.cluster}/${record.namespace}/${record.name}`;
}

export function splitExportKey(key: string): { cluster: string; namespace: string; name: string } {
  const [cluster = '', namespace = '', name = ''] = key.split('/');
  return { cluster, namespace, name };
}

export function policyKey(kind: string, namespace: string, name: string): string {
  return `${kind}/${namespace}/${name}`;
}

/** The Kubernetes Multi-Cluster Services name of a clusterset service. */
export function clustersetHost(namespace: string, name: string): string {
  return `${name}.${namespace}.svc.clusterset.local`;
}

const CLUSTERSET_SUFFIX = '.svc.clusterset.local';

/** Parses `name.namespace.svc.clusterset.local[:port]` (also `name.namespace[:port]`, the short form). */
export function parseClustersetAuthority(authority: string): { namespace: string; name: string; port?: number } | undefined {
  let host = authority;
  let port: number | undefined;
  const colon = authority.lastIndexOf(':');
  if (colon !== -1 && !authority.endsWith(']')) {
    const digits = authority.slice(colon + 1);
    if (!/^\d{1,5}$/.test(digits)) return undefined;
    port = Number(digits);
    host = authority.slice(0, colon);
  }
  host = host.toLowerCase();
  if (host.endsWith('.')) host = host.slice(0, -1);
  if (host.endsWith(CLUSTERSET_SUFFIX)) host = host.slice(0, -CLUSTERSET_SUFFIX.length);
  const parts = host.split('.');
  if (parts.length !== 2) return undefined;
  const [name, namespace] = parts as [string, string];
  if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(name) || !/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(namespace)) return undefined;
  return { namespace, name, port };
}
