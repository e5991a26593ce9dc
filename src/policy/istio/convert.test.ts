import { parseYaml } from '../../config/yaml-source.js';
import { formatIssue } from '../../core/errors.js';
import type { CompiledPolicy, PolicyInput } from '../compile.js';
import { validatePolicySet } from '../policy-set.js';

/** Parses each file (name → YAML text) with real line numbers, then validates the set. */
function compile(files: Record<string, string>): { errors: string[]; warnings: string[]; policies: readonly CompiledPolicy[] } {
  const inputs: PolicyInput[] = [];
  for (const [source, text] of Object.entries(files)) {
    const parsed = parseYaml(source, text);
    if (parsed.issues.length > 0) throw new Error(`test YAML does not parse: ${parsed.issues.map(formatIssue).join('; ')}`);
    for (const doc of parsed.documents) inputs.push({ document: doc.value, source: doc.source, lineOf: (path) => doc.lineOf(path) });
  }
  const result = validatePolicySet(inputs);
  return { errors: result.issues.map(formatIssue), warnings: result.warnings.map(formatIssue), policies: result.set.policies };
}

const FILE = 'istio.yaml';

/** Lines 1–6 are the envelope and `spec:`; the first line of `spec` is line 7 of the file. */
function istio(apiVersion: string, kind: string, spec: string, name = 'payments'): string {
  return `apiVersion: ${apiVersion}
kind: ${kind}
metadata:
  name: ${name}
  namespace: shop
spec:
${spec}`;
}
const vs = (spec: string, api = 'networking.istio.io/v1beta1'): string => istio(api, 'VirtualService', spec);
const dr = (spec: string, api = 'networking.istio.io/v1beta1'): string => istio(api, 'DestinationRule', spec);
const ap = (spec: string, api = 'security.istio.io/v1beta1'): string => istio(api, 'AuthorizationPolicy', spec);

/** A VirtualService for payments with one route; `extra` starts at line 10, inside http[0]. */
const vsHttp = (extra: string): string => vs(`  hosts: [payments]
  http:
    - route: [{ destination: { host: payments } }]
${extra}`);

/** A DestinationRule for payments; `extra` starts at line 9, inside trafficPolicy. */
const drPolicy = (extra: string): string => dr(`  host: payments
  trafficPolicy:
${extra}`);

const SUBSETS = dr(`  host: payments
  subsets:
    - name: v1
      labels: { version: v1 }
    - name: v2
      labels: { version: v2 }
`);

function only<K extends CompiledPolicy['kind']>(policies: readonly CompiledPolicy[], kind: K): Extract<CompiledPolicy, { kind: K }> {
  const found = policies.filter((p) => p.kind === kind);
  if (found.length !== 1) throw new Error(`expected one ${kind}, got ${found.length}: ${JSON.stringify(policies.map((p) => `${p.kind} ${p.name}`))}`);
  return found[0] as Extract<CompiledPolicy, { kind: K }>;
}

const route0 = (p: readonly CompiledPolicy[]): unknown => only(p, 'RoutePolicy').spec.routes[0];
const routeMatch = (p: readonly CompiledPolicy[]): unknown => only(p, 'RoutePolicy').spec.routes[0]?.match;
const retries = (p: readonly CompiledPolicy[]): unknown => only(p, 'TrafficPolicy').spec.retries;
const fault0 = (p: readonly CompiledPolicy[]): unknown => only(p, 'FaultPolicy').spec.faults[0];
const pool = (p: readonly CompiledPolicy[]): unknown => only(p, 'TrafficPolicy').spec.connectionPool;
const outlier = (p: readonly CompiledPolicy[]): unknown => only(p, 'TrafficPolicy').spec.outlierDetection;
const authz = (p: readonly CompiledPolicy[]): unknown => {
  const a = only(p, 'AuthorizationPolicy');
  return { service: a.service, action: a.spec.action, rules: a.spec.rules };
};

