import { parseYaml } from '../config/yaml-source.js';
import { formatIssue } from '../core/errors.js';
import type { PolicyRecord } from '../model/catalog.js';
import type { PolicyInput } from './compile.js';
import { compileForGateway, gatewayPolicyProblems, validatePolicySet } from './policy-set.js';
import { PolicyIndex } from './resolve.js';

/** Parses each file (name → YAML text) the way `fedgate policy validate` does, keeping real line numbers. */
function inputsOf(files: Record<string, string>): PolicyInput[] {
  const inputs: PolicyInput[] = [];
  for (const [source, text] of Object.entries(files)) {
    const parsed = parseYaml(source, text);
    if (parsed.issues.length > 0) throw new Error(`test YAML does not parse: ${parsed.issues.map(formatIssue).join('; ')}`);
    for (const doc of parsed.documents) inputs.push({ document: doc.value, source: doc.source, lineOf: (path) => doc.lineOf(path) });
  }
  return inputs;
}

function validate(files: Record<string, string>): { errors: string[]; warnings: string[]; result: ReturnType<typeof validatePolicySet> } {
  const result = validatePolicySet(inputsOf(files));
  return { errors: result.issues.map(formatIssue), warnings: result.warnings.map(formatIssue), result };
}

const FILE = 'policies/p.yaml';

/** Lines 1–5 of every table document; `spec:` is on line 6, its first field on line 7. */
function head(kind: string, name = 'payments'): string {
  return `apiVersion: fedgate.io/v1alpha1
kind: ${kind}
metadata:
  name: ${name}
  namespace: shop
`;
}
const TRAFFIC = head('TrafficPolicy');
const ROUTE = head('RoutePolicy');
const FAILOVER = head('FailoverPolicy');
const AUTHZ = head('AuthorizationPolicy');
const FAULT = head('FaultPolicy');

const DNS_LABEL = 'must be a DNS label: lower-case letters, digits and "-", at most 63 characters, starting and ending with a letter or digit';

