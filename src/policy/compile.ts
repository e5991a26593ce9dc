import type { InputIssue } from '../core/errors.js';
import { closest, formatPath, type FieldPath, type ShapeIssue } from '../config/shape.js';
import { readEnvelope } from './envelope.js';
import { convertIstio, isIstio, ISTIO_KINDS, ISTIO_NETWORKING_VERSIONS, ISTIO_SECURITY_VERSIONS, type IstioInput } from './istio/convert.js';
import {
  metadataShape,
  NATIVE_API_VERSION,
  NATIVE_KINDS,
  SPEC_SHAPES,
  type AuthorizationSpec,
  type FailoverSpec,
  type FaultSpec,
  type NativeKind,
  type RouteSpec,
  type TrafficSpec,
} from './kinds.js';
import { TrustDomainResolver, type PolicyContext } from './trust-domains.js';

/** One document of a policy set, with where it came from. */
export interface PolicyInput {
  document: unknown;
  /** File (or other origin) named in messages. */
  source: string;
  lineOf?: (path: FieldPath) => number | undefined;
}

interface CompiledBase {
  /** The stored document this one comes from (`<kind>/<namespace>/<name>`). */
  origin: string;
  name: string;
  namespace: string;
  /** Absent: every service of the namespace. */
  service: string | undefined;
  /** Absent: every cluster. */
  clusters: readonly string[] | undefined;
}

export type CompiledPolicy =
  | (CompiledBase & { kind: 'TrafficPolicy'; spec: TrafficSpec })
  | (CompiledBase & { kind: 'RoutePolicy'; spec: RouteSpec })
  | (CompiledBase & { kind: 'FailoverPolicy'; spec: FailoverSpec })
  | (CompiledBase & { kind: 'AuthorizationPolicy'; spec: AuthorizationSpec })
  | (CompiledBase & { kind: 'FaultPolicy'; spec: FaultSpec });

export interface CompiledPolicySet {
  policies: readonly CompiledPolicy[];
}

export interface CompileResult {
  set: CompiledPolicySet;
  issues: InputIssue[];
  warnings: InputIssue[];
  /** The identity of each input document (`<kind>/<namespace>/<name>`), in input order; undefined when unreadable. */
  keys: Array<string | undefined>;
}

function located(input: PolicyInput, path: FieldPath, message: string, severity: 'error' | 'warning' = 'error'): InputIssue {
  return { source: input.source, line: input.lineOf?.(path), path: formatPath(path), message, severity };
}

/** " (did you mean "X"?)" when a known name is near enough to be a useful hint. */
function didYouMean(value: string, known: readonly string[]): string {
  const hint = closest(value, known);
  return hint && hint !== value ? ` (did you mean "${hint}"?)` : '';
}

/** An unsupported apiVersion or kind, said with the nearest supported one. */
function unsupportedEnvelope(apiVersion: string, kind: string): { path: FieldPath; message: string } | undefined {
  if (apiVersion !== NATIVE_API_VERSION) {
    const versions = [NATIVE_API_VERSION, ...ISTIO_NETWORKING_VERSIONS, ...ISTIO_SECURITY_VERSIONS];
    return { path: ['apiVersion'], message: `"${apiVersion}" is not supported (use ${NATIVE_API_VERSION}, or networking.istio.io / security.istio.io documents)${didYouMean(apiVersion, versions)}` };
  }
  if ((NATIVE_KINDS as readonly string[]).includes(kind)) return undefined;
  const istioApi = ISTIO_KINDS[kind];
  if (istioApi) return { path: ['kind'], message: `${kind} is an Istio kind: give it apiVersion ${istioApi}, or use the native kinds (${NATIVE_KINDS.join(', ')})` };
  return { path: ['kind'], message: `must be one of ${NATIVE_KINDS.join(', ')}, got "${kind}"${didYouMean(kind, NATIVE_KINDS)}` };
}

