import type { Protocol } from '../../model/catalog.js';
import type { LocalEndpoint, LocalExport, LocalExportPort } from '../provider.js';
import { CONSUMERS_ANNOTATION, type RawObject } from './kube-resources.js';

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

/** Why a ServiceExport is not exported as it stands; the reason is written as the `Valid` condition's. */
export type InvalidReason = 'ServiceNotFound' | 'ServiceTypeNotSupported' | 'NoSupportedPorts' | 'InvalidConsumers' | 'InvalidService' | 'InvalidServiceExport';

export type Translation =
  | { kind: 'exported'; export: LocalExport; warnings: string[] }
  | {
      kind: 'invalid';
      reason: InvalidReason;
      message: string;
      /**
       * True for a bad edit (an unparsable annotation or object): the last good version of the
       * export stays in force. False when the service really is not exportable (deleted, no TCP
       * ports): then the export goes.
       */
      keepPrevious: boolean;
    };

export interface TranslationInput {
  serviceExport: RawObject;
  service: RawObject | undefined;
  /** The EndpointSlices labelled with the service's name. */
  slices: Iterable<RawObject>;
  /** This cluster's name: listing it as a consumer is refused, as in the cluster file. */
  cluster: string;
}

function record(value: unknown): Record<string, unknown> | undefined {
  return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
}

/**
 * Protocol of a Service port: `appProtocol` first (the standard field), then the port name's prefix
 * (Istio's convention: `http-web`, `grpc`, `h2c-api`), else opaque TCP.
 */
export function protocolOf(port: { name?: unknown; appProtocol?: unknown }): Protocol {
  const app = typeof port.appProtocol === 'string' ? port.appProtocol.toLowerCase() : '';
  switch (app) {
    case 'http':
    case 'kubernetes.io/http':
      return 'http';
    case 'http2':
    case 'h2c':
    case 'kubernetes.io/h2c':
      return 'http2';
    case 'grpc':
    case 'kubernetes.io/grpc':
      return 'grpc';
    case 'tcp':
    case 'https':
    case 'tls':
    case 'kubernetes.io/ws':
    case 'kubernetes.io/wss':
      // TLS end to end and WebSocket upgrades are carried as opaque TCP: the gateway must not
      // terminate or parse them.
      return 'tcp';
    default:
      break;
  }
  const name = typeof port.name === 'string' ? port.name.toLowerCase() : '';
  const prefix = name.split('-')[0] ?? '';
  if (prefix === 'http2' || prefix === 'h2c') return 'http2';
  if (name === 'grpc-web' || name.startsWith('grpc-web-')) return 'http';
  if (prefix === 'grpc') return 'grpc';
  if (prefix === 'http') return 'http';
  return 'tcp';
}

/** The `fedgate.io/consumers` annotation: comma-separated cluster names; absent or empty means every cluster. */
export function parseConsumers(value: unknown, cluster: string): { consumers: string[] } | { problem: string } {
  if (value === undefined) return { consumers: [] };
  if (typeof value !== 'string') return { problem: `annotation ${CONSUMERS_ANNOTATION} must be a string` };
  const names = value
    .split(',')
    .map((n) => n.trim())
    .filter((n) => n !== '');
  const bad = names.filter((n) => !DNS_LABEL.test(n));
  if (bad.length > 0) return { problem: `annotation ${CONSUMERS_ANNOTATION}: ${bad.map((b) => `"${b}"`).join(', ')} ${bad.length === 1 ? 'is not a cluster name' : 'are not cluster names'} (DNS labels, comma-separated)` };
  if (names.includes(cluster)) return { problem: `annotation ${CONSUMERS_ANNOTATION} lists its own cluster "${cluster}"; local callers are always allowed` };
  return { consumers: [...new Set(names)].sort() };
}

function timestampMs(value: unknown): number {
  if (value instanceof Date) return value.getTime();
  if (typeof value !== 'string') return 0;
  const ms = Date.parse(value);
  return Number.isFinite(ms) ? ms : 0;
}

function validPort(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 1 && value <= 65535;
}

/**
 * Endpoints of the service, from its EndpointSlices. An endpoint counts as ready unless its `ready`
 * condition is false (an absent condition means ready, per the EndpointSlice API). Terminating
 * endpoints that are still `serving` count as not ready: the federation then moves new traffic to
 * other clusters while they drain, rather than sending cross-cluster requests to pods on their
 * way out. Only the first address of an endpoint is used (the API says they are fungible), and an
 * address listed by several slices (during a slice migration) counts once, ready if any says so.
 */
function endpointsOf(slices: readonly Record<string, unknown>[], warnings: string[]): LocalEndpoint[] {
  const byAddress = new Map<string, boolean>();
  for (const slice of slices) {
    const addressType = slice.addressType;
    if (addressType !== undefined && addressType !== 'IPv4' && addressType !== 'IPv6' && addressType !== 'FQDN') continue;
    const endpoints = slice.endpoints;
    if (endpoints === undefined || endpoints === null) continue;
    if (!Array.isArray(endpoints)) {
      warnings.push(`EndpointSlice ${String(record(slice.metadata)?.name)}: endpoints is not a list; skipped`);
      continue;
    }
    for (const endpoint of endpoints) {
      const e = record(endpoint);
      const addresses = e?.addresses;
      const address = Array.isArray(addresses) ? addresses[0] : undefined;
      if (typeof address !== 'string' || address === '') {
        warnings.push(`EndpointSlice ${String(record(slice.metadata)?.name)}: an endpoint without an address; skipped`);
        continue;
      }
      const ready = record(e?.conditions)?.ready !== false;
      byAddress.set(address, (byAddress.get(address) ?? false) || ready);
    }
  }
  return [...byAddress]
    .map(([address, ready]) => ({ address, ready }))
    .sort((a, b) => (a.address < b.address ? -1 : a.address > b.address ? 1 : 0));
}

