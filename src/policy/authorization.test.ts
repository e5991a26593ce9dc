import { authorize, NO_AUTHORIZATION, type AuthorizationRules, type CallFacts } from './authorization.js';
import { compilePolicySet } from './compile.js';
import { PolicyIndex } from './resolve.js';

interface PolicyDoc {
  name: string;
  action: 'ALLOW' | 'DENY';
  rules?: unknown[];
}

/** The authorization in force for payments.shop on us-east, from validated AuthorizationPolicy documents. */
function rulesOf(...policies: PolicyDoc[]): AuthorizationRules {
  const result = compilePolicySet(
    policies.map(({ name, action, rules }) => ({
      document: { apiVersion: 'fedgate.io/v1alpha1', kind: 'AuthorizationPolicy', metadata: { name, namespace: 'shop' }, spec: { service: 'payments', action, ...(rules ? { rules } : {}) } },
      source: `${name}.yaml`,
    })),
  );
  expect(result.issues).toEqual([]);
  return new PolicyIndex(result.set).authorization('shop', 'payments', 'us-east');
}

const WEB = 'spiffe://td.example/ns/shop/sa/web';
const API = 'spiffe://td.example/ns/shop/sa/api';

function call(overrides: Partial<CallFacts> = {}): CallFacts {
  return { principal: WEB, sourceCluster: 'us-west', method: 'GET', path: '/api/items', port: 8080, ...overrides };
}

const origin = (name: string): string => `AuthorizationPolicy/shop/${name}`;

describe('authorize: DENY first, then ALLOW with default deny', () => {
  it('no policy: everything is allowed', () => {
    expect(authorize(NO_AUTHORIZATION, call())).toEqual({ allowed: true, policy: undefined, reason: 'no authorization policy' });
  });

  it('a matching DENY rule refuses even what an ALLOW rule allows', () => {
    const rules = rulesOf({ name: 'allow-all', action: 'ALLOW', rules: [{}] }, { name: 'deny-api', action: 'DENY', rules: [{ to: [{ methods: ['POST'] }] }, { from: [{ principals: [API] }] }] });
    expect(authorize(rules, call({ principal: API }))).toEqual({ allowed: false, policy: origin('deny-api'), reason: `${API} is denied by ${origin('deny-api')} (rule 1)` });
    expect(authorize(rules, call())).toEqual({ allowed: true, policy: origin('allow-all'), reason: `allowed by ${origin('allow-all')} (rule 0)` });
  });

  it('once an ALLOW policy selects the service, what no ALLOW rule matches is denied', () => {
    const rules = rulesOf({ name: 'allow-web', action: 'ALLOW', rules: [{ from: [{ principals: [WEB] }] }] });
    expect(authorize(rules, call())).toEqual({ allowed: true, policy: origin('allow-web'), reason: `allowed by ${origin('allow-web')} (rule 0)` });
    expect(authorize(rules, call({ principal: API, method: 'PUT', path: '/x' }))).toEqual({
      allowed: false,
      policy: origin('allow-web'),
      reason: `PUT /x from ${API} matches no rule of ${origin('allow-web')} (ALLOW policies deny what they do not allow)`,
    });
  });

  it('the default-deny decision names every ALLOW policy', () => {
    const rules = rulesOf({ name: 'a', action: 'ALLOW', rules: [{ to: [{ ports: [9090] }] }] }, { name: 'b', action: 'ALLOW', rules: [{ to: [{ ports: [9091] }] }] });
    const decision = authorize(rules, call());
    expect(decision.allowed).toBe(false);
    expect(decision.policy).toBe(`${origin('a')},${origin('b')}`);
    expect(decision.reason).toBe(`GET /api/items from ${WEB} matches no rule of ${origin('a')}, ${origin('b')} (ALLOW policies deny what they do not allow)`);
  });

  it('with DENY policies only, what they do not deny is allowed', () => {
    const rules = rulesOf({ name: 'deny-api', action: 'DENY', rules: [{ from: [{ principals: [API] }] }] });
    expect(authorize(rules, call())).toEqual({ allowed: true, policy: undefined, reason: 'no DENY rule matches and no ALLOW policy selects the service' });
  });

  it('an ALLOW policy without rules allows nothing', () => {
    const rules = rulesOf({ name: 'allow-nothing', action: 'ALLOW' });
    expect(rules.allow.map((p) => p.spec.rules)).toEqual([[]]);
    expect(authorize(rules, call()).allowed).toBe(false);
    expect(authorize(rules, call({ principal: API, method: 'POST' })).allowed).toBe(false);
  });

  it('an ALLOW policy without rules does not take away what another ALLOW policy allows', () => {
    const rules = rulesOf({ name: 'allow-nothing', action: 'ALLOW' }, { name: 'allow-web', action: 'ALLOW', rules: [{ from: [{ principals: [WEB] }] }] });
    expect(authorize(rules, call())).toEqual({ allowed: true, policy: origin('allow-web'), reason: `allowed by ${origin('allow-web')} (rule 0)` });
    expect(authorize(rules, call({ principal: API })).allowed).toBe(false);
  });

  it('a DENY policy without rules denies nothing', () => {
    const rules = rulesOf({ name: 'deny-nothing', action: 'DENY' });
    expect(authorize(rules, call())).toEqual({ allowed: true, policy: undefined, reason: 'no DENY rule matches and no ALLOW policy selects the service' });
  });

  it('an empty rule matches every request', () => {
    expect(authorize(rulesOf({ name: 'deny-all', action: 'DENY', rules: [{}] }), call()).allowed).toBe(false);
  });
});