describe('Istio import: each supported field and the native field it maps to', () => {
  it.each<[string, Record<string, string>, (policies: readonly CompiledPolicy[]) => unknown, unknown]>([
    // ── VirtualService ────────────────────────────────────────────────────────
    ['VirtualService hosts: name → service of the document namespace', { [FILE]: vsHttp('') },
      (p) => { const r = only(p, 'RoutePolicy'); return { kind: r.kind, origin: r.origin, name: r.name, namespace: r.namespace, service: r.service }; },
      { kind: 'RoutePolicy', origin: 'VirtualService/shop/payments', name: 'payments.virtualservice', namespace: 'shop', service: 'payments' }],
    ['VirtualService hosts: name.namespace', { [FILE]: vs('  hosts: [payments.billing]\n  http:\n    - route: [{ destination: { host: payments.billing } }]\n') },
      (p) => { const r = only(p, 'RoutePolicy'); return [r.namespace, r.service]; }, ['billing', 'payments']],
    ['VirtualService hosts: name.namespace.svc.cluster.local', { [FILE]: vs('  hosts: [payments.billing.svc.cluster.local]\n  http:\n    - route: [{ destination: { host: payments.billing.svc.cluster.local } }]\n') },
      (p) => { const r = only(p, 'RoutePolicy'); return [r.namespace, r.service]; }, ['billing', 'payments']],
    ['VirtualService http[].name → route name', { [FILE]: vs('  hosts: [payments]\n  http:\n    - name: primary\n      route: [{ destination: { host: payments } }]\n') },
      (p) => only(p, 'RoutePolicy').spec.routes.map((r) => r.name), ['primary']],
    ['VirtualService http[] without a usable name → http-<index>', { [FILE]: vs(`  hosts: [payments]
  http:
    - name: Not_A_Label
      match: [{ uri: { prefix: /a } }]
      route: [{ destination: { host: payments } }]
    - route: [{ destination: { host: payments } }]
`) }, (p) => only(p, 'RoutePolicy').spec.routes.map((r) => r.name), ['http-0', 'http-1']],
    ['VirtualService match uri exact/prefix/regex → path', { [FILE]: vs(`  hosts: [payments]
  http:
    - match:
        - uri: { exact: /health }
        - uri: { prefix: /api/ }
        - uri: { regex: "/v[0-9]+/.*" }
      route: [{ destination: { host: payments } }]
`) }, routeMatch, [{ headers: {}, path: { exact: '/health' } }, { headers: {}, path: { prefix: '/api/' } }, { headers: {}, path: { regex: '/v[0-9]+/.*' } }]],
    ['VirtualService match headers exact/prefix/regex → headers (names lower-cased)', { [FILE]: vs(`  hosts: [payments]
  http:
    - match:
        - headers:
            X-User: { exact: alice }
            x-env: { prefix: stag }
            x-version: { regex: "v[12]" }
      route: [{ destination: { host: payments } }]
`) }, routeMatch, [{ headers: { 'x-user': { exact: 'alice' }, 'x-env': { prefix: 'stag' }, 'x-version': { regex: 'v[12]' } } }]],
    ['VirtualService match method exact → methods', { [FILE]: vs(`  hosts: [payments]
  http:
    - match: [{ method: { exact: POST } }]
      route: [{ destination: { host: payments } }]
`) }, routeMatch, [{ headers: {}, methods: ['POST'] }]],
    ['VirtualService route destination host/subset/weight → destinations by cluster labels', {
      'destination-rule.yaml': SUBSETS,
      [FILE]: vs(`  hosts: [payments]
  http:
    - route:
        - destination: { host: payments, subset: v1 }
          weight: 75
        - destination: { host: payments.shop.svc.cluster.local, subset: v2 }
          weight: 25
`),
    }, (p) => only(p, 'RoutePolicy').spec.routes[0]?.destinations, [{ labels: { version: 'v1' }, weight: 75 }, { labels: { version: 'v2' }, weight: 25 }]],
    ['VirtualService route without subset → every cluster, weight 100', { [FILE]: vsHttp('') },
      (p) => only(p, 'RoutePolicy').spec.routes[0]?.destinations, [{ labels: {}, weight: 100 }]],
    ['VirtualService timeout → route timeout (ms)', { [FILE]: vsHttp('      timeout: 1.5s\n') }, route0, { name: 'http-0', match: [], destinations: [{ labels: {}, weight: 100 }], timeout: 1500 }],
    ['VirtualService retries attempts/perTryTimeout → TrafficPolicy retries', { [FILE]: vsHttp('      retries: { attempts: 3, perTryTimeout: 250ms }\n') },
      (p) => { const t = only(p, 'TrafficPolicy'); return { name: t.name, service: t.service, retries: t.spec.retries }; },
      { name: 'payments.virtualservice', service: 'payments', retries: { attempts: 3, perTryTimeout: 250 } }],
    ['VirtualService retries.retryOn: 5xx', { [FILE]: vsHttp('      retries: { attempts: 1, retryOn: 5xx }\n') }, retries, { attempts: 1, retryOn: ['5xx'] }],
    ['VirtualService retries.retryOn: gateway-error', { [FILE]: vsHttp('      retries: { attempts: 1, retryOn: gateway-error }\n') }, retries, { attempts: 1, retryOn: ['gateway-error'] }],
    ['VirtualService retries.retryOn: reset', { [FILE]: vsHttp('      retries: { attempts: 1, retryOn: reset }\n') }, retries, { attempts: 1, retryOn: ['reset'] }],
    ['VirtualService retries.retryOn: connect-failure', { [FILE]: vsHttp('      retries: { attempts: 1, retryOn: connect-failure }\n') }, retries, { attempts: 1, retryOn: ['connect-failure'] }],
    ['VirtualService retries.retryOn: refused-stream → connect-failure', { [FILE]: vsHttp('      retries: { attempts: 1, retryOn: refused-stream }\n') }, retries, { attempts: 1, retryOn: ['connect-failure'] }],
    ['VirtualService retries.retryOn: retriable-4xx', { [FILE]: vsHttp('      retries: { attempts: 1, retryOn: retriable-4xx }\n') }, retries, { attempts: 1, retryOn: ['retriable-4xx'] }],
    ['VirtualService retries.retryOn: unavailable', { [FILE]: vsHttp('      retries: { attempts: 1, retryOn: unavailable }\n') }, retries, { attempts: 1, retryOn: ['unavailable'] }],
    ['VirtualService retries.retryOn: a list, spaces trimmed, duplicates merged', { [FILE]: vsHttp('      retries: { attempts: 1, retryOn: "5xx, connect-failure,refused-stream" }\n') }, retries,
      { attempts: 1, retryOn: ['5xx', 'connect-failure'] }],
    ['VirtualService fault delay fixedDelay + percentage.value → FaultPolicy delay', { [FILE]: vsHttp('      fault:\n        delay: { fixedDelay: 5s, percentage: { value: 12.5 } }\n') }, fault0,
      { match: [], delay: { fixedDelay: 5000, percentage: 12.5 } }],
    ['VirtualService fault delay legacy percent', { [FILE]: vsHttp('      fault:\n        delay: { fixedDelay: 100ms, percent: 25 }\n') }, fault0,
      { match: [], delay: { fixedDelay: 100, percentage: 25 } }],
    ['VirtualService fault abort httpStatus + percentage', { [FILE]: vsHttp('      fault:\n        abort: { httpStatus: 429, percentage: { value: 1 } }\n') }, fault0,
      { match: [], abort: { httpStatus: 429, percentage: 1 } }],
    ['VirtualService fault abort grpcStatus (name) → grpcStatus code, HTTP 503', { [FILE]: vsHttp('      fault:\n        abort: { grpcStatus: UNAVAILABLE, percentage: { value: 50 } }\n') }, fault0,
      { match: [], abort: { httpStatus: 503, grpcStatus: 14, percentage: 50 } }],
    ['VirtualService fault applies to the requests of its route match', { [FILE]: vs(`  hosts: [payments]
  http:
    - match: [{ uri: { prefix: /slow } }]
      route: [{ destination: { host: payments } }]
      fault:
        delay: { fixedDelay: 1s, percentage: { value: 100 } }
    - route: [{ destination: { host: payments } }]
`) }, fault0, { match: [{ headers: {}, path: { prefix: '/slow' } }], delay: { fixedDelay: 1000, percentage: 100 } }],

    // ── DestinationRule ───────────────────────────────────────────────────────
    ['DestinationRule host → TrafficPolicy of the service', { [FILE]: dr('  host: payments.billing.svc.cluster.local\n  trafficPolicy:\n    connectionPool: { tcp: { maxConnections: 4 } }\n') },
      (p) => { const t = only(p, 'TrafficPolicy'); return { origin: t.origin, name: t.name, namespace: t.namespace, service: t.service }; },
      { origin: 'DestinationRule/shop/payments', name: 'payments.destinationrule', namespace: 'billing', service: 'payments' }],
    ['DestinationRule connectionPool.tcp.maxConnections → connectionPool.maxConnections', { [FILE]: drPolicy('    connectionPool:\n      tcp: { maxConnections: 8 }\n') }, pool, { maxConnections: 8 }],
    ['DestinationRule connectionPool.http.http1MaxPendingRequests → maxPendingRequests', { [FILE]: drPolicy('    connectionPool:\n      http: { http1MaxPendingRequests: 64 }\n') }, pool, { maxPendingRequests: 64 }],
    ['DestinationRule connectionPool.http.http2MaxRequests → maxRequests', { [FILE]: drPolicy('    connectionPool:\n      http: { http2MaxRequests: 500 }\n') }, pool, { maxRequests: 500 }],
    ['DestinationRule connectionPool.http.maxRequestsPerConnection → maxRequestsPerConnection', { [FILE]: drPolicy('    connectionPool:\n      http: { maxRequestsPerConnection: 10 }\n') }, pool, { maxRequestsPerConnection: 10 }],
    ['DestinationRule outlierDetection.consecutive5xxErrors → consecutiveErrors', { [FILE]: drPolicy('    outlierDetection: { consecutive5xxErrors: 7 }\n') }, outlier, { consecutiveErrors: 7 }],
    ['DestinationRule outlierDetection.consecutiveErrors (before Istio 1.5) → consecutiveErrors', { [FILE]: drPolicy('    outlierDetection: { consecutiveErrors: 6 }\n') }, outlier, { consecutiveErrors: 6 }],
    ['DestinationRule outlierDetection.consecutiveGatewayErrors → consecutiveErrors', { [FILE]: drPolicy('    outlierDetection: { consecutiveGatewayErrors: 3 }\n') }, outlier, { consecutiveErrors: 3 }],
    ['DestinationRule outlierDetection interval/baseEjectionTime/maxEjectionPercent', { [FILE]: drPolicy('    outlierDetection: { interval: 5s, baseEjectionTime: 1m, maxEjectionPercent: 30 }\n') }, outlier,
      { interval: 5000, baseEjectionTime: 60_000, maxEjectionPercent: 30 }],
    ['DestinationRule localityLbSetting.failover → FailoverPolicy failover (entries of one region merged in order)', { [FILE]: drPolicy(`    loadBalancer:
      localityLbSetting:
        enabled: true
        failover:
          - { from: us-east-1, to: us-west-2 }
          - { from: us-east-1, to: eu-west-1 }
          - { from: us-west-2, to: us-east-1 }
`) }, (p) => { const f = only(p, 'FailoverPolicy'); return { name: f.name, service: f.service, failover: f.spec.failover }; },
      { name: 'payments.destinationrule', service: 'payments', failover: [{ from: 'us-east-1', to: ['us-west-2', 'eu-west-1'] }, { from: 'us-west-2', to: ['us-east-1'] }] }],
    ['DestinationRule localityLbSetting.distribute → FailoverPolicy distribute by region', { [FILE]: drPolicy(`    loadBalancer:
      localityLbSetting:
        distribute:
          - from: us-east-1/*
            to: { "us-east-1/*": 80, us-west-2: 20 }
`) }, (p) => only(p, 'FailoverPolicy').spec.distribute, [{ from: 'us-east-1', to: { 'us-east-1': 80, 'us-west-2': 20 } }]],

    // ── AuthorizationPolicy ───────────────────────────────────────────────────
    ['AuthorizationPolicy selector.matchLabels.app → service; action ALLOW', { [FILE]: ap('  selector: { matchLabels: { app: payments } }\n  action: ALLOW\n  rules: [{}]\n') }, authz,
      { service: 'payments', action: 'ALLOW', rules: [{}] }],
    ['AuthorizationPolicy selector app.kubernetes.io/name → service', { [FILE]: ap('  selector: { matchLabels: { app.kubernetes.io/name: payments } }\n  rules: [{}]\n') }, authz,
      { service: 'payments', action: 'ALLOW', rules: [{}] }],
    ['AuthorizationPolicy without selector → namespace-wide; action defaults to ALLOW; no rules allow nothing', { [FILE]: ap('  {}\n') }, authz,
      { service: undefined, action: 'ALLOW', rules: [] }],
    ['AuthorizationPolicy action DENY', { [FILE]: ap('  action: DENY\n  rules:\n    - to: [{ operation: { methods: [DELETE] } }]\n') }, authz,
      { service: undefined, action: 'DENY', rules: [{ to: [{ methods: ['DELETE'] }] }] }],
    ['AuthorizationPolicy from.source.principals → SPIFFE IDs (exact, prefix, suffix, "*")', { [FILE]: ap(`  rules:
    - from:
        - source:
            principals: [mesh.example/ns/shop/sa/web, mesh.example/ns/ops/*, "*/sa/batch", "*", spiffe://td/ns/a/sa/b]
`) }, authz, { service: undefined, action: 'ALLOW', rules: [{ from: [{ principals: ['spiffe://mesh.example/ns/shop/sa/web', 'spiffe://mesh.example/ns/ops/*', '*/sa/batch', '*', 'spiffe://td/ns/a/sa/b'] }] }] }],
    ['AuthorizationPolicy from.source.notPrincipals and namespaces', { [FILE]: ap(`  rules:
    - from:
        - source: { notPrincipals: [mesh.example/ns/shop/sa/legacy] }
        - source: { namespaces: [shop, ops] }
`) }, authz, { service: undefined, action: 'ALLOW', rules: [{ from: [{ notPrincipals: ['spiffe://mesh.example/ns/shop/sa/legacy'] }, { namespaces: ['shop', 'ops'] }] }] }],
    ['AuthorizationPolicy to.operation methods/paths/ports (ports as numbers)', { [FILE]: ap(`  rules:
    - to:
        - operation:
            methods: [GET, HEAD]
            paths: [/api/*, "*.json", /healthz]
            ports: ["8080", 9090]
`) }, authz, { service: undefined, action: 'ALLOW', rules: [{ to: [{ methods: ['GET', 'HEAD'], paths: ['/api/*', '*.json', '/healthz'], ports: [8080, 9090] }] }] }],
  ])('%s', (_name, files, pick, expected) => {
    const { errors, warnings, policies } = compile(files);
    expect(errors).toEqual([]);
    expect(warnings).toEqual([]);
    expect(pick(policies)).toEqual(expected);
  });
});