/**
 * The endpoints' port for a Service port: the EndpointSlice port of the same name carries the
 * number a named targetPort resolved to; a numeric targetPort is used as is; no targetPort means
 * the service port itself.
 */
function targetPortOf(servicePort: Record<string, unknown>, name: string, slices: readonly Record<string, unknown>[]): number | undefined {
  for (const slice of slices) {
    const ports = slice.ports;
    if (!Array.isArray(ports)) continue;
    for (const p of ports) {
      const sp = record(p);
      if (!sp || (sp.name ?? '') !== name) continue;
      if ((sp.protocol ?? 'TCP') !== 'TCP') continue;
      if (validPort(sp.port)) return sp.port;
    }
  }
  const target = servicePort.targetPort;
  if (validPort(target)) return target;
  if (target === undefined || target === null) return servicePort.port as number;
  if (typeof target === 'string' && /^\d+$/.test(target) && validPort(Number(target))) return Number(target);
  return undefined;
}

/**
 * One ServiceExport, with its Service and EndpointSlices, as fedgate's export — or why it cannot
 * be one. Pure: every field of the objects is checked here, since nothing guarantees their shape.
 */
export function translateExport(input: TranslationInput): Translation {
  const { serviceExport, service, cluster } = input;
  const namespace = serviceExport.metadata.namespace ?? 'default';
  const name = serviceExport.metadata.name;
  if (!DNS_LABEL.test(name) || !DNS_LABEL.test(namespace)) {
    return { kind: 'invalid', reason: 'InvalidServiceExport', message: `${namespace}/${name} is not a valid clusterset name (namespace and name must be DNS labels)`, keepPrevious: false };
  }
  const annotations = serviceExport.metadata.annotations;
  if (annotations !== undefined && record(annotations) === undefined) {
    return { kind: 'invalid', reason: 'InvalidServiceExport', message: 'metadata.annotations is not a map', keepPrevious: true };
  }
  const consumers = parseConsumers(annotations?.[CONSUMERS_ANNOTATION], cluster);
  if ('problem' in consumers) return { kind: 'invalid', reason: 'InvalidConsumers', message: consumers.problem, keepPrevious: true };
  if (!service) return { kind: 'invalid', reason: 'ServiceNotFound', message: `Service ${namespace}/${name} not found`, keepPrevious: false };
  const spec = record(service.spec);
  if (!spec) return { kind: 'invalid', reason: 'InvalidService', message: `Service ${namespace}/${name} has no spec`, keepPrevious: true };
  if (spec.type === 'ExternalName') {
    return { kind: 'invalid', reason: 'ServiceTypeNotSupported', message: `Service ${namespace}/${name} is of type ExternalName, which the Multi-Cluster Services API does not export`, keepPrevious: false };
  }
  if (!Array.isArray(spec.ports)) return { kind: 'invalid', reason: 'InvalidService', message: `Service ${namespace}/${name}: spec.ports is not a list`, keepPrevious: true };
  const slices = [...input.slices]
    .map((s) => s as unknown as Record<string, unknown>)
    .sort((a, b) => String(record(a.metadata)?.name).localeCompare(String(record(b.metadata)?.name)));
  const warnings: string[] = [];
  const ports: LocalExportPort[] = [];
  const names = new Set<string>();
  const numbers = new Set<number>();
  for (const [index, raw] of spec.ports.entries()) {
    const p = record(raw);
    if (!p || !validPort(p.port)) return { kind: 'invalid', reason: 'InvalidService', message: `Service ${namespace}/${name}: spec.ports[${index}].port is not a port number`, keepPrevious: true };
    const protocol = p.protocol ?? 'TCP';
    if (protocol !== 'TCP') {
      warnings.push(`port ${p.port}/${String(protocol)} skipped: fedgate carries TCP only`);
      continue;
    }
    const rawName = typeof p.name === 'string' ? p.name : '';
    const portName = rawName === '' ? `port-${p.port}` : rawName;
    if (!DNS_LABEL.test(portName)) return { kind: 'invalid', reason: 'InvalidService', message: `Service ${namespace}/${name}: spec.ports[${index}].name "${portName}" is not a DNS label`, keepPrevious: true };
    if (names.has(portName) || numbers.has(p.port)) return { kind: 'invalid', reason: 'InvalidService', message: `Service ${namespace}/${name}: port ${portName} ${p.port} listed twice`, keepPrevious: true };
    names.add(portName);
    numbers.add(p.port);
    const targetPort = targetPortOf(p, rawName, slices);
    if (targetPort === undefined && slices.length > 0) warnings.push(`port ${portName}: targetPort "${String(p.targetPort)}" is not resolved by any EndpointSlice yet`);
    ports.push({ name: portName, port: p.port, targetPort: targetPort ?? p.port, protocol: protocolOf(p) });
  }
  if (ports.length === 0) return { kind: 'invalid', reason: 'NoSupportedPorts', message: `Service ${namespace}/${name} has no TCP port`, keepPrevious: false };
  return {
    kind: 'exported',
    export: {
      namespace,
      name,
      ports,
      endpoints: endpointsOf(slices, warnings),
      consumers: consumers.consumers,
      createdAt: timestampMs(serviceExport.metadata.creationTimestamp),
    },
    warnings,
  };
}