describe('authorize: from/to semantics', () => {
  const allowed = (rules: unknown[], facts: CallFacts): boolean => authorize(rulesOf({ name: 'p', action: 'ALLOW', rules }), facts).allowed;

  it('from AND to: both must match', () => {
    const rules = [{ from: [{ principals: [WEB] }], to: [{ methods: ['GET'] }] }];
    expect(allowed(rules, call())).toBe(true);
    expect(allowed(rules, call({ method: 'POST' }))).toBe(false);
    expect(allowed(rules, call({ principal: API }))).toBe(false);
  });

  it('entries of from (and of to) are alternatives (OR)', () => {
    const rules = [{ from: [{ principals: [WEB] }, { clusters: ['eu-west'] }], to: [{ methods: ['GET'] }, { ports: [9090] }] }];
    expect(allowed(rules, call({ principal: API, sourceCluster: 'eu-west' }))).toBe(true);
    expect(allowed(rules, call({ method: 'POST', port: 9090 }))).toBe(true);
    expect(allowed(rules, call({ principal: API }))).toBe(false);
    expect(allowed(rules, call({ method: 'POST' }))).toBe(false);
  });

  it('fields inside one entry must all match (AND)', () => {
    const rules = [{ from: [{ principals: [WEB], clusters: ['us-west'] }], to: [{ methods: ['GET'], paths: ['/api/*'], ports: [8080] }] }];
    expect(allowed(rules, call())).toBe(true);
    expect(allowed(rules, call({ sourceCluster: 'us-east' }))).toBe(false);
    expect(allowed(rules, call({ path: '/admin' }))).toBe(false);
    expect(allowed(rules, call({ port: 8443 }))).toBe(false);
  });

  it('rules are alternatives (OR), and the decision names the rule that matched', () => {
    const rules = rulesOf({ name: 'p', action: 'ALLOW', rules: [{ to: [{ methods: ['POST'] }] }, { to: [{ methods: ['GET'] }] }] });
    expect(authorize(rules, call())).toEqual({ allowed: true, policy: origin('p'), reason: `allowed by ${origin('p')} (rule 1)` });
  });

  it('a missing from matches every caller, a missing to every operation', () => {
    expect(allowed([{ to: [{ methods: ['GET'] }] }], call({ principal: 'spiffe://elsewhere/x' }))).toBe(true);
    expect(allowed([{ from: [{ principals: [WEB] }] }], call({ method: 'DELETE', path: '/', port: 1 }))).toBe(true);
  });
});