describe('Istio import: API versions and kinds', () => {
  it.each(['networking.istio.io/v1alpha3', 'networking.istio.io/v1beta1', 'networking.istio.io/v1'])('accepts %s VirtualService and DestinationRule', (api) => {
    const { errors, warnings, policies } = compile({
      'dr.yaml': dr('  host: payments\n  subsets: [{ name: v2, labels: { version: v2 } }]\n  trafficPolicy: { connectionPool: { tcp: { maxConnections: 2 } } }\n', api),
      'vs.yaml': vs('  hosts: [payments]\n  http:\n    - route: [{ destination: { host: payments, subset: v2 } }]\n', api),
    });
    expect(errors).toEqual([]);
    expect(warnings).toEqual([]);
    expect(policies.map((p) => `${p.kind} ${p.namespace}/${p.name}`)).toEqual(['TrafficPolicy shop/payments.destinationrule', 'RoutePolicy shop/payments.virtualservice']);
  });

  it.each(['security.istio.io/v1beta1', 'security.istio.io/v1'])('accepts %s AuthorizationPolicy', (api) => {
    const { errors, policies } = compile({ [FILE]: ap('  action: DENY\n  rules: [{ from: [{ source: { namespaces: [legacy] } }] }]\n', api) });
    expect(errors).toEqual([]);
    expect(policies.map((p) => p.kind)).toEqual(['AuthorizationPolicy']);
  });

  it.each<[string, string]>([
    ['networking.istio.io/v1beta1', 'Gateway'],
    ['networking.istio.io/v1beta1', 'ServiceEntry'],
    ['networking.istio.io/v1', 'Sidecar'],
    ['networking.istio.io/v1alpha3', 'EnvoyFilter'],
    ['security.istio.io/v1beta1', 'PeerAuthentication'],
    ['security.istio.io/v1', 'RequestAuthentication'],
  ])('refuses %s %s', (api, kind) => {
    const { errors, policies } = compile({ [FILE]: istio(api, kind, '  selector: { matchLabels: { app: payments } }\n') });
    expect(errors).toEqual([
      `${FILE}:2: kind: ${api} ${kind} is not supported (supported: networking.istio.io VirtualService and DestinationRule, security.istio.io AuthorizationPolicy)`,
    ]);
    expect(policies).toEqual([]);
  });

  it('refuses an unknown Istio API version (reported at kind)', () => {
    const { errors } = compile({ [FILE]: vsHttp('').replace('networking.istio.io/v1beta1', 'networking.istio.io/v2') });
    expect(errors).toEqual([
      `${FILE}:2: kind: networking.istio.io/v2 VirtualService is not supported (supported: networking.istio.io VirtualService and DestinationRule, security.istio.io AuthorizationPolicy) (VirtualService needs apiVersion networking.istio.io/v1)`,
    ]);
  });

  it('refuses a document without spec', () => {
    const { errors } = compile({ [FILE]: 'apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: payments\n' });
    expect(errors).toEqual([`${FILE}:1: spec: required`]);
  });
});