describe('validatePolicySet: every problem of a bad document, with file, line and field path', () => {
  it.each<[string, string, string[]]>([
    // ── envelope ──────────────────────────────────────────────────────────────
    ['missing apiVersion', `kind: TrafficPolicy
metadata:
  name: payments
spec:
  timeout: 1s
`, [`${FILE}:1: apiVersion: required`]],
    ['missing kind and metadata', `apiVersion: fedgate.io/v1alpha1
spec:
  timeout: 1s
`, [`${FILE}:1: kind: required`, `${FILE}:1: metadata: required`]],
    ['missing metadata.name (reported at metadata)', `apiVersion: fedgate.io/v1alpha1
kind: TrafficPolicy
metadata:
  namespace: shop
spec:
  timeout: 1s
`, [`${FILE}:3: metadata.name: required`]],
    ['a document that is a list, not a mapping', `- apiVersion: fedgate.io/v1alpha1
- kind: TrafficPolicy
`, [`${FILE}:1: a policy document must be a mapping`]],
    ['unknown apiVersion', TRAFFIC.replace('fedgate.io/v1alpha1', 'fedgate.io/v1') + 'spec:\n  timeout: 1s\n', [
      `${FILE}:1: apiVersion: "fedgate.io/v1" is not supported (use fedgate.io/v1alpha1, or networking.istio.io / security.istio.io documents)`,
    ]],
    ['unknown kind', head('RetryPolicy') + 'spec:\n  timeout: 1s\n', [
      `${FILE}:2: kind: must be one of TrafficPolicy, RoutePolicy, FailoverPolicy, AuthorizationPolicy, FaultPolicy, got "RetryPolicy"`,
    ]],
    ['unknown top-level field', `${TRAFFIC}spec:
  timeout: 1s
status:
  applied: true
`, [`${FILE}:8: status: unknown field`]],
    ['unknown metadata field (with hint) and labels of the wrong type', `apiVersion: fedgate.io/v1alpha1
kind: TrafficPolicy
metadata:
  name: payments
  labls: { team: a }
  annotations: [a, b]
spec:
  timeout: 1s
`, [
      `${FILE}:5: metadata.labls: unknown field (did you mean "labels"?)`,
      `${FILE}:6: metadata.annotations: must be a mapping, got a list`,
    ]],

    // ── TrafficPolicy ─────────────────────────────────────────────────────────
    ['TrafficPolicy: sets nothing', `${TRAFFIC}spec:
  service: payments
  clusters: [us-east]
`, [`${FILE}:6: spec: sets nothing: give timeout, retries, connectionPool or outlierDetection`]],
    ['TrafficPolicy: wrong types', `${TRAFFIC}spec:
  service: payments
  timeout: 5
  retries:
    attempts: "3"
  connectionPool: 4
`, [
      `${FILE}:8: spec.timeout: must be a duration such as "500ms" or "30s", got the number 5`,
      `${FILE}:10: spec.retries.attempts: must be an integer between 0 and 10, got a string`,
      `${FILE}:11: spec.connectionPool: must be a mapping, got a number`,
    ]],
    ['TrafficPolicy: bad durations', `${TRAFFIC}spec:
  service: payments
  timeout: "5"
  retries:
    attempts: 2
    perTryTimeout: 0s
  outlierDetection:
    interval: 50ms
    baseEjectionTime: 1x
`, [
      `${FILE}:8: spec.timeout: "5" is not a duration (use e.g. 500ms, 30s, 5m, 1h)`,
      `${FILE}:11: spec.retries.perTryTimeout: must be at least 1ms, got 0s`,
      `${FILE}:13: spec.outlierDetection.interval: must be at least 100ms, got 50ms`,
      `${FILE}:14: spec.outlierDetection.baseEjectionTime: "1x" is not a duration (use e.g. 500ms, 30s, 5m, 1h)`,
    ]],
    ['TrafficPolicy: out-of-range values', `${TRAFFIC}spec:
  service: payments
  retries:
    attempts: 11
  connectionPool:
    maxConnections: 65
    maxPendingRequests: 0
  outlierDetection:
    consecutiveErrors: 0
    maxEjectionPercent: 150
`, [
      `${FILE}:9: spec.retries.attempts: must be an integer between 0 and 10, got 11`,
      `${FILE}:11: spec.connectionPool.maxConnections: must be an integer between 1 and 64, got 65`,
      `${FILE}:12: spec.connectionPool.maxPendingRequests: must be an integer >= 1, got 0`,
      `${FILE}:14: spec.outlierDetection.consecutiveErrors: must be an integer between 1 and 1000, got 0`,
      `${FILE}:15: spec.outlierDetection.maxEjectionPercent: must be an integer between 0 and 100, got 150`,
    ]],
    ['TrafficPolicy: unknown fields, with and without a hint', `${TRAFFIC}spec:
  service: payments
  retires:
    attempts: 2
  timeout: 1s
  connectionPool:
    maxConns: 4
`, [
      `${FILE}:8: spec.retires: unknown field (did you mean "retries"?)`,
      `${FILE}:12: spec.connectionPool.maxConns: unknown field (known: maxConnections, maxPendingRequests, maxRequests, maxRequestsPerConnection)`,
    ]],
    ['TrafficPolicy: unknown and duplicate retry conditions', `${TRAFFIC}spec:
  service: payments
  retries:
    attempts: 2
    retryOn: [5xx, "500", 5xx]
`, [
      `${FILE}:10: spec.retries.retryOn[1]: must be one of connect-failure, reset, unavailable, 5xx, gateway-error, retriable-4xx, got "500"`,
      `${FILE}:10: spec.retries.retryOn[2]: duplicate of [0]`,
    ]],
    ['TrafficPolicy: bad service and cluster names', `${TRAFFIC}spec:
  service: Payments
  clusters: [us-east, US-West, us-east]
  timeout: 1s
`, [
      `${FILE}:7: spec.service: ${DNS_LABEL}`,
      `${FILE}:8: spec.clusters[1]: ${DNS_LABEL}`,
      `${FILE}:8: spec.clusters[2]: duplicate of [0]`,
    ]],
    ['TrafficPolicy: perTryTimeout longer than timeout', `${TRAFFIC}spec:
  service: payments
  timeout: 1s
  retries:
    attempts: 2
    perTryTimeout: 2s
`, [`${FILE}:11: spec.retries.perTryTimeout: is longer than the overall timeout (2000ms > 1000ms)`]],

    // ── RoutePolicy ───────────────────────────────────────────────────────────
    ['RoutePolicy: weights not summing to 100', `${ROUTE}spec:
  service: payments
  routes:
    - name: split
      destinations:
        - cluster: us-east
          weight: 60
        - cluster: us-west
          weight: 50
`, [`${FILE}:10: spec.routes[0].destinations: weights must sum to 100 (got 110)`]],
    ['RoutePolicy: missing weight with several destinations', `${ROUTE}spec:
  service: payments
  routes:
    - name: split
      destinations:
        - cluster: us-east
          weight: 60
        - cluster: us-west
`, [`${FILE}:13: spec.routes[0].destinations[1].weight: required when a route has several destinations`]],
    ['RoutePolicy: a route without matches before other routes', `${ROUTE}spec:
  service: payments
  routes:
    - name: default
      destinations:
        - cluster: us-east
    - name: canary
      match:
        - headers:
            x-canary: { exact: "true" }
      destinations:
        - cluster: us-west
`, [`${FILE}:9: spec.routes[0].match: a route without matches takes every request: routes after it (canary) would never apply`]],
    ['RoutePolicy: destination needs exactly one of cluster, labels', `${ROUTE}spec:
  service: payments
  routes:
    - name: all
      destinations:
        - cluster: us-east
          labels: { version: v2 }
          weight: 50
        - weight: 50
`, [
      `${FILE}:11: spec.routes[0].destinations[0]: give exactly one of cluster, labels`,
      `${FILE}:14: spec.routes[0].destinations[1]: give exactly one of cluster, labels`,
    ]],
    ['RoutePolicy: header match needs exactly one of exact, prefix, regex, present; header names lower case', `${ROUTE}spec:
  service: payments
  routes:
    - name: canary
      match:
        - headers:
            x-user: { exact: a, prefix: b }
            x-env: {}
            X-Team: { exact: c }
      destinations:
        - labels: { version: v2 }
`, [
      `${FILE}:12: spec.routes[0].match[0].headers.x-user: give exactly one of exact, prefix, regex, present`,
      `${FILE}:13: spec.routes[0].match[0].headers.x-env: give exactly one of exact, prefix, regex, present`,
      `${FILE}:14: spec.routes[0].match[0].headers.X-Team: header name "X-Team" must be lower case token characters`,
    ]],
    ['RoutePolicy: path match exactly-one-of, invalid regexes, relative path, lower-case method', `${ROUTE}spec:
  service: payments
  routes:
    - name: api
      match:
        - path: { exact: /a, prefix: /b }
        - path: { regex: "(" }
        - path: { prefix: api }
          methods: [get]
        - headers:
            x-id: { regex: "[" }
      destinations:
        - cluster: us-east
`, [
      `${FILE}:11: spec.routes[0].match[0].path: give exactly one of exact, prefix, regex`,
      `${FILE}:12: spec.routes[0].match[1].path.regex: not a valid regular expression: Invalid regular expression: /(/: Unterminated group`,
      `${FILE}:13: spec.routes[0].match[2].path.prefix: must start with "/"`,
      `${FILE}:14: spec.routes[0].match[2].methods[0]: must be an upper-case HTTP method`,
      `${FILE}:16: spec.routes[0].match[3].headers.x-id.regex: not a valid regular expression: Invalid regular expression: /[/: Unterminated character class`,
    ]],
    ['RoutePolicy: route name used twice', `${ROUTE}spec:
  service: payments
  routes:
    - name: a
      match: [{ path: { prefix: /v1 } }]
      destinations: [{ cluster: us-east }]
    - name: a
      destinations: [{ cluster: us-west }]
`, [`${FILE}:12: spec.routes[1]: route name used twice (same as [0])`]],
    ['RoutePolicy: weight out of range, route timeout not a duration', `${ROUTE}spec:
  service: payments
  routes:
    - name: a
      timeout: 3
      destinations:
        - cluster: us-east
          weight: 120
`, [
      `${FILE}:10: spec.routes[0].timeout: must be a duration such as "500ms" or "30s", got the number 3`,
      `${FILE}:13: spec.routes[0].destinations[0].weight: must be an integer between 0 and 100, got 120`,
    ]],
    ['RoutePolicy: service required, routes must not be empty', `${ROUTE}spec:
  routes: []
`, [`${FILE}:6: spec.service: required`, `${FILE}:7: spec.routes: must not be empty`]],

    // ── FailoverPolicy ────────────────────────────────────────────────────────
    ['FailoverPolicy: failover listing its own region', `${FAILOVER}spec:
  service: payments
  failover:
    - from: us-east-1
      to: [us-west-2, us-east-1]
`, [`${FILE}:10: spec.failover[0].to: lists its own region "us-east-1"`]],
    ['FailoverPolicy: distribute not summing to 100', `${FAILOVER}spec:
  service: payments
  distribute:
    - from: us-east-1
      to:
        us-east-1: 70
        us-west-2: 20
`, [`${FILE}:10: spec.distribute[0].to: weights must sum to 100 (got 90)`]],
    ['FailoverPolicy: sets nothing', `${FAILOVER}spec:
  service: payments
`, [`${FILE}:6: spec: sets nothing: give failover, distribute, overprovisioningFactor or panicThreshold`]],
    ['FailoverPolicy: region listed twice, factor and threshold out of range', `${FAILOVER}spec:
  failover:
    - from: us-east-1
      to: [us-west-2]
    - from: us-east-1
      to: [eu-west-1]
  overprovisioningFactor: 0.5
  panicThreshold: 101
`, [
      `${FILE}:10: spec.failover[1]: region listed twice (same as [0])`,
      `${FILE}:12: spec.overprovisioningFactor: must be a number between 1 and 10, got 0.5`,
      `${FILE}:13: spec.panicThreshold: must be an integer between 0 and 100, got 101`,
    ]],
    ['FailoverPolicy: empty target list and negative share', `${FAILOVER}spec:
  failover:
    - from: us-east-1
      to: []
  distribute:
    - from: us-east-1
      to: { us-east-1: 110, us-west-2: -10 }
`, [
      `${FILE}:9: spec.failover[0].to: must not be empty`,
      `${FILE}:12: spec.distribute[0].to.us-east-1: must be an integer between 0 and 100, got 110`,
      `${FILE}:12: spec.distribute[0].to.us-west-2: must be an integer between 0 and 100, got -10`,
    ]],

    // ── AuthorizationPolicy ───────────────────────────────────────────────────
    ['AuthorizationPolicy: action required', `${AUTHZ}spec:
  service: payments
`, [`${FILE}:6: spec.action: required`]],
    ['AuthorizationPolicy: unknown action', `${AUTHZ}spec:
  service: payments
  action: allow
`, [`${FILE}:8: spec.action: must be one of ALLOW, DENY, got "allow"`]],
    ['AuthorizationPolicy: principal patterns only at segment boundaries, and SPIFFE IDs', `${AUTHZ}spec:
  action: ALLOW
  rules:
    - from:
        - principals:
            - spiffe://td/ns/shop/*
            - "*/sa/web"
            - spiffe://td/ns/shop*
            - "*web"
            - cluster.local/ns/shop/sa/web
            - "*/sa/"
            - td/ns/shop/*
          notPrincipals: ["spiffe://TD/ns/x"]
`, [
      `${FILE}:13: spec.rules[0].from[0].principals[2]: "spiffe://td/ns/shop*" is not a principal pattern: "spiffe://td/ns/shop*": path contains "*"; allowed are a-z, A-Z, 0-9, ".", "-" and "_"`,
      `${FILE}:14: spec.rules[0].from[0].principals[3]: "*web" is not a principal pattern: "*web" is not a SPIFFE ID: it must start with "spiffe://"`,
      `${FILE}:15: spec.rules[0].from[0].principals[4]: "cluster.local/ns/shop/sa/web" is not a principal pattern: "cluster.local/ns/shop/sa/web" is not a SPIFFE ID: it must start with "spiffe://"`,
      `${FILE}:16: spec.rules[0].from[0].principals[5]: "*/sa/": the part after "*/" must be SPIFFE path segments`,
      `${FILE}:17: spec.rules[0].from[0].principals[6]: "td/ns/shop/*": the part before "/*" must be a SPIFFE ID (spiffe://<trust-domain>[/path])`,
      `${FILE}:18: spec.rules[0].from[0].notPrincipals[0]: "spiffe://TD/ns/x" is not a principal pattern: "spiffe://TD/ns/x": trust domain must be lower case`,
    ]],
    ['AuthorizationPolicy: trust domains, namespaces, clusters, methods, path patterns, ports', `${AUTHZ}spec:
  service: payments
  action: DENY
  rules:
    - from:
        - trustDomains: [Example.org]
          namespaces: [Shop]
          clusters: [us_east]
      to:
        - methods: [get]
          paths: [/api/*/items, api, "*.json", "/v1/*"]
          ports: [0, 8080]
`, [
      `${FILE}:11: spec.rules[0].from[0].trustDomains[0]: trust domain must be lower case`,
      `${FILE}:12: spec.rules[0].from[0].namespaces[0]: ${DNS_LABEL}`,
      `${FILE}:13: spec.rules[0].from[0].clusters[0]: ${DNS_LABEL}`,
      `${FILE}:15: spec.rules[0].to[0].methods[0]: must be an upper-case HTTP method`,
      `${FILE}:16: spec.rules[0].to[0].paths[0]: "/api/*/items": "*" may only start or end a path pattern`,
      `${FILE}:16: spec.rules[0].to[0].paths[1]: "api" must start with "/" or "*"`,
      `${FILE}:17: spec.rules[0].to[0].ports[0]: must be an integer between 1 and 65535, got 0`,
    ]],
    ['AuthorizationPolicy: empty from/to lists and an unknown rule field', `${AUTHZ}spec:
  action: ALLOW
  rules:
    - from: []
      to: []
      when: [{ key: "request.headers[x]", values: [a] }]
`, [
      `${FILE}:9: spec.rules[0].from: must not be empty`,
      `${FILE}:10: spec.rules[0].to: must not be empty`,
      `${FILE}:11: spec.rules[0].when: unknown field (known: from, to)`,
    ]],

    // ── FaultPolicy ───────────────────────────────────────────────────────────
    ['FaultPolicy: neither delay nor abort', `${FAULT}spec:
  service: payments
  faults:
    - match:
        - path: { prefix: /slow }
`, [`${FILE}:9: spec.faults[0]: give a delay, an abort, or both`]],
    ['FaultPolicy: percentages over 100 and statuses out of range', `${FAULT}spec:
  service: payments
  faults:
    - delay:
        fixedDelay: 2h
        percentage: 150
      abort:
        httpStatus: 600
        grpcStatus: 17
        percentage: -1
`, [
      `${FILE}:10: spec.faults[0].delay.fixedDelay: must be at most 3600000ms, got 2h`,
      `${FILE}:11: spec.faults[0].delay.percentage: must be a number between 0 and 100, got 150`,
      `${FILE}:13: spec.faults[0].abort.httpStatus: must be an integer between 200 and 599, got 600`,
      `${FILE}:14: spec.faults[0].abort.grpcStatus: must be an integer between 1 and 16, got 17`,
      `${FILE}:15: spec.faults[0].abort.percentage: must be a number between 0 and 100, got -1`,
    ]],
    ['FaultPolicy: service required, faults must not be empty, abort needs a status', `${FAULT}spec:
  faults:
    - abort: { percentage: 5 }
`, [`${FILE}:6: spec.service: required`, `${FILE}:8: spec.faults[0].abort.httpStatus: required`]],

    // ── several errors in one document, all at once ───────────────────────────
    ['several errors in one document are reported together', `apiVersion: fedgate.io/v1alpha1
kind: RoutePolicy
metadata:
  name: payments
  namespace: shop
  labels: { team: 7 }
spec:
  service: Payments
  clusters: []
  routes:
    - name: Canary
      timeout: soon
      destinations:
        - cluster: us-east
          weight: "50"
status: {}
`, [
      `${FILE}:6: metadata.labels.team: must be a string, got a number`,
      `${FILE}:8: spec.service: ${DNS_LABEL}`,
      `${FILE}:9: spec.clusters: must not be empty`,
      `${FILE}:11: spec.routes[0].name: ${DNS_LABEL}`,
      `${FILE}:12: spec.routes[0].timeout: "soon" is not a duration (use e.g. 500ms, 30s, 5m, 1h)`,
      `${FILE}:15: spec.routes[0].destinations[0].weight: must be an integer between 0 and 100, got a string`,
      `${FILE}:16: status: unknown field`,
    ]],

    // ── multi-document file: lines count from the top of the file ─────────────
    ['multi-document file: errors of later documents carry their own lines', `apiVersion: fedgate.io/v1alpha1
kind: TrafficPolicy
metadata:
  name: payments
  namespace: shop
spec:
  timeout: 2s
---
apiVersion: fedgate.io/v1alpha1
kind: FaultPolicy
metadata:
  name: payments
  namespace: shop
spec:
  service: payments
  faults:
    - abort:
        httpStatus: 503
        percentage: 101
---
apiVersion: fedgate.io/v1alpha1
kind: TrafficPolicy
metadata:
  name: payments
  namespace: shop
spec:
  timeout: 3s
`, [
      `${FILE}:19: spec.faults[0].abort.percentage: must be a number between 0 and 100, got 101`,
      `${FILE}:24: metadata.name: TrafficPolicy/shop/payments is also defined in policies/p.yaml`,
    ]],
  ])('%s', (_name, yaml, expected) => {
    const { errors, result } = validate({ [FILE]: yaml });
    expect(errors).toEqual(expected);
    expect(result.set.policies).toEqual([]);
  });

  it('reports a document identity defined in two files at the second one', () => {
    const doc = `${TRAFFIC}spec:\n  timeout: 1s\n`;
    const { errors } = validate({ 'policies/a.yaml': doc, 'policies/b.yaml': `# copy\n${doc}` });
    expect(errors).toEqual(['policies/b.yaml:5: metadata.name: TrafficPolicy/shop/payments is also defined in policies/a.yaml']);
  });

  it('the Istio VirtualService of the issue: route weights 90 + 20', () => {
    const { errors, result } = validate({
      'policies/destination-rules.yaml': `apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata:
  name: payments
  namespace: shop
spec:
  host: payments
  subsets:
    - name: v1
      labels: { version: v1 }
    - name: v2
      labels: { version: v2 }
`,
      'policies/payments.yaml': `apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata:
  name: payments
  namespace: shop
spec:
  hosts: [payments]
  http:
    - route:
        - destination:
            host: payments
            subset: v1
          weight: 90
        - destination:
            host: payments
            subset: v2
          weight: 20
`,
    });
    expect(errors).toEqual(['policies/payments.yaml:17: spec.http[0].route[1].weight: weights must sum to 100 (got 110)']);
    expect(result.set.policies).toEqual([]);
  });

  it('one bad document makes the whole set compile to zero policies (but every document keeps its identity)', () => {
    const { errors, result } = validate({
      'policies/good.yaml': `${TRAFFIC}spec:\n  timeout: 1s\n`,
      'policies/bad.yaml': `${FAULT}spec:\n  service: payments\n  faults: []\n`,
    });
    expect(errors).toEqual(['policies/bad.yaml:8: spec.faults: must not be empty']);
    expect(result.set.policies).toEqual([]);
    expect(result.policies.map((p) => p.key)).toEqual(['TrafficPolicy/shop/payments', 'FaultPolicy/shop/payments']);
  });

  it('reports an invalid name once, in the words of the envelope check', () => {
    const { errors } = validate({ [FILE]: `${head('TrafficPolicy', 'Payments_V2')}spec:\n  timeout: 1s\n` });
    expect(errors).toEqual([`${FILE}:4: metadata.name: "Payments_V2" is not a valid name (lower-case letters, digits, "-" and ".")`]);
  });

  it('reports an invalid namespace once', () => {
    const { errors } = validate({ [FILE]: `${TRAFFIC.replace('namespace: shop', 'namespace: Shop')}spec:\n  timeout: 1s\n` });
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(/^policies\/p\.yaml:5: metadata\.namespace: must be a DNS label/);
  });

  it('reports a missing spec as required', () => {
    const { errors } = validate({ [FILE]: TRAFFIC });
    expect(errors).toEqual([`${FILE}:1: spec: required`]);
  });

  it('refuses a path pattern with "*" at both ends (it could never match)', () => {
    const { errors } = validate({ [FILE]: `${AUTHZ}spec:\n  action: ALLOW\n  rules:\n    - to:\n        - paths: ["*/internal/*"]\n` });
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(/^policies\/p\.yaml:10: spec\.rules\[0\]\.to\[0\]\.paths\[0\]: /);
  });
});