describe('authorize: each condition', () => {
  it.each<[string, Record<string, unknown>, Partial<CallFacts>, boolean]>([
    ['principals exact: same ID', { principals: [WEB] }, {}, true],
    ['principals exact: another ID', { principals: [WEB] }, { principal: API }, false],
    ['principals "*": any ID', { principals: ['*'] }, { principal: 'spiffe://other.example/anything' }, true],
    ['principals prefix: an ID under the path', { principals: ['spiffe://td.example/ns/shop/*'] }, { principal: API }, true],
    ['principals prefix: not a longer segment (shopping is not under shop)', { principals: ['spiffe://td.example/ns/shop/*'] }, { principal: 'spiffe://td.example/ns/shopping/sa/x' }, false],
    ['principals prefix: not the path itself', { principals: ['spiffe://td.example/ns/shop/*'] }, { principal: 'spiffe://td.example/ns/shop' }, false],
    ['principals prefix: not another trust domain', { principals: ['spiffe://td.example/ns/shop/*'] }, { principal: 'spiffe://td.example.evil/ns/shop/sa/web' }, false],
    ['principals suffix: whole trailing segments', { principals: ['*/sa/web'] }, {}, true],
    ['principals suffix: in any trust domain', { principals: ['*/sa/web'] }, { principal: 'spiffe://other.example/ns/ops/sa/web' }, true],
    ['principals suffix: not a partial segment (xweb)', { principals: ['*/sa/web'] }, { principal: 'spiffe://td.example/ns/shop/sa/xweb' }, false],
    ['principals suffix: not followed by more segments', { principals: ['*/sa/web'] }, { principal: 'spiffe://td.example/ns/shop/sa/web/v2' }, false],
    ['principals suffix: not the trust domain (spiffe://sa/web has the path /web)', { principals: ['*/sa/web'] }, { principal: 'spiffe://sa/web' }, false],
    ['principals: any of the list', { principals: [API, WEB] }, {}, true],
    ['notPrincipals: the excluded ID', { notPrincipals: [WEB] }, {}, false],
    ['notPrincipals: another ID', { notPrincipals: [WEB] }, { principal: API }, true],
    ['notPrincipals prefix', { notPrincipals: ['spiffe://td.example/ns/shop/*'] }, { principal: 'spiffe://td.example/ns/shopping/sa/x' }, true],
    ['principals and notPrincipals together', { principals: ['spiffe://td.example/ns/shop/*'], notPrincipals: ['*/sa/api'] }, { principal: API }, false],
    ['trustDomains: the caller domain', { trustDomains: ['td.example'] }, {}, true],
    ['trustDomains: another domain', { trustDomains: ['other.example'] }, {}, false],
    ['clusters: the calling cluster', { clusters: ['us-west'] }, {}, true],
    ['clusters: another cluster', { clusters: ['us-east'] }, {}, false],
    ['namespaces: from the SPIFFE path /ns/<ns>/', { namespaces: ['shop'] }, {}, true],
    ['namespaces: not a longer name', { namespaces: ['shop'] }, { principal: 'spiffe://td.example/ns/shopping/sa/web' }, false],
    ['namespaces: not an ID without /ns/ (a gateway)', { namespaces: ['shop'] }, { principal: 'spiffe://td.example/fedgate/gateway/us-west' }, false],
    ['namespaces: not /ns/ deeper in the path', { namespaces: ['shop'] }, { principal: 'spiffe://td.example/x/ns/shop/sa/web' }, false],
  ])('from: %s', (_name, source, overrides, expected) => {
    expect(authorize(rulesOf({ name: 'p', action: 'ALLOW', rules: [{ from: [source] }] }), call(overrides)).allowed).toBe(expected);
  });

  it.each<[string, Record<string, unknown>, Partial<CallFacts>, boolean]>([
    ['methods: listed', { methods: ['GET', 'HEAD'] }, {}, true],
    ['methods: not listed', { methods: ['GET', 'HEAD'] }, { method: 'POST' }, false],
    ['paths exact', { paths: ['/api/items'] }, {}, true],
    ['paths exact: query string ignored', { paths: ['/api/items'] }, { path: '/api/items?page=2' }, true],
    ['paths exact: not a longer path', { paths: ['/api/items'] }, { path: '/api/items/1' }, false],
    ['paths prefix "/api/*"', { paths: ['/api/*'] }, { path: '/api/items/1' }, true],
    ['paths prefix "/api/*": not /api itself', { paths: ['/api/*'] }, { path: '/api' }, false],
    ['paths prefix "/api/*": not /apix', { paths: ['/api/*'] }, { path: '/apix/items' }, false],
    ['paths suffix "*.json"', { paths: ['*.json'] }, { path: '/data/report.json' }, true],
    ['paths suffix "*.json": query string ignored', { paths: ['*.json'] }, { path: '/report.json?v=1' }, true],
    ['paths suffix "*.json": not when more follows', { paths: ['*.json'] }, { path: '/report.json/raw' }, false],
    ['paths "*": any path', { paths: ['*'] }, { path: '/anything/at/all?x' }, true],
    ['paths: any of the list', { paths: ['/health', '/api/*'] }, {}, true],
    ['ports: listed', { ports: [8080, 8443] }, {}, true],
    ['ports: not listed', { ports: [8443] }, {}, false],
  ])('to: %s', (_name, operation, overrides, expected) => {
    expect(authorize(rulesOf({ name: 'p', action: 'ALLOW', rules: [{ to: [operation] }] }), call(overrides)).allowed).toBe(expected);
  });

  it('the same conditions work in DENY rules', () => {
    const rules = rulesOf({ name: 'deny-shopping', action: 'DENY', rules: [{ from: [{ principals: ['spiffe://td.example/ns/shopping/*'] }], to: [{ paths: ['*.json'] }] }] });
    expect(authorize(rules, call({ principal: 'spiffe://td.example/ns/shopping/sa/x', path: '/a.json' })).allowed).toBe(false);
    expect(authorize(rules, call({ principal: 'spiffe://td.example/ns/shop/sa/x', path: '/a.json' })).allowed).toBe(true);
    expect(authorize(rules, call({ principal: 'spiffe://td.example/ns/shopping/sa/x', path: '/a.xml' })).allowed).toBe(true);
  });
});