describe('Istio import: every unsupported field is a warning with its path', () => {
  const IGNORED = 'not supported, ignored';
  it.each<[string, string, string[], string[]?]>([
    // ── VirtualService ────────────────────────────────────────────────────────
    ['VirtualService gateways (other than mesh)', vs(`  hosts: [payments]
  gateways: [mesh, istio-system/ingress]
  http:
    - route: [{ destination: { host: payments } }]
`), [`${FILE}:8: spec.gateways: not supported, ignored (fedgate policies apply between clusters, not at ingress gateways)`]],
    ['VirtualService exportTo', vs('  hosts: [payments]\n  exportTo: ["."]\n  http:\n    - route: [{ destination: { host: payments } }]\n'), [`${FILE}:8: spec.exportTo: ${IGNORED}`]],
    ['VirtualService tcp', vs('  hosts: [payments]\n  http:\n    - route: [{ destination: { host: payments } }]\n  tcp:\n    - route: [{ destination: { host: payments } }]\n'), [`${FILE}:10: spec.tcp: ${IGNORED}`]],
    ['VirtualService tls', vs('  hosts: [payments]\n  http:\n    - route: [{ destination: { host: payments } }]\n  tls:\n    - match: [{ sniHosts: [payments] }]\n      route: [{ destination: { host: payments } }]\n'),
      [`${FILE}:10: spec.tls: ${IGNORED}`]],
    ['VirtualService http[].mirror', vsHttp('      mirror: { host: payments-shadow }\n'), [`${FILE}:10: spec.http[0].mirror: ${IGNORED}`]],
    ['VirtualService http[].mirrorPercentage', vsHttp('      mirrorPercentage: { value: 5 }\n'), [`${FILE}:10: spec.http[0].mirrorPercentage: ${IGNORED}`]],
    ['VirtualService http[].mirrors', vsHttp('      mirrors: [{ destination: { host: payments-shadow } }]\n'), [`${FILE}:10: spec.http[0].mirrors: ${IGNORED}`]],
    ['VirtualService http[].rewrite', vsHttp('      rewrite: { uri: /v2 }\n'), [`${FILE}:10: spec.http[0].rewrite: ${IGNORED}`]],
    ['VirtualService http[].headers (manipulation)', vsHttp('      headers:\n        request: { set: { x-a: b } }\n'), [`${FILE}:10: spec.http[0].headers: ${IGNORED}`]],
    ['VirtualService http[].corsPolicy', vsHttp('      corsPolicy: { allowOrigins: [{ exact: "*" }] }\n'), [`${FILE}:10: spec.http[0].corsPolicy: ${IGNORED}`]],
    ['VirtualService http[].retries.retryRemoteLocalities', vsHttp('      retries:\n        attempts: 2\n        retryRemoteLocalities: true\n'), [`${FILE}:12: spec.http[0].retries.retryRemoteLocalities: ${IGNORED}`]],
    ['VirtualService http[].retries.retryOn conditions without a fedgate equivalent', vsHttp('      retries:\n        attempts: 2\n        retryOn: 5xx,retriable-status-codes,cancelled\n'), [
      `${FILE}:12: spec.http[0].retries.retryOn: retry condition "retriable-status-codes" not supported, ignored`,
      `${FILE}:12: spec.http[0].retries.retryOn: retry condition "cancelled" not supported, ignored`,
    ]],
    ['VirtualService retries differing per route', vs(`  hosts: [payments]
  http:
    - match: [{ uri: { prefix: /a } }]
      route: [{ destination: { host: payments } }]
      retries: { attempts: 1 }
    - route: [{ destination: { host: payments } }]
      retries: { attempts: 3 }
`), [`${FILE}:13: spec.http[1].retries: per-route retries are not supported; the retries of spec.http[0] apply to the whole service`]],
    ['VirtualService http[].fault.delay.exponentialDelay', vsHttp('      fault:\n        delay:\n          fixedDelay: 1s\n          exponentialDelay: 1s\n'), [`${FILE}:13: spec.http[0].fault.delay.exponentialDelay: ${IGNORED}`]],
    ['VirtualService http[].fault.abort.http2Error', vsHttp('      fault:\n        abort:\n          httpStatus: 503\n          http2Error: CANCEL\n'), [`${FILE}:13: spec.http[0].fault.abort.http2Error: ${IGNORED}`]],
    ['VirtualService http[].match[].queryParams', vsHttp('      match:\n        - queryParams: { v: { exact: "2" } }\n'), [`${FILE}:11: spec.http[0].match[0].queryParams: ${IGNORED}`]],
    ['VirtualService http[].match[].ignoreUriCase', vsHttp('      match:\n        - uri: { prefix: /API }\n          ignoreUriCase: true\n'), [`${FILE}:12: spec.http[0].match[0].ignoreUriCase: ${IGNORED}`]],
    ['VirtualService http[].match[].sourceLabels', vsHttp('      match:\n        - sourceLabels: { app: web }\n'), [`${FILE}:11: spec.http[0].match[0].sourceLabels: ${IGNORED}`]],
    ['VirtualService http[].match[].sourceNamespace', vsHttp('      match:\n        - sourceNamespace: web\n'), [`${FILE}:11: spec.http[0].match[0].sourceNamespace: ${IGNORED}`]],
    ['VirtualService http[].match[].withoutHeaders', vsHttp('      match:\n        - withoutHeaders: { x-debug: {} }\n'), [`${FILE}:11: spec.http[0].match[0].withoutHeaders: ${IGNORED}`]],
    ['VirtualService http[].match[].authority, scheme, port', vsHttp('      match:\n        - authority: { exact: payments }\n          scheme: { exact: https }\n          port: 8080\n'), [
      `${FILE}:11: spec.http[0].match[0].authority: ${IGNORED}`,
      `${FILE}:12: spec.http[0].match[0].scheme: ${IGNORED}`,
      `${FILE}:13: spec.http[0].match[0].port: ${IGNORED}`,
    ]],
    ['VirtualService route[].headers', vs(`  hosts: [payments]
  http:
    - route:
        - destination: { host: payments }
          headers: { request: { add: { x-a: b } } }
`), [`${FILE}:11: spec.http[0].route[0].headers: ${IGNORED}`]],
    ['VirtualService route[].destination.port', vs(`  hosts: [payments]
  http:
    - route:
        - destination:
            host: payments
            port: { number: 8080 }
`), [`${FILE}:12: spec.http[0].route[0].destination.port: not supported, ignored (the route applies to the service at every port)`]],
    ['VirtualService http[].redirect (and so no route)', vs('  hosts: [payments]\n  http:\n    - redirect: { uri: /v2 }\n'),
      [`${FILE}:9: spec.http[0].redirect: ${IGNORED}`], [`${FILE}:9: spec.http[0].route: at least one route is required`]],
    ['VirtualService http[].directResponse (and so no route)', vs('  hosts: [payments]\n  http:\n    - directResponse: { status: 204 }\n'),
      [`${FILE}:9: spec.http[0].directResponse: ${IGNORED}`], [`${FILE}:9: spec.http[0].route: at least one route is required`]],

    // ── DestinationRule ───────────────────────────────────────────────────────
    ['DestinationRule exportTo', dr('  host: payments\n  exportTo: ["."]\n'), [`${FILE}:8: spec.exportTo: ${IGNORED}`]],
    ['DestinationRule workloadSelector', dr('  host: payments\n  workloadSelector: { matchLabels: { app: payments } }\n'), [`${FILE}:8: spec.workloadSelector: ${IGNORED}`]],
    ['DestinationRule subsets[].trafficPolicy', dr('  host: payments\n  subsets:\n    - name: v1\n      labels: { version: v1 }\n      trafficPolicy: { connectionPool: { tcp: { maxConnections: 1 } } }\n'),
      [`${FILE}:11: spec.subsets[0].trafficPolicy: not supported, ignored (subsets select clusters by their labels)`]],
    ['DestinationRule trafficPolicy.tls', drPolicy('    tls: { mode: ISTIO_MUTUAL }\n'), [`${FILE}:9: spec.trafficPolicy.tls: ${IGNORED}`]],
    ['DestinationRule trafficPolicy.portLevelSettings', drPolicy('    portLevelSettings: [{ port: { number: 80 }, connectionPool: { tcp: { maxConnections: 1 } } }]\n'), [`${FILE}:9: spec.trafficPolicy.portLevelSettings: ${IGNORED}`]],
    ['DestinationRule trafficPolicy.loadBalancer.simple', drPolicy('    loadBalancer: { simple: LEAST_REQUEST }\n'), [`${FILE}:9: spec.trafficPolicy.loadBalancer.simple: not supported, ignored (fedgate balances by locality and health)`]],
    ['DestinationRule trafficPolicy.loadBalancer.consistentHash', drPolicy('    loadBalancer:\n      consistentHash: { httpHeaderName: x-user }\n'),
      [`${FILE}:10: spec.trafficPolicy.loadBalancer.consistentHash: not supported, ignored (fedgate balances by locality and health)`]],
    ['DestinationRule trafficPolicy.loadBalancer.warmupDurationSecs', drPolicy('    loadBalancer:\n      warmupDurationSecs: 30s\n'),
      [`${FILE}:10: spec.trafficPolicy.loadBalancer.warmupDurationSecs: not supported, ignored (fedgate balances by locality and health)`]],
    ['DestinationRule localityLbSetting.failoverPriority', drPolicy('    loadBalancer:\n      localityLbSetting:\n        failoverPriority: [topology.kubernetes.io/region]\n'),
      [`${FILE}:11: spec.trafficPolicy.loadBalancer.localityLbSetting.failoverPriority: ${IGNORED}`]],
    ['DestinationRule localityLbSetting.distribute by zone', drPolicy(`    loadBalancer:
      localityLbSetting:
        distribute:
          - from: us-east-1/us-east-1a/*
            to:
              us-east-1/us-east-1b/*: 70
              us-west-2/*: 30
`), [
      `${FILE}:12: spec.trafficPolicy.loadBalancer.localityLbSetting.distribute[0].from: zones are not supported: distributing from the whole region`,
      `${FILE}:14: spec.trafficPolicy.loadBalancer.localityLbSetting.distribute[0].to.us-east-1/us-east-1b/*: zones are not supported: using the region`,
    ]],
    ['DestinationRule connectionPool.tcp.connectTimeout', drPolicy('    connectionPool:\n      tcp:\n        maxConnections: 4\n        connectTimeout: 1s\n'), [`${FILE}:12: spec.trafficPolicy.connectionPool.tcp.connectTimeout: ${IGNORED}`]],
    ['DestinationRule connectionPool.tcp.tcpKeepalive', drPolicy('    connectionPool:\n      tcp:\n        tcpKeepalive: { time: 7200s }\n'), [`${FILE}:11: spec.trafficPolicy.connectionPool.tcp.tcpKeepalive: ${IGNORED}`]],
    ['DestinationRule connectionPool.tcp.maxConnectionDuration', drPolicy('    connectionPool:\n      tcp:\n        maxConnectionDuration: 1h\n'), [`${FILE}:11: spec.trafficPolicy.connectionPool.tcp.maxConnectionDuration: ${IGNORED}`]],
    ['DestinationRule connectionPool.http.idleTimeout, maxRetries, h2UpgradePolicy, useClientProtocol', drPolicy(`    connectionPool:
      http:
        idleTimeout: 1h
        maxRetries: 3
        h2UpgradePolicy: UPGRADE
        useClientProtocol: true
`), [
      `${FILE}:11: spec.trafficPolicy.connectionPool.http.idleTimeout: ${IGNORED}`,
      `${FILE}:12: spec.trafficPolicy.connectionPool.http.maxRetries: ${IGNORED}`,
      `${FILE}:13: spec.trafficPolicy.connectionPool.http.h2UpgradePolicy: ${IGNORED}`,
      `${FILE}:14: spec.trafficPolicy.connectionPool.http.useClientProtocol: ${IGNORED}`,
    ]],
    ['DestinationRule outlierDetection.minHealthPercent, splitExternalLocalOriginErrors, consecutiveLocalOriginFailures', drPolicy(`    outlierDetection:
      consecutive5xxErrors: 5
      minHealthPercent: 10
      splitExternalLocalOriginErrors: true
      consecutiveLocalOriginFailures: 3
`), [
      `${FILE}:11: spec.trafficPolicy.outlierDetection.minHealthPercent: ${IGNORED}`,
      `${FILE}:12: spec.trafficPolicy.outlierDetection.splitExternalLocalOriginErrors: ${IGNORED}`,
      `${FILE}:13: spec.trafficPolicy.outlierDetection.consecutiveLocalOriginFailures: ${IGNORED}`,
    ]],
    ['DestinationRule outlierDetection.consecutiveErrors next to consecutive5xxErrors', drPolicy('    outlierDetection:\n      consecutive5xxErrors: 5\n      consecutiveErrors: 7\n'),
      [`${FILE}:11: spec.trafficPolicy.outlierDetection.consecutiveErrors: ignored: consecutive5xxErrors takes precedence`]],

    // ── AuthorizationPolicy (envelope-level fields; rule conditions below) ────
    ['AuthorizationPolicy selector labels other than app', ap('  selector:\n    matchLabels: { app: payments, version: v2 }\n  rules: [{}]\n'),
      [`${FILE}:8: spec.selector.matchLabels.version: not supported, ignored (the app label selects the service)`]],
    ['AuthorizationPolicy targetRef', ap('  targetRef: { kind: Gateway, group: gateway.networking.k8s.io, name: ingress }\n  rules: [{}]\n'), [`${FILE}:7: spec.targetRef: ${IGNORED}`]],
  ])('%s', (_name, yaml, expectedWarnings, expectedErrors = []) => {
    const { errors, warnings } = compile({ [FILE]: yaml });
    expect(errors).toEqual(expectedErrors);
    expect(warnings).toEqual(expectedWarnings);
  });

  it('keeps what it supports next to what it ignores', () => {
    const { policies } = compile({ [FILE]: vsHttp('      retries:\n        attempts: 2\n        retryOn: 5xx,retriable-status-codes\n      mirror: { host: shadow }\n') });
    expect(retries(policies)).toEqual({ attempts: 2, retryOn: ['5xx'] });
    expect(only(policies, 'RoutePolicy').spec.routes).toHaveLength(1);
  });

  it('gateways: [mesh] alone is not a warning', () => {
    const { errors, warnings } = compile({ [FILE]: vs('  hosts: [payments]\n  gateways: [mesh]\n  http:\n    - route: [{ destination: { host: payments } }]\n') });
    expect(errors).toEqual([]);
    expect(warnings).toEqual([]);
  });

  it('localityLbSetting.enabled: false turns failover off', () => {
    const { errors, policies } = compile({ [FILE]: drPolicy('    loadBalancer:\n      localityLbSetting:\n        enabled: false\n        failover: [{ from: us-east-1, to: us-west-2 }]\n') });
    expect(errors).toEqual([]);
    expect(policies).toEqual([]);
  });
});