describe('validatePolicySet: good documents', () => {
  it('compiles every native kind, durations in milliseconds and defaults filled in', () => {
    const { errors, warnings, result } = validate({
      'policies/payments.yaml': `${TRAFFIC}spec:
  service: payments
  clusters: [us-east]
  timeout: 2s
  retries:
    attempts: 3
    perTryTimeout: 500ms
    retryOn: [5xx, reset]
  outlierDetection:
    interval: 1m30s
---
${ROUTE}spec:
  service: payments
  routes:
    - name: canary
      match:
        - headers:
            x-canary: { exact: "true" }
          methods: [GET]
      destinations:
        - labels: { version: v2 }
    - name: split
      timeout: 1s
      destinations:
        - cluster: us-east
          weight: 90
        - cluster: us-west
          weight: 10
---
${FAILOVER}spec:
  failover:
    - from: us-east-1
      to: [us-west-2, eu-west-1]
  distribute:
    - from: us-east-1
      to: { us-east-1: 80, us-west-2: 20 }
---
${AUTHZ}spec:
  service: payments
  action: ALLOW
  rules:
    - from:
        - principals: [spiffe://td/ns/shop/*, "*/sa/web"]
      to:
        - methods: [GET]
          paths: [/api/*, "*.json"]
          ports: [8080]
---
${FAULT}spec:
  service: payments
  faults:
    - delay: { fixedDelay: 250ms, percentage: 12.5 }
      abort: { httpStatus: 503, grpcStatus: 14, percentage: 1 }
`,
    });
    expect(errors).toEqual([]);
    expect(warnings).toEqual([]);
    expect(result.set.policies).toEqual([
      {
        kind: 'TrafficPolicy', origin: 'TrafficPolicy/shop/payments', name: 'payments', namespace: 'shop', service: 'payments', clusters: ['us-east'],
        spec: { service: 'payments', clusters: ['us-east'], timeout: 2000, retries: { attempts: 3, perTryTimeout: 500, retryOn: ['5xx', 'reset'] }, outlierDetection: { interval: 90_000 } },
      },
      {
        kind: 'RoutePolicy', origin: 'RoutePolicy/shop/payments', name: 'payments', namespace: 'shop', service: 'payments', clusters: undefined,
        spec: {
          service: 'payments',
          routes: [
            { name: 'canary', match: [{ headers: { 'x-canary': { exact: 'true' } }, methods: ['GET'] }], destinations: [{ labels: { version: 'v2' } }] },
            { name: 'split', match: [], timeout: 1000, destinations: [{ cluster: 'us-east', weight: 90 }, { cluster: 'us-west', weight: 10 }] },
          ],
        },
      },
      {
        kind: 'FailoverPolicy', origin: 'FailoverPolicy/shop/payments', name: 'payments', namespace: 'shop', service: undefined, clusters: undefined,
        spec: { failover: [{ from: 'us-east-1', to: ['us-west-2', 'eu-west-1'] }], distribute: [{ from: 'us-east-1', to: { 'us-east-1': 80, 'us-west-2': 20 } }] },
      },
      {
        kind: 'AuthorizationPolicy', origin: 'AuthorizationPolicy/shop/payments', name: 'payments', namespace: 'shop', service: 'payments', clusters: undefined,
        spec: { service: 'payments', action: 'ALLOW', rules: [{ from: [{ principals: ['spiffe://td/ns/shop/*', '*/sa/web'] }], to: [{ methods: ['GET'], paths: ['/api/*', '*.json'], ports: [8080] }] }] },
      },
      {
        kind: 'FaultPolicy', origin: 'FaultPolicy/shop/payments', name: 'payments', namespace: 'shop', service: 'payments', clusters: undefined,
        spec: { service: 'payments', faults: [{ match: [], delay: { fixedDelay: 250, percentage: 12.5 }, abort: { httpStatus: 503, grpcStatus: 14, percentage: 1 } }] },
      },
    ]);
    expect(result.policies.map((p) => p.key)).toEqual([
      'TrafficPolicy/shop/payments',
      'RoutePolicy/shop/payments',
      'FailoverPolicy/shop/payments',
      'AuthorizationPolicy/shop/payments',
      'FaultPolicy/shop/payments',
    ]);
  });

  it('a single destination needs no weight; the namespace defaults to "default"', () => {
    const { errors, result } = validate({
      [FILE]: `apiVersion: fedgate.io/v1alpha1
kind: RoutePolicy
metadata:
  name: pin
spec:
  service: payments
  routes:
    - name: pin
      destinations: [{ cluster: us-east }]
`,
    });
    expect(errors).toEqual([]);
    expect(result.set.policies).toEqual([
      { kind: 'RoutePolicy', origin: 'RoutePolicy/default/pin', name: 'pin', namespace: 'default', service: 'payments', clusters: undefined, spec: { service: 'payments', routes: [{ name: 'pin', match: [], destinations: [{ cluster: 'us-east' }] }] } },
    ]);
  });

  it('an ALLOW policy without rules is valid (it allows nothing) and compiles to empty rules', () => {
    const { errors, result } = validate({ [FILE]: `${AUTHZ}spec:\n  action: ALLOW\n` });
    expect(errors).toEqual([]);
    expect(result.set.policies.map((p) => p.spec)).toEqual([{ action: 'ALLOW', rules: [] }]);
  });
});