/** Principals and trust domains of a native AuthorizationPolicy that can match no caller. */
function trustDomainWarnings(spec: AuthorizationSpec, resolver: TrustDomainResolver, at: (path: FieldPath, message: string) => void): void {
  spec.rules?.forEach((rule, i) => {
    rule.from?.forEach((source, j) => {
      for (const key of ['principals', 'notPrincipals'] as const) {
        source[key]?.forEach((pattern, k) => {
          const problem = resolver.principalProblem(pattern);
          if (problem) at(['spec', 'rules', i, 'from', j, key, k], problem);
        });
      }
      source.trustDomains?.forEach((td, k) => {
        const problem = resolver.problem(td);
        if (problem) at(['spec', 'rules', i, 'from', j, 'trustDomains', k], problem);
      });
    });
  });
}

/** Cross-field rules the schemas cannot express. */
function semanticChecks(kind: NativeKind, spec: unknown, at: (path: FieldPath, message: string) => void): void {
  if (kind === 'RoutePolicy') {
    const routes = (spec as RouteSpec).routes;
    routes.forEach((route, i) => {
      const weights = route.destinations.map((d) => d.weight ?? (route.destinations.length === 1 ? 100 : undefined));
      route.destinations.forEach((d, j) => {
        if (d.weight === undefined && route.destinations.length > 1) at(['spec', 'routes', i, 'destinations', j, 'weight'], 'required when a route has several destinations');
      });
      const sum = weights.reduce<number>((total, w) => total + (w ?? 0), 0);
      if (weights.every((w) => w !== undefined) && sum !== 100) at(['spec', 'routes', i, 'destinations'], `weights must sum to 100 (got ${sum})`);
      if (route.match.length === 0 && i < routes.length - 1) at(['spec', 'routes', i, 'match'], `a route without matches takes every request: routes after it (${routes[i + 1]?.name}) would never apply`);
    });
  }
  if (kind === 'FailoverPolicy') {
    const s = spec as FailoverSpec;
    s.distribute?.forEach((d, i) => {
      const sum = Object.values(d.to).reduce((total, w) => total + w, 0);
      if (sum !== 100) at(['spec', 'distribute', i, 'to'], `weights must sum to 100 (got ${sum})`);
    });
    s.failover?.forEach((f, i) => {
      if (f.to.includes(f.from)) at(['spec', 'failover', i, 'to'], `lists its own region "${f.from}"`);
    });
    if (!s.failover && !s.distribute && s.overprovisioningFactor === undefined && s.panicThreshold === undefined) at(['spec'], 'sets nothing: give failover, distribute, overprovisioningFactor or panicThreshold');
  }
  if (kind === 'TrafficPolicy') {
    const s = spec as TrafficSpec;
    if (s.timeout === undefined && !s.retries && !s.connectionPool && !s.outlierDetection) at(['spec'], 'sets nothing: give timeout, retries, connectionPool or outlierDetection');
    if (s.retries?.perTryTimeout !== undefined && s.timeout !== undefined && s.retries.perTryTimeout > s.timeout) at(['spec', 'retries', 'perTryTimeout'], `is longer than the overall timeout (${s.retries.perTryTimeout}ms > ${s.timeout}ms)`);
  }
}

/**
 * Validates and compiles a policy set: native documents checked against their schemas, Istio
 * documents converted first. Every problem of every document is reported, each with its file,
 * line and field path; a set with any error compiles to nothing usable (it is applied whole or not).
 * Trust-domain aliases of `context` are expanded in the compiled AuthorizationPolicies.
 */