describe('Istio AuthorizationPolicy rules with unsupported conditions: ALLOW drops the rule, DENY applies without it', () => {
  // Each document has two rules: rule 0 carries the unsupported condition (at line 12), rule 1 is plain.
  const sourceRule = (action: string, field: string, value: string): string => ap(`  action: ${action}
  rules:
    - from:
        - source:
            namespaces: [web]
            ${field}: ${value}
    - to:
        - operation: { methods: [GET] }
`);
  const operationRule = (action: string, field: string, value: string): string => ap(`  action: ${action}
  rules:
    - to:
        - operation:
            methods: [POST]
            ${field}: ${value}
    - to:
        - operation: { methods: [GET] }
`);
  const PLAIN = { to: [{ methods: ['GET'] }] };

  it.each<[string, string, string, string, unknown]>([
    ['source', 'requestPrincipals', '["issuer/subject"]', 'spec.rules[0].from[0].source.requestPrincipals', { from: [{ namespaces: ['web'] }] }],
    ['source', 'notRequestPrincipals', '["*"]', 'spec.rules[0].from[0].source.notRequestPrincipals', { from: [{ namespaces: ['web'] }] }],
    ['source', 'notNamespaces', '[legacy]', 'spec.rules[0].from[0].source.notNamespaces', { from: [{ namespaces: ['web'] }] }],
    ['source', 'ipBlocks', '[10.0.0.0/8]', 'spec.rules[0].from[0].source.ipBlocks', { from: [{ namespaces: ['web'] }] }],
    ['source', 'notIpBlocks', '[10.0.0.0/8]', 'spec.rules[0].from[0].source.notIpBlocks', { from: [{ namespaces: ['web'] }] }],
    ['source', 'remoteIpBlocks', '[192.0.2.0/24]', 'spec.rules[0].from[0].source.remoteIpBlocks', { from: [{ namespaces: ['web'] }] }],
    ['source', 'notRemoteIpBlocks', '[192.0.2.0/24]', 'spec.rules[0].from[0].source.notRemoteIpBlocks', { from: [{ namespaces: ['web'] }] }],
    ['operation', 'hosts', '[payments.example.com]', 'spec.rules[0].to[0].operation.hosts', { to: [{ methods: ['POST'] }] }],
    ['operation', 'notHosts', '[admin.example.com]', 'spec.rules[0].to[0].operation.notHosts', { to: [{ methods: ['POST'] }] }],
    ['operation', 'notMethods', '[GET]', 'spec.rules[0].to[0].operation.notMethods', { to: [{ methods: ['POST'] }] }],
    ['operation', 'notPaths', '[/healthz]', 'spec.rules[0].to[0].operation.notPaths', { to: [{ methods: ['POST'] }] }],
    ['operation', 'notPorts', '["9090"]', 'spec.rules[0].to[0].operation.notPorts', { to: [{ methods: ['POST'] }] }],
  ])('%s.%s', (where, field, value, path, denyRule) => {
    const build = where === 'source' ? sourceRule : operationRule;

    const allow = compile({ [FILE]: build('ALLOW', field, value) });
    expect(allow.errors).toEqual([]);
    expect(allow.warnings).toEqual([`${FILE}:12: ${path}: "${field}" not supported: this ALLOW rule is dropped (ignoring it would allow more)`]);
    expect(authz(allow.policies)).toEqual({ service: undefined, action: 'ALLOW', rules: [PLAIN] });

    const deny = compile({ [FILE]: build('DENY', field, value) });
    expect(deny.errors).toEqual([]);
    expect(deny.warnings).toEqual([`${FILE}:12: ${path}: "${field}" not supported, ignored (the DENY rule applies without it, denying more)`]);
    expect(authz(deny.policies)).toEqual({ service: undefined, action: 'DENY', rules: [denyRule, PLAIN] });
  });

  const whenRule = (action: string): string => ap(`  action: ${action}
  rules:
    - from:
        - source: { namespaces: [web] }
      when:
        - { key: "request.headers[x-env]", values: [prod] }
    - to:
        - operation: { methods: [GET] }
`);

  it('when (ALLOW): the rule is dropped', () => {
    const { errors, warnings, policies } = compile({ [FILE]: whenRule('ALLOW') });
    expect(errors).toEqual([]);
    expect(warnings).toEqual([`${FILE}:11: spec.rules[0].when: conditions ("when") are not supported: this ALLOW rule is dropped (ignoring it would allow more)`]);
    expect(authz(policies)).toEqual({ service: undefined, action: 'ALLOW', rules: [PLAIN] });
  });

  it('when (DENY): the rule applies without it', () => {
    const { errors, warnings, policies } = compile({ [FILE]: whenRule('DENY') });
    expect(errors).toEqual([]);
    expect(warnings).toEqual([`${FILE}:11: spec.rules[0].when: conditions ("when") are not supported, ignored (the DENY rule applies without it, denying more)`]);
    expect(authz(policies)).toEqual({ service: undefined, action: 'DENY', rules: [{ from: [{ namespaces: ['web'] }] }, PLAIN] });
  });

  it('an ALLOW policy whose only rule is dropped allows nothing (rules: [])', () => {
    const { warnings, policies } = compile({ [FILE]: ap('  rules:\n    - from:\n        - source: { ipBlocks: [10.0.0.0/8] }\n') });
    expect(warnings).toEqual([`${FILE}:9: spec.rules[0].from[0].source.ipBlocks: "ipBlocks" not supported: this ALLOW rule is dropped (ignoring it would allow more)`]);
    expect(authz(policies)).toEqual({ service: undefined, action: 'ALLOW', rules: [] });
  });
});