describe('validatePolicySet: overlap warnings', () => {
  it('warns when two equally specific documents set the same field, naming the winner', () => {
    const { errors, warnings, result } = validate({
      [FILE]: `${head('TrafficPolicy', 'b-timeouts')}spec:
  service: payments
  timeout: 1s
---
${head('TrafficPolicy', 'a-timeouts')}spec:
  service: payments
  timeout: 2s
  outlierDetection: { interval: 1s }
`,
    });
    expect(errors).toEqual([]);
    expect(result.set.policies).toHaveLength(2);
    expect(warnings).toEqual([
      'TrafficPolicy/shop/b-timeouts: TrafficPolicy a-timeouts and b-timeouts both set timeout for payments.shop: a-timeouts wins (equally specific documents: the name first in order)',
    ]);
  });

  it('names the namespace and the clusters for namespace-wide, cluster-scoped documents', () => {
    const { warnings } = validate({
      [FILE]: `${head('FailoverPolicy', 'one')}spec:
  clusters: [us-east]
  panicThreshold: 10
---
${head('FailoverPolicy', 'two')}spec:
  clusters: [us-east]
  panicThreshold: 20
`,
    });
    expect(warnings).toEqual([
      'FailoverPolicy/shop/two: FailoverPolicy one and two both set panicThreshold for every service of namespace shop on us-east: one wins (equally specific documents: the name first in order)',
    ]);
  });

  it('whole-document kinds overlap whenever they select the same service', () => {
    const route = (name: string): string => `${head('RoutePolicy', name)}spec:\n  service: payments\n  routes:\n    - name: r\n      destinations: [{ cluster: us-east }]\n`;
    const { warnings } = validate({ 'policies/x.yaml': route('x'), 'policies/y.yaml': route('y') });
    expect(warnings).toEqual(['RoutePolicy/shop/y: RoutePolicy x and y both apply to payments.shop: x wins (equally specific documents: the name first in order)']);
  });

  it('no warning between documents of different specificity, or of different services', () => {
    const { warnings } = validate({
      [FILE]: `${head('TrafficPolicy', 'wide')}spec:
  timeout: 1s
---
${head('TrafficPolicy', 'narrow')}spec:
  service: payments
  timeout: 2s
---
${head('TrafficPolicy', 'other')}spec:
  service: orders
  timeout: 2s
`,
    });
    expect(warnings).toEqual([]);
  });

  it('lists only the nested fields both documents set', () => {
    const { warnings } = validate({
      [FILE]: `${head('TrafficPolicy', 'a')}spec:
  service: payments
  retries: { attempts: 3 }
---
${head('TrafficPolicy', 'b')}spec:
  service: payments
  retries: { attempts: 1 }
`,
    });
    expect(warnings).toEqual(['TrafficPolicy/shop/b: TrafficPolicy a and b both set retries.attempts for payments.shop: a wins (equally specific documents: the name first in order)']);
  });

  it('no warning when two documents set different fields of one nested mapping (they merge)', () => {
    const { warnings } = validate({
      [FILE]: `${head('TrafficPolicy', 'a')}spec:
  service: payments
  connectionPool: { maxConnections: 4 }
---
${head('TrafficPolicy', 'b')}spec:
  service: payments
  connectionPool: { maxRequests: 100 }
`,
    });
    expect(warnings).toEqual([]);
  });
});