export function compilePolicySet(inputs: readonly PolicyInput[], context: PolicyContext = {}): CompileResult {
  const resolver = new TrustDomainResolver(context);
  const issues: InputIssue[] = [];
  const warnings: InputIssue[] = [];
  const policies: CompiledPolicy[] = [];
  const keys: Array<string | undefined> = [];
  const seen = new Map<string, string>();
  const istio: Array<{ input: IstioInput; origin: string }> = [];
  // The spec as written (before defaults), so overlap warnings name only fields a document set.
  const written = new Map<CompiledPolicy, unknown>();

  inputs.forEach((input) => {
    const envelopeIssues: InputIssue[] = [];
    const envelope = readEnvelope(input.document, envelopeIssues, input.source);
    for (const issue of envelopeIssues) issues.push({ ...issue, line: input.lineOf?.(issue.path === '' ? [] : issue.path.split('.')) });
    keys.push(envelope?.key);
    if (!envelope) return;
    const first = seen.get(envelope.key);
    if (first) {
      issues.push(located(input, ['metadata', 'name'], `${envelope.key} is also defined in ${first}`));
      return;
    }
    seen.set(envelope.key, input.source);
    const document = input.document as Record<string, unknown>;
    if (isIstio(document)) {
      istio.push({ input: { document, source: input.source, lineOf: input.lineOf }, origin: envelope.key });
      return;
    }
    const unsupported = unsupportedEnvelope(envelope.apiVersion, envelope.kind);
    if (unsupported) {
      issues.push(located(input, unsupported.path, unsupported.message));
      return;
    }
    const kind = envelope.kind as NativeKind;
    const shapeIssues: ShapeIssue[] = [];
    for (const key of Object.keys(document)) {
      if (!['apiVersion', 'kind', 'metadata', 'spec'].includes(key)) shapeIssues.push({ path: [key], message: 'unknown field' });
    }
    const metadataIssues: ShapeIssue[] = [];
    metadataShape.check(document.metadata, ['metadata'], metadataIssues);
    // The envelope already judged name and namespace; their shape check would say it again.
    const judged = new Set(envelopeIssues.map((i) => i.path));
    shapeIssues.push(...metadataIssues.filter((i) => !judged.has(formatPath(i.path))));
    if (document.spec === undefined || document.spec === null) shapeIssues.push({ path: ['spec'], message: 'required' });
    const spec = document.spec === undefined || document.spec === null ? undefined : SPEC_SHAPES[kind].check(document.spec, ['spec'], shapeIssues);
    const semantic: ShapeIssue[] = [];
    if (spec !== undefined) semanticChecks(kind, spec, (path, message) => semantic.push({ path, message }));
    for (const issue of [...shapeIssues, ...semantic]) issues.push(located(input, issue.path, issue.message));
    if (spec === undefined || shapeIssues.length + semantic.length > 0) return;
    if (kind === 'AuthorizationPolicy') trustDomainWarnings(spec as AuthorizationSpec, resolver, (path, message) => warnings.push(located(input, path, message, 'warning')));
    const s = spec as { service?: string; clusters?: string[] };
    const inForce = kind === 'AuthorizationPolicy' ? resolver.expandAuthorization(spec as AuthorizationSpec) : spec;
    const compiled = { kind, origin: envelope.key, name: envelope.name, namespace: envelope.namespace, service: s.service, clusters: s.clusters, spec: inForce } as CompiledPolicy;
    written.set(compiled, document.spec);
    policies.push(compiled);
  });

  if (istio.length > 0) {
    const converted = convertIstio(istio.map((i) => i.input), { resolver, unresolvedSubsets: context.unresolvedSubsets ?? 'error' });
    issues.push(...converted.issues);
    warnings.push(...converted.warnings);
    for (const doc of converted.documents) {
      const origin = istio.find((i) => i.input.source === doc.source && `${String(i.input.document.kind)} ${String((i.input.document.metadata as Record<string, unknown>)?.namespace ?? 'default')}/${String((i.input.document.metadata as Record<string, unknown>)?.name)}` === doc.from)?.origin ?? doc.from;
      const shapeIssues: ShapeIssue[] = [];
      const spec = SPEC_SHAPES[doc.kind].check(doc.spec, ['spec'], shapeIssues);
      const semantic: ShapeIssue[] = [];
      if (spec !== undefined) semanticChecks(doc.kind, spec, (path, message) => semantic.push({ path, message }));
      // The Istio fields were checked on the way in; what remains is reported against the document as converted.
      const input = istio.find((i) => i.origin === origin)?.input;
      for (const issue of [...shapeIssues, ...semantic]) issues.push({ source: doc.source, line: input?.lineOf?.([]), path: '', message: `${doc.from} converts to a ${doc.kind} that is invalid: ${formatPath(issue.path)}: ${issue.message}`, severity: 'error' });
      if (spec === undefined || shapeIssues.length + semantic.length > 0) continue;
      const s = spec as { service?: string; clusters?: string[] };
      const inForce = doc.kind === 'AuthorizationPolicy' ? resolver.expandAuthorization(spec as AuthorizationSpec) : spec;
      const compiled = { kind: doc.kind, origin, name: doc.name, namespace: doc.namespace, service: s.service, clusters: s.clusters, spec: inForce } as CompiledPolicy;
      written.set(compiled, doc.spec);
      policies.push(compiled);
    }
  }
  warnings.push(...overlapWarnings(policies, written));
  const order = new Map(inputs.map((input, index) => [input.source, index]));
  const byPosition = (a: InputIssue, b: InputIssue): number => (order.get(a.source ?? '') ?? 0) - (order.get(b.source ?? '') ?? 0) || (a.line ?? 0) - (b.line ?? 0);
  issues.sort(byPosition);
  warnings.sort(byPosition);
  return { set: { policies: issues.length > 0 ? [] : policies }, issues, warnings, keys };
}