describe('Istio import: errors, each at its path', () => {
  it.each<[string, Record<string, string>, string[]]>([
    ['CUSTOM action (an external authorizer fedgate cannot call) is refused', { [FILE]: ap('  action: CUSTOM\n  provider: { name: ext-authz }\n  rules: [{}]\n') },
      [`${FILE}:7: spec.action: CUSTOM is not supported (ALLOW or DENY)`]],
    ['AUDIT action is refused', { [FILE]: ap('  action: AUDIT\n') }, [`${FILE}:7: spec.action: AUDIT is not supported (ALLOW or DENY)`]],
    ['selector without an app label', { [FILE]: ap('  selector: { matchLabels: { tier: web } }\n') }, [`${FILE}:7: spec.selector.matchLabels: needs an app (or app.kubernetes.io/name) label naming the service`]],
    ['principal with a wildcard inside a segment', { [FILE]: ap('  rules:\n    - from:\n        - source: { principals: ["cluster.local/ns/shop/sa/web*"] }\n') },
      [`${FILE}:9: spec.rules[0].from[0].source.principals[0]: "cluster.local/ns/shop/sa/web*": fedgate matches principals at path-segment boundaries only ("td/ns/shop/*" or "*/sa/web")`]],
    ['wildcard host', { [FILE]: vs('  hosts: ["*.shop.svc.cluster.local"]\n  http:\n    - route: [{ destination: { host: payments } }]\n') },
      [`${FILE}:7: spec.hosts[0]: "*.shop.svc.cluster.local" is not a service host (name, name.namespace or name.namespace.svc.cluster.local; no wildcards)`]],
    ['hosts missing', { [FILE]: vs('  http:\n    - route: [{ destination: { host: payments } }]\n') }, [`${FILE}:6: spec.hosts: required`]],
    ['route to another service', { [FILE]: vs('  hosts: [payments]\n  http:\n    - route: [{ destination: { host: orders } }]\n') },
      [`${FILE}:9: spec.http[0].route[0].destination.host: routes to another service are not supported (orders is not payments.shop)`]],
    ['subset not defined by a DestinationRule of the set', { [FILE]: vs('  hosts: [payments]\n  http:\n    - route: [{ destination: { host: payments, subset: v3 } }]\n') },
      [`${FILE}:9: spec.http[0].route[0].destination.subset: subset "v3" is not defined by a DestinationRule for payments.shop, neither in the documents applied nor among those stored`]],
    ['route entry without destination', { [FILE]: vs('  hosts: [payments]\n  http:\n    - route: [{ weight: 100 }]\n') }, [`${FILE}:9: spec.http[0].route[0].destination: required`]],
    ['method match other than exact', { [FILE]: vs('  hosts: [payments]\n  http:\n    - match: [{ method: { regex: "GET|HEAD" } }]\n      route: [{ destination: { host: payments } }]\n') },
      [`${FILE}:9: spec.http[0].match[0].method: only method.exact is supported`]],
    ['unknown gRPC status name', { [FILE]: vsHttp('      fault:\n        abort: { grpcStatus: BROKEN }\n') }, [`${FILE}:11: spec.http[0].fault.abort.grpcStatus: "BROKEN" is not a gRPC status name`]],
    ['fault percentage that is not a number', { [FILE]: vsHttp('      fault:\n        delay: { fixedDelay: 1s, percentage: { value: "half" } }\n') },
      [`${FILE}:11: spec.http[0].fault.delay.percentage.value: must be a number between 0 and 100`]],
    ['failover entry without to', { [FILE]: drPolicy('    loadBalancer:\n      localityLbSetting:\n        failover: [{ from: us-east-1 }]\n') },
      [`${FILE}:11: spec.trafficPolicy.loadBalancer.localityLbSetting.failover[0]: needs from and to (regions)`]],
    ['DestinationRule host with a wildcard', { [FILE]: dr('  host: "*.shop.svc.cluster.local"\n') },
      [`${FILE}:7: spec.host: "*.shop.svc.cluster.local" is not a service host (name, name.namespace or name.namespace.svc.cluster.local; no wildcards)`]],
    // What the native schema refuses after conversion is reported against the document as a whole.
    ['a value the native schema refuses (route timeout)', { [FILE]: vsHttp('      timeout: soon\n') },
      [`${FILE}:1: VirtualService shop/payments converts to a RoutePolicy that is invalid: spec.routes[0].timeout: "soon" is not a duration (use e.g. 500ms, 30s, 5m, 1h)`]],
    ['retries without attempts', { [FILE]: vsHttp('      retries: { perTryTimeout: 1s }\n') },
      [`${FILE}:1: VirtualService shop/payments converts to a TrafficPolicy that is invalid: spec.retries.attempts: required`]],
    ['failover to its own region', { [FILE]: drPolicy('    loadBalancer:\n      localityLbSetting:\n        failover: [{ from: us-east-1, to: us-east-1 }]\n') },
      [`${FILE}:1: DestinationRule shop/payments converts to a FailoverPolicy that is invalid: spec.failover[0].to: lists its own region "us-east-1"`]],
    ['distribute not summing to 100', { [FILE]: drPolicy('    loadBalancer:\n      localityLbSetting:\n        distribute: [{ from: us-east-1, to: { us-east-1: 50, us-west-2: 20 } }]\n') },
      [`${FILE}:1: DestinationRule shop/payments converts to a FailoverPolicy that is invalid: spec.distribute[0].to: weights must sum to 100 (got 70)`]],
    ['lower-case methods in an operation', { [FILE]: ap('  rules:\n    - to: [{ operation: { methods: [get] } }]\n') },
      [`${FILE}:1: AuthorizationPolicy shop/payments converts to a AuthorizationPolicy that is invalid: spec.rules[0].to[0].methods[0]: must be an upper-case HTTP method`]],
    ['the second document of a file is reported at its own first line', {
      [FILE]: `${vsHttp('')}---\n${dr('  host: payments\n  trafficPolicy: { outlierDetection: { maxEjectionPercent: 101 } }\n')}`,
    }, [`${FILE}:11: DestinationRule shop/payments converts to a TrafficPolicy that is invalid: spec.outlierDetection.maxEjectionPercent: must be an integer between 0 and 100, got 101`]],
  ])('%s', (_name, files, expected) => {
    const { errors, policies } = compile(files);
    expect(errors).toEqual(expected);
    expect(policies).toEqual([]);
  });
});