describe('compileForGateway and gatewayPolicyProblems', () => {
  const record = (key: string, document: Record<string, unknown>, revision = 7): PolicyRecord => {
    const [kind, namespace, name] = key.split('/') as [string, string, string];
    return { key, kind, namespace, name, document, revision } as PolicyRecord;
  };
  const fault = record('FaultPolicy/shop/chaos', {
    apiVersion: 'fedgate.io/v1alpha1',
    kind: 'FaultPolicy',
    metadata: { name: 'chaos', namespace: 'shop' },
    spec: { service: 'payments', clusters: ['us-east'], faults: [{ abort: { httpStatus: 503, percentage: 5 } }] },
  });

  it('applies a valid set, with its index', () => {
    const result = compileForGateway([fault], { cluster: 'us-east', allowFaultInjection: true });
    expect(result.ok).toBe(true);
    if (result.ok) expect(result.index.onCluster('us-east').map((p) => p.origin)).toEqual(['FaultPolicy/shop/chaos']);
  });

  it('refuses fault injection on a gateway that does not allow it, only where the fault applies', () => {
    expect(compileForGateway([fault], { cluster: 'us-east', allowFaultInjection: false })).toEqual({
      ok: false,
      problems: ['FaultPolicy/shop/chaos injects faults on us-east, whose gateway refuses fault injection (spec.gateway.policies.allowFaultInjection: false)'],
    });
    expect(compileForGateway([fault], { cluster: 'us-west', allowFaultInjection: false }).ok).toBe(true);
    expect(gatewayPolicyProblems(PolicyIndex.EMPTY, { cluster: 'us-east', allowFaultInjection: false })).toEqual([]);
  });

  it('refuses an invalid stored set, naming the record and revision', () => {
    const bad = record('TrafficPolicy/shop/slow', { apiVersion: 'fedgate.io/v1alpha1', kind: 'TrafficPolicy', metadata: { name: 'slow', namespace: 'shop' }, spec: { timeout: 'soon' } });
    expect(compileForGateway([bad, fault], { cluster: 'us-east', allowFaultInjection: true })).toEqual({
      ok: false,
      problems: ['TrafficPolicy/shop/slow@7: spec.timeout: "soon" is not a duration (use e.g. 500ms, 30s, 5m, 1h)'],
    });
  });
});