/** What a document sets, for overlap reporting: whole documents for Route/Fault, fields for the merged kinds. */
function fieldsSet(p: CompiledPolicy, written: ReadonlyMap<CompiledPolicy, unknown>): string[] {
  if (p.kind === 'RoutePolicy' || p.kind === 'FaultPolicy') return ['*'];
  const spec = (written.get(p) ?? p.spec) as Record<string, unknown>;
  const out: string[] = [];
  for (const [key, value] of Object.entries(spec)) {
    if (key === 'service' || key === 'clusters' || value === undefined) continue;
    if (value !== null && typeof value === 'object' && !Array.isArray(value)) for (const inner of Object.keys(value)) out.push(`${key}.${inner}`);
    else out.push(key);
  }
  return out;
}

/**
 * Two documents of one kind, scope and specificity that set the same thing: the precedence rule
 * decides (the name first in order wins), but the operator should know.
 */
function overlapWarnings(policies: readonly CompiledPolicy[], written: ReadonlyMap<CompiledPolicy, unknown>): InputIssue[] {
  const out: InputIssue[] = [];
  const groups = new Map<string, CompiledPolicy[]>();
  for (const p of policies) {
    if (p.kind === 'AuthorizationPolicy') continue;
    const key = `${p.kind}|${p.namespace}|${p.service ?? '*'}|${(p.clusters ?? []).join(',')}`;
    groups.set(key, [...(groups.get(key) ?? []), p]);
  }
  for (const group of groups.values()) {
    if (group.length < 2) continue;
    const sorted = [...group].sort((a, b) => a.name.localeCompare(b.name));
    const first = sorted[0] as CompiledPolicy;
    const target = first.service ? `${first.service}.${first.namespace}` : `every service of namespace ${first.namespace}`;
    for (const other of sorted.slice(1)) {
      const theirs = fieldsSet(other, written);
      const shared = fieldsSet(first, written).filter((f) => theirs.includes(f));
      if (shared.length === 0) continue;
      const what = shared.includes('*') ? `both apply to ${target}` : `both set ${shared.join(', ')} for ${target}`;
      out.push({ path: '', source: other.origin, message: `${first.kind} ${first.name} and ${other.name} ${what}${first.clusters ? ` on ${first.clusters.join(', ')}` : ''}: ${first.name} wins (equally specific documents: the name first in order)`, severity: 'warning' });
    }
  }
  return out;
}