describe('Istio import: documented Istio behaviour, each problem reported once', () => {
  it('a single destination takes all traffic whatever its weight (Istio: "the weight value is assumed to be 100")', () => {
    const { errors, policies } = compile({ [FILE]: vs('  hosts: [payments]\n  http:\n    - route: [{ destination: { host: payments }, weight: 50 }]\n') });
    expect(errors).toEqual([]);
    expect(only(policies, 'RoutePolicy').spec.routes[0]?.destinations).toEqual([{ labels: {}, weight: 100 }]);
  });

  it('a missing weight among several destinations is reported once, like a native RoutePolicy', () => {
    const { errors } = compile({
      [FILE]: vs(`  hosts: [payments]
  http:
    - route:
        - destination: { host: payments }
          weight: 90
        - destination: { host: payments }
`),
    });
    expect(errors).toEqual([`${FILE}:12: spec.http[0].route[1].weight: required when a route has several destinations`]);
  });

  it('a VirtualService with two hosts reports each unsupported field once', () => {
    const { warnings } = compile({ [FILE]: vs('  hosts: [payments, payments.shop.svc.cluster.local]\n  http:\n    - route: [{ destination: { host: payments } }]\n      mirror: { host: shadow }\n') });
    expect(warnings.filter((w) => w.includes('spec.http[0].mirror'))).toEqual([`${FILE}:10: spec.http[0].mirror: not supported, ignored`]);
  });

  it('consecutiveGatewayErrors ignored next to consecutive5xxErrors is reported', () => {
    const { warnings, policies } = compile({ [FILE]: drPolicy('    outlierDetection:\n      consecutive5xxErrors: 5\n      consecutiveGatewayErrors: 2\n') });
    expect(outlier(policies)).toEqual({ consecutiveErrors: 5 });
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/^istio\.yaml:11: spec\.trafficPolicy\.outlierDetection\.consecutiveGatewayErrors: /);
  });
});

