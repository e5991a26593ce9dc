/**
 * The supported subset of Istio documents, turned into native fedgate policies:
 *
 * - networking.istio.io (v1alpha3, v1beta1, v1) VirtualService → RoutePolicy (matches, weighted
 *   destinations, subsets, route timeouts), TrafficPolicy (retries) and FaultPolicy (delay, abort);
 * - networking.istio.io DestinationRule → subsets (cluster labels), TrafficPolicy (connection pool,
 *   outlier detection incl. the older consecutiveErrors) and FailoverPolicy (localityLbSetting);
 * - security.istio.io/v1beta1 AuthorizationPolicy → AuthorizationPolicy.
 *
 * Pod labels never leave a cluster, so a subset's labels select *clusters* by their labels
 * (metadata.labels of the cluster, e.g. version: v2). Every field outside the subset is reported
 * as a "not supported" warning with its path. Where ignoring a field would widen access (a `when`
 * condition or an IP block on an ALLOW rule) the rule is dropped instead, so it allows nothing.
 */
import { closest } from '../../config/shape.js';
import { parseDuration } from '../../core/duration.js';
import type { InputIssue } from '../../core/errors.js';
import { NATIVE_API_VERSION, NATIVE_KINDS, TRAFFIC_LIMITS } from '../kinds.js';
import { TrustDomainResolver } from '../trust-domains.js';

export const ISTIO_NETWORKING_VERSIONS = ['networking.istio.io/v1alpha3', 'networking.istio.io/v1beta1', 'networking.istio.io/v1'];
export const ISTIO_SECURITY_VERSIONS = ['security.istio.io/v1beta1', 'security.istio.io/v1'];

/** The Istio kinds fedgate imports, with the apiVersion to suggest for each. */
export const ISTIO_KINDS: Readonly<Record<string, string>> = { VirtualService: 'networking.istio.io/v1', DestinationRule: 'networking.istio.io/v1', AuthorizationPolicy: 'security.istio.io/v1' };

export interface ConvertOptions {
  /** Trust-domain aliases and members, for principals that can match no caller. */
  resolver?: TrustDomainResolver;
  /** A subset no DestinationRule of the set defines: see PolicyContext.unresolvedSubsets. */
  unresolvedSubsets?: 'error' | 'warning';
}

export interface IstioInput {
  document: Record<string, unknown>;
  source: string;
  /** Line of a field path in the source file, when known. */
  lineOf?: (path: ReadonlyArray<string | number>) => number | undefined;
}

/** A native document produced from an Istio one, still unvalidated (it is checked like any other). */
export interface ConvertedDocument {
  kind: 'TrafficPolicy' | 'RoutePolicy' | 'FailoverPolicy' | 'AuthorizationPolicy' | 'FaultPolicy';
  name: string;
  namespace: string;
  spec: Record<string, unknown>;
  /** The Istio document it came from (for messages). */
  from: string;
  source: string;
}

export function isIstio(document: Record<string, unknown>): boolean {
  const api = String(document.apiVersion ?? '');
  return api.startsWith('networking.istio.io/') || api.startsWith('security.istio.io/');
}

type Path = Array<string | number>;

class Reporter {
  /**
   * One VirtualService with several hosts walks its http[] once per host; a problem found on each
   * walk is still one problem.
   */
  private readonly seen = new Set<string>();

  constructor(
    private readonly input: IstioInput,
    private readonly issues: InputIssue[],
    private readonly warnings: InputIssue[],
  ) {}

  private at(path: Path): { source: string; line?: number; path: string } {
    return { source: this.input.source, line: this.input.lineOf?.(path), path: formatPath(path) };
  }

  private once(severity: string, path: Path, message: string): boolean {
    const key = `${severity}|${formatPath(path)}|${message}`;
    if (this.seen.has(key)) return false;
    this.seen.add(key);
    return true;
  }

  error(path: Path, message: string): void {
    if (this.once('error', path, message)) this.issues.push({ ...this.at(path), message, severity: 'error' });
  }

  warn(path: Path, message = 'not supported, ignored'): void {
    if (this.once('warning', path, message)) this.warnings.push({ ...this.at(path), message, severity: 'warning' });
  }

  /** Warns about every key of `value` not in `known`. */
  unknown(value: unknown, path: Path, known: readonly string[], message?: string): void {
    if (!isObject(value)) return;
    for (const key of Object.keys(value)) if (!known.includes(key)) this.warn([...path, key], message);
  }
}

