/**
 * Proto ⇄ model. Everything arriving from the network is checked here, once, with the field path
 * of every problem; handlers only ever see model objects that passed.
 */
import { ErrorCodes, InputError, type InputIssue, FedgateError } from '../core/errors.js';
import { CLUSTER_STATES, PROTOCOLS, type BundleRecord, type ClusterRecord, type ClusterState, type ExportRecord, type PolicyRecord, type Protocol, type ServicePort } from '../model/catalog.js';
import type { ClustersetServiceView } from '../model/clusterset.js';
import { trustDomainProblem } from '../model/spiffe-id.js';
import type { ClusterInfo, ClustersetService, ExportSpec, Policy, ServicePort as PbServicePort, TrustBundle } from './gen/fedgate.js';

export class ProtocolError extends InputError {
  constructor(issues: InputIssue[]) {
    super(ErrorCodes.PROTOCOL_INVALID, issues);
  }
}

const MAX_PORTS = 100;
const MAX_CONSUMERS = 1000;
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const HOST_PORT = /^(?:\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/;

class Checker {
  readonly issues: InputIssue[] = [];
  constructor(private readonly source: string) {}

  fail(path: string, message: string): void {
    this.issues.push({ source: this.source, path, message });
  }

  label(path: string, value: string): void {
    if (!DNS_LABEL.test(value)) this.fail(path, value === '' ? 'required' : `"${value}" is not a DNS label`);
  }

  done(): void {
    if (this.issues.length > 0) throw new ProtocolError(this.issues);
  }
}

function portsFromProto(check: Checker, path: string, ports: readonly PbServicePort[]): ServicePort[] {
  if (ports.length === 0) check.fail(path, 'at least one port is required');
  const names = new Set<string>();
  return ports.map((p, i) => {
    check.label(`${path}[${i}].name`, p.name);
    if (names.has(p.name)) check.fail(`${path}[${i}].name`, `port name "${p.name}" used twice`);
    names.add(p.name);
    if (!(p.port >= 1 && p.port <= 65535)) check.fail(`${path}[${i}].port`, `must be between 1 and 65535, got ${p.port}`);
    if (!(PROTOCOLS as readonly string[]).includes(p.protocol)) check.fail(`${path}[${i}].protocol`, `must be one of ${PROTOCOLS.join(', ')}, got "${p.protocol}"`);
    return { name: p.name, port: p.port, protocol: p.protocol as Protocol };
  });
}

export function exportFromProto(spec: ExportSpec, cluster: string, now: number, source = 'ExportSpec'): ExportRecord {
  const check = new Checker(source);
  check.label('namespace', spec.namespace);
  check.label('name', spec.name);
  const ports = portsFromProto(check, 'ports', spec.ports);
  if (spec.ports.length > MAX_PORTS) check.fail('ports', `at most ${MAX_PORTS} ports, got ${spec.ports.length}`);
  if (spec.consumers.length > MAX_CONSUMERS) check.fail('consumers', `at most ${MAX_CONSUMERS} consumers, got ${spec.consumers.length}`);
  if (spec.readyEndpoints > spec.totalEndpoints) check.fail('readyEndpoints', `${spec.readyEndpoints} ready of ${spec.totalEndpoints} total`);
  if (spec.consumers.length <= MAX_CONSUMERS) spec.consumers.forEach((c, i) => check.label(`consumers[${i}]`, c));
  check.done();
  return {
    cluster,
    namespace: spec.namespace,
    name: spec.name,
    ports,
    readyEndpoints: spec.readyEndpoints,
    totalEndpoints: spec.totalEndpoints,
    consumers: [...new Set(spec.consumers)].sort(),
    createdAt: spec.createdAtMs > 0 && spec.createdAtMs <= now ? spec.createdAtMs : now,
  };
}

export function exportToProto(record: ExportRecord): ExportSpec {
  return {
    namespace: record.namespace,
    name: record.name,
    ports: record.ports.map((p) => ({ ...p })),
    readyEndpoints: record.readyEndpoints,
    totalEndpoints: record.totalEndpoints,
    consumers: record.consumers,
    createdAtMs: record.createdAt,
  };
}

/** A cluster description from a joining or re-registering gateway. */
export function clusterFromProto(info: ClusterInfo | undefined, source = 'ClusterInfo'): Omit<ClusterRecord, 'state' | 'stateReason' | 'stateChangedBy' | 'stateChangedAt' | 'joinedAt'> {
  const check = new Checker(source);
  if (!info) {
    check.fail('', 'required');
    check.done();
    throw new FedgateError(ErrorCodes.INTERNAL, 'unreachable');
  }
  check.label('name', info.name);
  if (!/^[a-z0-9][a-z0-9-]*$/.test(info.region)) check.fail('region', info.region === '' ? 'required' : `"${info.region}" is not a region name`);
  if (!/^[a-z0-9][a-z0-9-]*$/.test(info.zone)) check.fail('zone', info.zone === '' ? 'required' : `"${info.zone}" is not a zone name`);
  const tdProblem = trustDomainProblem(info.trustDomain);
  if (tdProblem) check.fail('trustDomain', tdProblem);
  if (info.gatewayAddresses.length === 0) check.fail('gatewayAddresses', 'at least one address is required');
  info.gatewayAddresses.forEach((a, i) => {
    if (!HOST_PORT.test(a)) check.fail(`gatewayAddresses[${i}]`, `"${a}" is not host:port`);
  });
  check.done();
  return { name: info.name, region: info.region, zone: info.zone, trustDomain: info.trustDomain, gatewayAddresses: [...info.gatewayAddresses], labels: { ...info.labels } };
}

export function clusterToProto(record: ClusterRecord): ClusterInfo {
  return {
    name: record.name,
    region: record.region,
    zone: record.zone,
    trustDomain: record.trustDomain,
    gatewayAddresses: record.gatewayAddresses,
    labels: record.labels,
    state: record.state,
    stateReason: record.stateReason,
    stateChangedBy: record.stateChangedBy,
    stateChangedAtMs: record.stateChangedAt,
    joinedAtMs: record.joinedAt,
    blackholedServices: record.blackholed ?? [],
  };
}

/** A cluster record as the controller sends it down (already valid; the state is checked). */
export function clusterRecordFromProto(info: ClusterInfo): ClusterRecord {
  const base = clusterFromProto(info, 'CatalogUpdate.clusters');
  const state = (CLUSTER_STATES as readonly string[]).includes(info.state) ? (info.state as ClusterState) : 'active';
  return {
    ...base,
    state,
    stateReason: info.stateReason,
    stateChangedBy: info.stateChangedBy,
    stateChangedAt: info.stateChangedAtMs,
    joinedAt: info.joinedAtMs,
    ...(info.blackholedServices.length > 0 ? { blackholed: [...info.blackholedServices] } : {}),
  };
}

export function bundleToProto(bundle: BundleRecord): TrustBundle {
  return { trustDomain: bundle.trustDomain, sequence: bundle.sequence, spiffeJson: bundle.spiffeJson };
}

export function bundleFromProto(bundle: TrustBundle): BundleRecord {
  return { trustDomain: bundle.trustDomain, sequence: bundle.sequence, spiffeJson: bundle.spiffeJson };
}

export function policyToProto(policy: PolicyRecord): Policy {
  return { key: policy.key, kind: policy.kind, namespace: policy.namespace, name: policy.name, json: JSON.stringify(policy.document), revision: policy.revision };
}

export function policyFromProto(policy: Policy, source = 'Policy'): PolicyRecord {
  let document: Record<string, unknown>;
  try {
    const parsed: unknown = JSON.parse(policy.json);
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new FedgateError(ErrorCodes.PROTOCOL_INVALID, 'not an object');
    document = parsed as Record<string, unknown>;
  } catch (error) {
    throw new ProtocolError([{ source, path: 'json', message: `not a JSON object (${(error as Error).message})` }]);
  }
  return { key: policy.key, kind: policy.kind, namespace: policy.namespace, name: policy.name, document, revision: policy.revision };
}

export function serviceToProto(view: ClustersetServiceView): ClustersetService {
  return {
    namespace: view.namespace,
    name: view.name,
    ports: view.ports,
    exporters: view.exporters.map((e) => ({ cluster: e.cluster, ports: e.ports, readyEndpoints: e.readyEndpoints, totalEndpoints: e.totalEndpoints, createdAtMs: e.createdAt })),
    conflicts: view.conflicts,
  };
}

export function serviceFromProto(service: ClustersetService): ClustersetServiceView {
  const check = new Checker('CatalogUpdate.services');
  check.label('namespace', service.namespace);
  check.label('name', service.name);
  const exporters = service.exporters.map((e, i) => {
    check.label(`exporters[${i}].cluster`, e.cluster);
    return { cluster: e.cluster, ports: portsFromProto(check, `exporters[${i}].ports`, e.ports), readyEndpoints: e.readyEndpoints, totalEndpoints: e.totalEndpoints, createdAt: e.createdAtMs };
  });
  const ports = service.ports.length > 0 ? portsFromProto(check, 'ports', service.ports) : [];
  check.done();
  return { namespace: service.namespace, name: service.name, ports, exporters, conflicts: service.conflicts.map((c) => ({ ...c })) };
}