describe('Istio values outside fedgate\'s ranges: mapped, with a warning naming the value used', () => {
  // drPolicy: trafficPolicy's content starts at line 9.
  it.each<[string, string, string[], (p: readonly CompiledPolicy[]) => unknown, unknown]>([
    ['maxConnections above 64', '    connectionPool: { tcp: { maxConnections: 100 } }\n',
      [`${FILE}:9: spec.trafficPolicy.connectionPool.tcp.maxConnections: 100 is above fedgate's maximum 64; using 64`], pool, { maxConnections: 64 }],
    ['maxConnections at Istio\'s default 2^32-1', '    connectionPool: { tcp: { maxConnections: 4294967295 } }\n',
      [`${FILE}:9: spec.trafficPolicy.connectionPool.tcp.maxConnections: 4294967295 is above fedgate's maximum 64; using 64`], pool, { maxConnections: 64 }],
    ['maxConnections 0 (unset in Istio)', '    connectionPool: { tcp: { maxConnections: 0 }, http: { http2MaxRequests: 10 } }\n',
      [`${FILE}:9: spec.trafficPolicy.connectionPool.tcp.maxConnections: 0 leaves the value unset in Istio; fedgate's default applies`], pool, { maxRequests: 10 }],
    ['http1MaxPendingRequests 0 (unset in Istio)', '    connectionPool: { http: { http1MaxPendingRequests: 0, http2MaxRequests: 10 } }\n',
      [`${FILE}:9: spec.trafficPolicy.connectionPool.http.http1MaxPendingRequests: 0 leaves the value unset in Istio; fedgate's default applies`], pool, { maxRequests: 10 }],
    ['http2MaxRequests at 2^32-1 is in range', '    connectionPool: { http: { http2MaxRequests: 4294967295 } }\n', [], pool, { maxRequests: 4294967295 }],
    ['maxRequestsPerConnection 0 is unlimited in both', '    connectionPool: { http: { maxRequestsPerConnection: 0 } }\n', [], pool, { maxRequestsPerConnection: 0 }],
    ['consecutive5xxErrors above 1000', '    outlierDetection: { consecutive5xxErrors: 5000 }\n',
      [`${FILE}:9: spec.trafficPolicy.outlierDetection.consecutive5xxErrors: 5000 is above fedgate's maximum 1000; using 1000`], outlier, { consecutiveErrors: 1000 }],
    ['consecutive5xxErrors 0 (ejection off in Istio)', '    outlierDetection: { consecutive5xxErrors: 0, interval: 1s }\n',
      [`${FILE}:9: spec.trafficPolicy.outlierDetection.consecutive5xxErrors: 0 turns this ejection off in Istio; fedgate always ejects a failing cluster, by the federation default (spec.defaults.outlierDetection)`], outlier, { interval: 1000 }],
    ['interval below 100ms', '    outlierDetection: { consecutive5xxErrors: 3, interval: 10ms }\n',
      [`${FILE}:9: spec.trafficPolicy.outlierDetection.interval: 10ms is below fedgate's minimum 100ms; using 100ms`], outlier, { consecutiveErrors: 3, interval: 100 }],
    ['baseEjectionTime below 100ms', '    outlierDetection: { baseEjectionTime: 1ms }\n',
      [`${FILE}:9: spec.trafficPolicy.outlierDetection.baseEjectionTime: 1ms is below fedgate's minimum 100ms; using 100ms`], outlier, { baseEjectionTime: 100 }],
  ])('%s', (_name, extra, warnings, pick, expected) => {
    const result = compile({ [FILE]: drPolicy(extra) });
    expect(result.errors).toEqual([]);
    expect(result.warnings).toEqual(warnings);
    expect(pick(result.policies)).toEqual(expect.objectContaining(expected as Record<string, unknown>));
  });

  it('retry attempts above 10 are clamped too', () => {
    const result = compile({ [FILE]: vsHttp('      retries: { attempts: 25 }\n') });
    expect(result.warnings).toEqual([`${FILE}:10: spec.http[0].retries.attempts: 25 is above fedgate's maximum 10; using 10`]);
    expect(retries(result.policies)).toEqual(expect.objectContaining({ attempts: 10 }));
  });

  it('a value that is no integer is an error at its Istio path', () => {
    expect(compile({ [FILE]: drPolicy('    connectionPool: { tcp: { maxConnections: "many" } }\n') }).errors).toEqual([`${FILE}:9: spec.trafficPolicy.connectionPool.tcp.maxConnections: must be an integer, got "many"`]);
  });
});

describe('unknown kinds and API versions: the nearest supported one', () => {
  const envelope = (apiVersion: string, kind: string): string => `apiVersion: ${apiVersion}\nkind: ${kind}\nmetadata: { name: x }\nspec: { service: x }\n`;
  it.each<[string, string, string, string]>([
    ['a typo of a native kind', 'fedgate.io/v1alpha1', 'TraficPolicy', `${FILE}:2: kind: must be one of TrafficPolicy, RoutePolicy, FailoverPolicy, AuthorizationPolicy, FaultPolicy, got "TraficPolicy" (did you mean "TrafficPolicy"?)`],
    ['a lower-case native kind', 'fedgate.io/v1alpha1', 'faultpolicy', `${FILE}:2: kind: must be one of TrafficPolicy, RoutePolicy, FailoverPolicy, AuthorizationPolicy, FaultPolicy, got "faultpolicy" (did you mean "FaultPolicy"?)`],
    ['an Istio kind under the native apiVersion', 'fedgate.io/v1alpha1', 'VirtualService', `${FILE}:2: kind: VirtualService is an Istio kind: give it apiVersion networking.istio.io/v1, or use the native kinds (TrafficPolicy, RoutePolicy, FailoverPolicy, AuthorizationPolicy, FaultPolicy)`],
    ['a kind far from any', 'fedgate.io/v1alpha1', 'Gateway', `${FILE}:2: kind: must be one of TrafficPolicy, RoutePolicy, FailoverPolicy, AuthorizationPolicy, FaultPolicy, got "Gateway"`],
    ['a typo of an Istio kind', 'networking.istio.io/v1', 'VirtualServce', `${FILE}:2: kind: networking.istio.io/v1 VirtualServce is not supported (supported: networking.istio.io VirtualService and DestinationRule, security.istio.io AuthorizationPolicy) (did you mean "VirtualService"?)`],
    ['a native kind under an Istio apiVersion', 'networking.istio.io/v1', 'TrafficPolicy', `${FILE}:2: kind: networking.istio.io/v1 TrafficPolicy is not supported (supported: networking.istio.io VirtualService and DestinationRule, security.istio.io AuthorizationPolicy) (TrafficPolicy is a fedgate kind: apiVersion fedgate.io/v1alpha1)`],
    ['a typo of the native apiVersion', 'fedgate.io/v1alpa1', 'TrafficPolicy', `${FILE}:1: apiVersion: "fedgate.io/v1alpa1" is not supported (use fedgate.io/v1alpha1, or networking.istio.io / security.istio.io documents) (did you mean "fedgate.io/v1alpha1"?)`],
  ])('%s', (_name, apiVersion, kind, expected) => {
    expect(compile({ [FILE]: envelope(apiVersion, kind) }).errors).toEqual([expected]);
  });
});