function formatPath(path: ReadonlyArray<string | number>): string {
  let out = '';
  for (const part of path) out += typeof part === 'number' ? `[${part}]` : out === '' ? part : `.${part}`;
  return out;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

function list(value: unknown): unknown[] {
  return Array.isArray(value) ? value : [];
}

/** Istio durations are Go/protobuf style ("1s", "0.5s", "100ms"): kept as strings for the native shapes. */
function duration(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

/** payments, payments.shop, payments.shop.svc.cluster.local, payments.shop.svc.clusterset.local. */
function serviceOfHost(host: unknown, namespace: string): { name: string; namespace: string } | undefined {
  if (typeof host !== 'string' || host.includes('*')) return undefined;
  const parts = host.split('.');
  if (parts.length === 1) return { name: parts[0] as string, namespace };
  if (parts.length === 2) return { name: parts[0] as string, namespace: parts[1] as string };
  if (parts.length >= 4 && parts[2] === 'svc') return { name: parts[0] as string, namespace: parts[1] as string };
  return undefined;
}

const RETRY_ON_MAP: Record<string, string> = {
  '5xx': '5xx',
  'gateway-error': 'gateway-error',
  reset: 'reset',
  'connect-failure': 'connect-failure',
  'refused-stream': 'connect-failure',
  'retriable-4xx': 'retriable-4xx',
  unavailable: 'unavailable',
};

const GRPC_CODES: Record<string, number> = {
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
};

function percentage(r: Reporter, value: Record<string, unknown>, path: Path): number {
  if (isObject(value.percentage) && typeof value.percentage.value === 'number') return value.percentage.value;
  if (typeof value.percent === 'number') return value.percent;
  if (value.percentage !== undefined) r.error([...path, 'percentage', 'value'], 'must be a number between 0 and 100');
  return 100;
}

/**
 * An Istio integer outside fedgate's range, clamped with a warning that names the value used. Istio's
 * proto3 integers are 0 when unset, and several of its defaults are 2^32-1, so documents written for
 * Istio routinely carry values fedgate has no use for; refusing them would refuse the document.
 */
function clampInt(r: Reporter, value: unknown, path: Path, limits: { min: number; max?: number }): number | undefined {
  if (typeof value !== 'number' || !Number.isInteger(value)) {
    r.error(path, `must be an integer, got ${JSON.stringify(value)}`);
    return undefined;
  }
  if (value < limits.min) {
    r.warn(path, `${value} is below fedgate's minimum ${limits.min}; using ${limits.min}`);
    return limits.min;
  }
  if (limits.max !== undefined && value > limits.max) {
    r.warn(path, `${value} is above fedgate's maximum ${limits.max}; using ${limits.max}`);
    return limits.max;
  }
  return value;
}

/** An Istio duration clamped to fedgate's range (kept as written when inside it, so messages quote it). */
function clampDuration(r: Reporter, value: unknown, path: Path, limits: { min: number; max?: number }): unknown {
  if (typeof value !== 'string') return value;
  let ms: number;
  try {
    ms = parseDuration(value);
  } catch {
    return value; // the native shape reports it
  }
  if (ms < limits.min) {
    r.warn(path, `${value} is below fedgate's minimum ${limits.min}ms; using ${limits.min}ms`);
    return `${limits.min}ms`;
  }
  if (limits.max !== undefined && ms > limits.max) {
    r.warn(path, `${value} is above fedgate's maximum ${limits.max}ms; using ${limits.max}ms`);
    return `${limits.max}ms`;
  }
  return value;
}

/**
 * Converts every Istio document of a set. DestinationRules are read first: VirtualService subsets
 * refer to them.
 */
export function convertIstio(inputs: readonly IstioInput[], options: ConvertOptions = {}): { documents: ConvertedDocument[]; issues: InputIssue[]; warnings: InputIssue[] } {
  const resolver = options.resolver ?? new TrustDomainResolver();
  const unresolvedSubsets = options.unresolvedSubsets ?? 'error';
  const issues: InputIssue[] = [];
  const warnings: InputIssue[] = [];
  const documents: ConvertedDocument[] = [];
  const subsets = new Map<string, Map<string, Record<string, string>>>();
  const ordered = [...inputs].sort((a, b) => Number(b.document.kind === 'DestinationRule') - Number(a.document.kind === 'DestinationRule'));
  for (const input of ordered) {
    const r = new Reporter(input, issues, warnings);
    const doc = input.document;
    const kind = String(doc.kind ?? '');
    const api = String(doc.apiVersion ?? '');
    const metadata = isObject(doc.metadata) ? doc.metadata : {};
    const name = String(metadata.name ?? '');
    const namespace = String(metadata.namespace ?? 'default');
    const spec = isObject(doc.spec) ? doc.spec : undefined;
    if (!spec) {
      r.error(['spec'], 'required');
      continue;
    }
    const ctx: Ctx = { r, name, namespace, source: input.source, from: `${kind} ${namespace}/${name}`, resolver, unresolvedSubsets };
    const errorsBefore = issues.length;
    let converted: ConvertedDocument[] = [];
    if (kind === 'DestinationRule' && ISTIO_NETWORKING_VERSIONS.includes(api)) converted = destinationRule(ctx, spec, subsets);
    else if (kind === 'VirtualService' && ISTIO_NETWORKING_VERSIONS.includes(api)) converted = virtualService(ctx, spec, subsets);
    else if (kind === 'AuthorizationPolicy' && ISTIO_SECURITY_VERSIONS.includes(api)) converted = authorizationPolicy(ctx, spec);
    else {
      const known = ISTIO_KINDS[kind];
      const nearest = closest(kind, Object.keys(ISTIO_KINDS));
      const hint = known
        ? ` (${kind} needs apiVersion ${known})`
        : (NATIVE_KINDS as readonly string[]).includes(kind)
          ? ` (${kind} is a fedgate kind: apiVersion ${NATIVE_API_VERSION})`
          : nearest
            ? ` (did you mean "${nearest}"?)`
            : '';
      r.error(['kind'], `${api} ${kind} is not supported (supported: networking.istio.io VirtualService and DestinationRule, security.istio.io AuthorizationPolicy)${hint}`);
    }
    // A document with errors is reported once, in its own terms, not again as the policies it would make.
    if (issues.length === errorsBefore) documents.push(...converted);
  }
  return { documents, issues, warnings };
}

interface Ctx {
  r: Reporter;
  name: string;
  namespace: string;
  source: string;
  from: string;
  resolver: TrustDomainResolver;
  unresolvedSubsets: 'error' | 'warning';
}

function destinationRule(ctx: Ctx, spec: Record<string, unknown>, subsets: Map<string, Map<string, Record<string, string>>>): ConvertedDocument[] {
  const { r } = ctx;
  r.unknown(spec, ['spec'], ['host', 'trafficPolicy', 'subsets']);
  const service = serviceOfHost(spec.host, ctx.namespace);
  if (!service) {
    r.error(['spec', 'host'], `"${String(spec.host)}" is not a service host (name, name.namespace or name.namespace.svc.cluster.local; no wildcards)`);
    return [];
  }
  const key = `${service.namespace}/${service.name}`;
  const known = subsets.get(key) ?? new Map<string, Record<string, string>>();
  list(spec.subsets).forEach((subset, i) => {
    if (!isObject(subset) || typeof subset.name !== 'string') {
      r.error(['spec', 'subsets', i, 'name'], 'required');
      return;
    }
    r.unknown(subset, ['spec', 'subsets', i], ['name', 'labels'], 'not supported, ignored (subsets select clusters by their labels)');
    known.set(subset.name, isObject(subset.labels) ? (subset.labels as Record<string, string>) : {});
  });
  subsets.set(key, known);
  const out: ConvertedDocument[] = [];
  const policy = isObject(spec.trafficPolicy) ? spec.trafficPolicy : undefined;
  if (!policy) return out;
  r.unknown(policy, ['spec', 'trafficPolicy'], ['connectionPool', 'outlierDetection', 'loadBalancer']);
  const traffic: Record<string, unknown> = { service: service.name };
  const pool = isObject(policy.connectionPool) ? policy.connectionPool : undefined;
  if (pool) {
    r.unknown(pool, ['spec', 'trafficPolicy', 'connectionPool'], ['tcp', 'http']);
    const mapped: Record<string, unknown> = {};
    const base = ['spec', 'trafficPolicy', 'connectionPool'];
    // Istio's 0 is "not set" (proto3): its default applies there, fedgate's here.
    const unset = (value: unknown, path: Path): boolean => {
      if (value !== 0) return false;
      r.warn(path, '0 leaves the value unset in Istio; fedgate\'s default applies');
      return true;
    };
    if (isObject(pool.tcp)) {
      r.unknown(pool.tcp, [...base, 'tcp'], ['maxConnections']);
      const path = [...base, 'tcp', 'maxConnections'];
      if (pool.tcp.maxConnections !== undefined && !unset(pool.tcp.maxConnections, path)) mapped.maxConnections = clampInt(r, pool.tcp.maxConnections, path, TRAFFIC_LIMITS.maxConnections);
    }
    if (isObject(pool.http)) {
      r.unknown(pool.http, [...base, 'http'], ['http1MaxPendingRequests', 'http2MaxRequests', 'maxRequestsPerConnection']);
      const pending = pool.http.http1MaxPendingRequests;
      if (pending !== undefined && !unset(pending, [...base, 'http', 'http1MaxPendingRequests'])) mapped.maxPendingRequests = clampInt(r, pending, [...base, 'http', 'http1MaxPendingRequests'], { min: 1 });
      const requests = pool.http.http2MaxRequests;
      if (requests !== undefined && !unset(requests, [...base, 'http', 'http2MaxRequests'])) mapped.maxRequests = clampInt(r, requests, [...base, 'http', 'http2MaxRequests'], { min: 1 });
      // 0 is "unlimited" in both.
      if (pool.http.maxRequestsPerConnection !== undefined) mapped.maxRequestsPerConnection = clampInt(r, pool.http.maxRequestsPerConnection, [...base, 'http', 'maxRequestsPerConnection'], { min: 0 });
    }
    if (Object.keys(mapped).length > 0) traffic.connectionPool = mapped;
  }
  const outlier = isObject(policy.outlierDetection) ? policy.outlierDetection : undefined;
  if (outlier) {
    const base = ['spec', 'trafficPolicy', 'outlierDetection'];
    r.unknown(outlier, base, ['consecutive5xxErrors', 'consecutiveErrors', 'consecutiveGatewayErrors', 'interval', 'baseEjectionTime', 'maxEjectionPercent']);
    const mapped: Record<string, unknown> = {};
    // consecutiveErrors is the field's name before Istio 1.5; consecutive5xxErrors replaced it.
    const consecutiveKey = outlier.consecutive5xxErrors !== undefined ? 'consecutive5xxErrors' : outlier.consecutiveErrors !== undefined ? 'consecutiveErrors' : outlier.consecutiveGatewayErrors !== undefined ? 'consecutiveGatewayErrors' : undefined;
    const consecutive = consecutiveKey ? outlier[consecutiveKey] : undefined;
    if (consecutiveKey && consecutive === 0) {
      r.warn([...base, consecutiveKey], '0 turns this ejection off in Istio; fedgate always ejects a failing cluster, by the federation default (spec.defaults.outlierDetection)');
    } else if (consecutiveKey && consecutive !== undefined) {
      mapped.consecutiveErrors = clampInt(r, consecutive, [...base, consecutiveKey], TRAFFIC_LIMITS.consecutiveErrors);
    }
    if (outlier.consecutive5xxErrors !== undefined && outlier.consecutiveErrors !== undefined) r.warn([...base, 'consecutiveErrors'], 'ignored: consecutive5xxErrors takes precedence');
    if (outlier.consecutiveGatewayErrors !== undefined && (outlier.consecutive5xxErrors !== undefined || outlier.consecutiveErrors !== undefined)) {
      // fedgate counts one kind of consecutive error; the gateway-error count (502/503/504 only) cannot be kept beside it.
      r.warn([...base, 'consecutiveGatewayErrors'], `ignored: ${outlier.consecutive5xxErrors !== undefined ? 'consecutive5xxErrors' : 'consecutiveErrors'} takes precedence`);
    }
    if (outlier.interval !== undefined) mapped.interval = clampDuration(r, outlier.interval, [...base, 'interval'], TRAFFIC_LIMITS.outlierIntervalMs);
    if (outlier.baseEjectionTime !== undefined) mapped.baseEjectionTime = clampDuration(r, outlier.baseEjectionTime, [...base, 'baseEjectionTime'], TRAFFIC_LIMITS.baseEjectionTimeMs);
    if (outlier.maxEjectionPercent !== undefined) mapped.maxEjectionPercent = outlier.maxEjectionPercent;
    if (Object.keys(mapped).length > 0) traffic.outlierDetection = mapped;
  }
  if (traffic.connectionPool || traffic.outlierDetection) out.push({ kind: 'TrafficPolicy', name: `${ctx.name}.destinationrule`, namespace: service.namespace, spec: traffic, from: ctx.from, source: ctx.source });
  const lb = isObject(policy.loadBalancer) ? policy.loadBalancer : undefined;
  if (lb) {
    const base = ['spec', 'trafficPolicy', 'loadBalancer'];
    r.unknown(lb, base, ['localityLbSetting'], 'not supported, ignored (fedgate balances by locality and health)');
    const locality = isObject(lb.localityLbSetting) ? lb.localityLbSetting : undefined;
    if (locality && locality.enabled !== false) {
      r.unknown(locality, [...base, 'localityLbSetting'], ['distribute', 'failover', 'enabled']);
      const failover: Record<string, unknown> = { service: service.name };
      const byFrom = new Map<string, string[]>();
      list(locality.failover).forEach((f, i) => {
        if (!isObject(f) || typeof f.from !== 'string' || typeof f.to !== 'string') {
          r.error([...base, 'localityLbSetting', 'failover', i], 'needs from and to (regions)');
          return;
        }
        byFrom.set(f.from, [...(byFrom.get(f.from) ?? []), f.to]);
      });
      if (byFrom.size > 0) failover.failover = [...byFrom].map(([from, to]) => ({ from, to }));
      const distribute: Array<{ from: string; to: Record<string, number> }> = [];
      list(locality.distribute).forEach((d, i) => {
        if (!isObject(d) || typeof d.from !== 'string' || !isObject(d.to)) {
          r.error([...base, 'localityLbSetting', 'distribute', i], 'needs from and to');
          return;
        }
        // Istio localities are region/zone/subzone with wildcards; fedgate distributes by region (or cluster).
        const from = d.from.split('/')[0] as string;
        if (d.from.split('/').slice(1).some((part) => part !== '*')) r.warn([...base, 'localityLbSetting', 'distribute', i, 'from'], 'zones are not supported: distributing from the whole region');
        const to: Record<string, number> = {};
        for (const [locality, weight] of Object.entries(d.to)) {
          const region = locality.split('/')[0] as string;
          if (locality.split('/').slice(1).some((part) => part !== '*')) r.warn([...base, 'localityLbSetting', 'distribute', i, 'to', locality], 'zones are not supported: using the region');
          to[region] = (to[region] ?? 0) + Number(weight);
        }
        distribute.push({ from, to });
      });
      if (distribute.length > 0) failover.distribute = distribute;
      if (failover.failover || failover.distribute) out.push({ kind: 'FailoverPolicy', name: `${ctx.name}.destinationrule`, namespace: service.namespace, spec: failover, from: ctx.from, source: ctx.source });
    }
  }
  return out;
}

function requestMatches(r: Reporter, matches: unknown, path: Path): { matches: Array<Record<string, unknown>>; ok: boolean } {
  const out: Array<Record<string, unknown>> = [];
  let ok = true;
  list(matches).forEach((m, i) => {
    if (!isObject(m)) return;
    const at = [...path, i];
    r.unknown(m, at, ['uri', 'headers', 'method', 'name']);
    const native: Record<string, unknown> = {};
    if (isObject(m.uri)) {
      r.unknown(m.uri, [...at, 'uri'], ['exact', 'prefix', 'regex']);
      native.path = { ...(m.uri.exact !== undefined ? { exact: m.uri.exact } : {}), ...(m.uri.prefix !== undefined ? { prefix: m.uri.prefix } : {}), ...(m.uri.regex !== undefined ? { regex: m.uri.regex } : {}) };
    }
    if (isObject(m.headers)) {
      const headers: Record<string, unknown> = {};
      for (const [name, value] of Object.entries(m.headers)) {
        if (!isObject(value)) continue;
        r.unknown(value, [...at, 'headers', name], ['exact', 'prefix', 'regex']);
        headers[name.toLowerCase()] = { ...(value.exact !== undefined ? { exact: value.exact } : {}), ...(value.prefix !== undefined ? { prefix: value.prefix } : {}), ...(value.regex !== undefined ? { regex: value.regex } : {}) };
      }
      native.headers = headers;
    }
    if (isObject(m.method)) {
      if (typeof m.method.exact === 'string') native.methods = [m.method.exact];
      else {
        r.error([...at, 'method'], 'only method.exact is supported');
        ok = false;
      }
    }
    out.push(native);
  });
  return { matches: out, ok };
}

function virtualService(ctx: Ctx, spec: Record<string, unknown>, subsets: Map<string, Map<string, Record<string, string>>>): ConvertedDocument[] {
  const { r } = ctx;
  r.unknown(spec, ['spec'], ['hosts', 'http', 'gateways']);
  const gateways = list(spec.gateways);
  if (gateways.some((g) => g !== 'mesh')) r.warn(['spec', 'gateways'], 'not supported, ignored (fedgate policies apply between clusters, not at ingress gateways)');
  const hosts = list(spec.hosts);
  if (hosts.length === 0) {
    r.error(['spec', 'hosts'], 'required');
    return [];
  }
  const out: ConvertedDocument[] = [];
  hosts.forEach((host, hostIndex) => {
    const service = serviceOfHost(host, ctx.namespace);
    if (!service) {
      r.error(['spec', 'hosts', hostIndex], `"${String(host)}" is not a service host (name, name.namespace or name.namespace.svc.cluster.local; no wildcards)`);
      return;
    }
    const suffix = hosts.length > 1 ? `-${hostIndex}` : '';
    const routes: Array<Record<string, unknown>> = [];
    const faults: Array<Record<string, unknown>> = [];
    let retries: Record<string, unknown> | undefined;
    let retriesFrom = -1;
    list(spec.http).forEach((http, i) => {
      if (!isObject(http)) return;
      const at: Path = ['spec', 'http', i];
      r.unknown(http, at, ['name', 'match', 'route', 'timeout', 'retries', 'fault']);
      const { matches } = requestMatches(r, http.match, [...at, 'match']);
      const destinations: Array<Record<string, unknown>> = [];
      const routeList = list(http.route);
      if (routeList.length === 0) r.error([...at, 'route'], 'at least one route is required');
      let sum = 0;
      let weightMissing = false;
      routeList.forEach((route, k) => {
        if (!isObject(route) || !isObject(route.destination)) {
          r.error([...at, 'route', k, 'destination'], 'required');
          return;
        }
        r.unknown(route, [...at, 'route', k], ['destination', 'weight']);
        r.unknown(route.destination, [...at, 'route', k, 'destination'], ['host', 'subset', 'port'], 'not supported, ignored');
        if (route.destination.port !== undefined) r.warn([...at, 'route', k, 'destination', 'port'], 'not supported, ignored (the route applies to the service at every port)');
        const target = serviceOfHost(route.destination.host, ctx.namespace);
        if (!target || target.name !== service.name || target.namespace !== service.namespace) {
          r.error([...at, 'route', k, 'destination', 'host'], `routes to another service are not supported (${String(route.destination.host)} is not ${service.name}.${service.namespace})`);
          return;
        }
        // Istio: a single destination takes all traffic, whatever weight it names.
        const weight = routeList.length === 1 ? 100 : typeof route.weight === 'number' ? route.weight : 0;
        if (typeof route.weight !== 'number' && routeList.length > 1) {
          r.error([...at, 'route', k, 'weight'], 'required when a route has several destinations');
          weightMissing = true;
        }
        sum += weight;
        let labels: Record<string, string> = {};
        if (typeof route.destination.subset === 'string') {
          const known = subsets.get(`${service.namespace}/${service.name}`)?.get(route.destination.subset);
          const path = [...at, 'route', k, 'destination', 'subset'];
          const subset = route.destination.subset;
          if (known) labels = known;
          else if (ctx.unresolvedSubsets === 'warning') {
            // Checked again where the set is complete: the controller, against its stored DestinationRules.
            r.warn(path, `subset "${subset}" is not defined by a DestinationRule for ${service.name}.${service.namespace} in these documents; the controller looks for it among its stored DestinationRules when you apply`);
          } else {
            r.error(path, `subset "${subset}" is not defined by a DestinationRule for ${service.name}.${service.namespace}, neither in the documents applied nor among those stored`);
            return;
          }
        }
        destinations.push({ labels, weight });
      });
      if (routeList.length > 1 && !weightMissing && sum !== 100) r.error([...at, 'route', routeList.length - 1, 'weight'], `weights must sum to 100 (got ${sum})`);
      const name = typeof http.name === 'string' && /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(http.name) ? http.name : `http-${i}`;
      routes.push({ name, match: matches, destinations, ...(duration(http.timeout) ? { timeout: http.timeout } : {}) });
      if (isObject(http.retries)) {
        r.unknown(http.retries, [...at, 'retries'], ['attempts', 'perTryTimeout', 'retryOn']);
        const retryOn = typeof http.retries.retryOn === 'string' ? http.retries.retryOn.split(',').map((s) => s.trim()).filter(Boolean) : undefined;
        const mapped = retryOn?.filter((c) => {
          if (RETRY_ON_MAP[c]) return true;
          r.warn([...at, 'retries', 'retryOn'], `retry condition "${c}" not supported, ignored`);
          return false;
        });
        const converted = {
          attempts: http.retries.attempts === undefined ? undefined : clampInt(r, http.retries.attempts, [...at, 'retries', 'attempts'], TRAFFIC_LIMITS.retryAttempts),
          ...(http.retries.perTryTimeout !== undefined ? { perTryTimeout: http.retries.perTryTimeout } : {}),
          ...(mapped && mapped.length > 0 ? { retryOn: [...new Set(mapped.map((c) => RETRY_ON_MAP[c]))] } : {}),
        };
        if (!retries) {
          retries = converted;
          retriesFrom = i;
        } else if (JSON.stringify(retries) !== JSON.stringify(converted)) {
          r.warn([...at, 'retries'], `per-route retries are not supported; the retries of spec.http[${retriesFrom}] apply to the whole service`);
        }
      }
      if (isObject(http.fault)) {
        r.unknown(http.fault, [...at, 'fault'], ['delay', 'abort']);
        const fault: Record<string, unknown> = { match: matches };
        const delay = isObject(http.fault.delay) ? http.fault.delay : undefined;
        if (delay) {
          r.unknown(delay, [...at, 'fault', 'delay'], ['fixedDelay', 'percentage', 'percent']);
          fault.delay = { fixedDelay: clampDuration(r, delay.fixedDelay, [...at, 'fault', 'delay', 'fixedDelay'], TRAFFIC_LIMITS.faultDelayMs), percentage: percentage(r, delay, [...at, 'fault', 'delay']) };
        }
        const abort = isObject(http.fault.abort) ? http.fault.abort : undefined;
        if (abort) {
          r.unknown(abort, [...at, 'fault', 'abort'], ['httpStatus', 'grpcStatus', 'percentage']);
          const grpcStatus = typeof abort.grpcStatus === 'string' ? GRPC_CODES[abort.grpcStatus] : undefined;
          if (typeof abort.grpcStatus === 'string' && grpcStatus === undefined) r.error([...at, 'fault', 'abort', 'grpcStatus'], `"${abort.grpcStatus}" is not a gRPC status name`);
          fault.abort = { httpStatus: abort.httpStatus ?? 503, ...(grpcStatus ? { grpcStatus } : {}), percentage: percentage(r, abort, [...at, 'fault', 'abort']) };
        }
        faults.push(fault);
      }
    });
    const name = `${ctx.name}${suffix}.virtualservice`;
    if (routes.length > 0) out.push({ kind: 'RoutePolicy', name, namespace: service.namespace, spec: { service: service.name, routes }, from: ctx.from, source: ctx.source });
    if (faults.length > 0) out.push({ kind: 'FaultPolicy', name, namespace: service.namespace, spec: { service: service.name, faults }, from: ctx.from, source: ctx.source });
    if (retries) out.push({ kind: 'TrafficPolicy', name, namespace: service.namespace, spec: { service: service.name, retries }, from: ctx.from, source: ctx.source });
  });
  return out;
}

/** Istio principals are SPIFFE IDs without the scheme ("cluster.local/ns/x/sa/y"). */
function principal(r: Reporter, value: unknown, path: Path): string | undefined {
  if (typeof value !== 'string') return undefined;
  if (value === '*') return '*';
  if (value.startsWith('*/') || value.startsWith('spiffe://')) return value;
  if (value.startsWith('*') || (value.endsWith('*') && !value.endsWith('/*'))) {
    r.error(path, `"${value}": fedgate matches principals at path-segment boundaries only ("td/ns/shop/*" or "*/sa/web")`);
    return undefined;
  }
  return `spiffe://${value}`;
}

function authorizationPolicy(ctx: Ctx, spec: Record<string, unknown>): ConvertedDocument[] {
  const { r } = ctx;
  r.unknown(spec, ['spec'], ['selector', 'action', 'rules']);
  const action = spec.action ?? 'ALLOW';
  if (action !== 'ALLOW' && action !== 'DENY') {
    r.error(['spec', 'action'], `${String(action)} is not supported (ALLOW or DENY)`);
    return [];
  }
  let service: string | undefined;
  if (isObject(spec.selector)) {
    r.unknown(spec.selector, ['spec', 'selector'], ['matchLabels']);
    const labels = isObject(spec.selector.matchLabels) ? (spec.selector.matchLabels as Record<string, unknown>) : {};
    const name = labels.app ?? labels['app.kubernetes.io/name'];
    // Workloads are selected by labels in Istio; across clusters fedgate knows services, so the
    // app label names the service.
    if (typeof name === 'string') service = name;
    for (const key of Object.keys(labels)) if (key !== 'app' && key !== 'app.kubernetes.io/name') r.warn(['spec', 'selector', 'matchLabels', key], 'not supported, ignored (the app label selects the service)');
    if (service === undefined) r.error(['spec', 'selector', 'matchLabels'], 'needs an app (or app.kubernetes.io/name) label naming the service');
  }
  const allow = action === 'ALLOW';
  const rules: Array<Record<string, unknown>> = [];
  list(spec.rules).forEach((rule, i) => {
    if (!isObject(rule)) return;
    const at: Path = ['spec', 'rules', i];
    let widening = false;
    const note = (path: Path, what: string): void => {
      if (allow) {
        widening = true;
        r.warn(path, `${what} not supported: this ALLOW rule is dropped (ignoring it would allow more)`);
      } else {
        r.warn(path, `${what} not supported, ignored (the DENY rule applies without it, denying more)`);
      }
    };
    for (const key of Object.keys(rule)) if (!['from', 'to', 'when'].includes(key)) note([...at, key], `"${key}"`);
    if (rule.when !== undefined) note([...at, 'when'], 'conditions ("when") are');
    const from: Array<Record<string, unknown>> = [];
    list(rule.from).forEach((f, j) => {
      const source = isObject(f) && isObject(f.source) ? f.source : undefined;
      if (!source) return;
      const sp: Path = [...at, 'from', j, 'source'];
      const native: Record<string, unknown> = {};
      for (const key of Object.keys(source)) {
        if (key === 'principals' || key === 'notPrincipals') {
          const converted = list(source[key])
            .map((p, k) => {
              const native = principal(r, p, [...sp, key, k]);
              const problem = native === undefined ? undefined : ctx.resolver.principalProblem(native, String(p));
              if (problem) r.warn([...sp, key, k], problem);
              return native;
            })
            .filter((p): p is string => p !== undefined);
          if (converted.length > 0) native[key] = converted;
        } else if (key === 'namespaces') native.namespaces = source.namespaces;
        else note([...sp, key], `"${key}"`);
      }
      from.push(native);
    });
    const to: Array<Record<string, unknown>> = [];
    list(rule.to).forEach((t, j) => {
      const operation = isObject(t) && isObject(t.operation) ? t.operation : undefined;
      if (!operation) return;
      const op: Path = [...at, 'to', j, 'operation'];
      const native: Record<string, unknown> = {};
      for (const key of Object.keys(operation)) {
        if (key === 'methods' || key === 'paths') native[key] = operation[key];
        else if (key === 'ports') native.ports = list(operation.ports).map((p) => Number(p));
        else note([...op, key], `"${key}"`);
      }
      to.push(native);
    });
    if (widening) return;
    rules.push({ ...(from.length > 0 ? { from } : {}), ...(to.length > 0 ? { to } : {}) });
  });
  return [{ kind: 'AuthorizationPolicy', name: ctx.name, namespace: ctx.namespace, spec: { ...(service ? { service } : {}), action, rules }, from: ctx.from, source: ctx.source }];
}
