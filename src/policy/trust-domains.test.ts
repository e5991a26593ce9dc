import { parseYaml } from '../config/yaml-source.js';
import { formatIssue } from '../core/errors.js';
import { authorize, type CallFacts } from './authorization.js';
import type { PolicyInput } from './compile.js';
import { principalMatches } from './match.js';
import { validatePolicySet } from './policy-set.js';
import { PolicyIndex } from './resolve.js';
import { TrustDomainResolver, type PolicyContext } from './trust-domains.js';

const MEMBERS = ['us-east.acme.internal', 'eu-west.acme.internal'];

describe('TrustDomainResolver.expandPrincipal', () => {
  it.each<[string, PolicyContext, string, string[]]>([
    ['default alias: cluster.local stands for every member', {}, 'spiffe://cluster.local/ns/shop/sa/web', ['spiffe://*/ns/shop/sa/web']],
    ['default alias, a path prefix', {}, 'spiffe://cluster.local/ns/shop/*', ['spiffe://*/ns/shop/*']],
    ['alias listing members: one pattern per member', { trustDomainAliases: [{ alias: 'legacy.acme', trustDomains: MEMBERS }] }, 'spiffe://legacy.acme/ns/shop/sa/web', ['spiffe://us-east.acme.internal/ns/shop/sa/web', 'spiffe://eu-west.acme.internal/ns/shop/sa/web']],
    ['a member trust domain means that member, even if also an alias', { trustDomainAliases: [{ alias: 'us-east.acme.internal' }], memberTrustDomains: MEMBERS }, 'spiffe://us-east.acme.internal/ns/shop/sa/web', ['spiffe://us-east.acme.internal/ns/shop/sa/web']],
    ['aliases off: cluster.local stays cluster.local', { trustDomainAliases: [] }, 'spiffe://cluster.local/ns/shop/sa/web', ['spiffe://cluster.local/ns/shop/sa/web']],
    ['unknown trust domain: unchanged', {}, 'spiffe://other.example/ns/shop/sa/web', ['spiffe://other.example/ns/shop/sa/web']],
    ['"*" and suffix patterns name no trust domain', {}, '*/sa/web', ['*/sa/web']],
  ])('%s', (_name, context, pattern, expected) => {
    expect(new TrustDomainResolver(context).expandPrincipal(pattern)).toEqual(expected);
  });
});

describe('principalMatches with the any-member trust domain', () => {
  it.each<[string, string, boolean]>([
    ['spiffe://*/ns/shop/sa/web', 'spiffe://us-east.acme.internal/ns/shop/sa/web', true],
    ['spiffe://*/ns/shop/sa/web', 'spiffe://eu-west.acme.internal/ns/shop/sa/web', true],
    ['spiffe://*/ns/shop/sa/web', 'spiffe://us-east.acme.internal/ns/shop/sa/webber', false],
    ['spiffe://*/ns/shop/sa/web', 'spiffe://us-east.acme.internal/x/ns/shop/sa/web', false],
    ['spiffe://*/ns/shop/*', 'spiffe://us-east.acme.internal/ns/shop/sa/web', true],
    ['spiffe://*/ns/shop/*', 'spiffe://us-east.acme.internal/ns/shopping/sa/web', false],
    ['spiffe://*/ns/shop/*', 'spiffe://us-east.acme.internal/ns/shop', false],
  ])('%s against %s: %s', (pattern, id, expected) => {
    expect(principalMatches(pattern, id)).toBe(expected);
  });
});

function compileFile(text: string, context: PolicyContext): { errors: string[]; warnings: string[]; index: PolicyIndex } {
  const parsed = parseYaml('authz.yaml', text);
  const inputs: PolicyInput[] = parsed.documents.map((doc) => ({ document: doc.value, source: doc.source, lineOf: (path) => doc.lineOf(path) }));
  const result = validatePolicySet(inputs, context);
  return { errors: result.issues.map(formatIssue), warnings: result.warnings.map(formatIssue), index: new PolicyIndex(result.set) };
}

const ISTIO_ALLOW = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: payments, namespace: shop}
spec:
  selector: {matchLabels: {app: payments}}
  rules:
    - from: [{source: {principals: ["cluster.local/ns/shop/sa/orders"]}}]
`;

const NATIVE = `apiVersion: fedgate.io/v1alpha1
kind: AuthorizationPolicy
metadata: {name: payments, namespace: shop}
spec:
  service: payments
  action: ALLOW
  rules:
    - from:
        - principals: ["spiffe://elsewhere.example/ns/shop/sa/orders"]
          trustDomains: [cluster.local, nowhere.example]
`;

const call = (principal: string, sourceCluster: string): CallFacts => ({ principal, sourceCluster, method: 'GET', path: '/', port: 8080 });

describe('aliases end to end through compile and authorize', () => {
  it('an Istio principal in cluster.local allows that workload from every member, and nothing else', () => {
    const { errors, warnings, index } = compileFile(ISTIO_ALLOW, { memberTrustDomains: MEMBERS });
    expect(errors).toEqual([]);
    expect(warnings).toEqual([]);
    const rules = index.authorization('shop', 'payments', 'us-east');
    expect(authorize(rules, call('spiffe://us-east.acme.internal/ns/shop/sa/orders', 'us-east')).allowed).toBe(true);
    expect(authorize(rules, call('spiffe://eu-west.acme.internal/ns/shop/sa/orders', 'eu-west')).allowed).toBe(true);
    expect(authorize(rules, call('spiffe://eu-west.acme.internal/ns/shop/sa/web', 'eu-west')).allowed).toBe(false);
    expect(authorize(rules, call('spiffe://eu-west.acme.internal/fedgate/gateway/eu-west', 'eu-west')).allowed).toBe(false);
  });

  it('an alias listing one member allows the workload from that member only', () => {
    const { index } = compileFile(ISTIO_ALLOW, { trustDomainAliases: [{ alias: 'cluster.local', trustDomains: ['us-east.acme.internal'] }], memberTrustDomains: MEMBERS });
    const rules = index.authorization('shop', 'payments', 'us-east');
    expect(authorize(rules, call('spiffe://us-east.acme.internal/ns/shop/sa/orders', 'us-east')).allowed).toBe(true);
    expect(authorize(rules, call('spiffe://eu-west.acme.internal/ns/shop/sa/orders', 'eu-west')).allowed).toBe(false);
  });

  it('with aliases turned off, cluster.local matches no caller, and validation says so', () => {
    const { warnings, index } = compileFile(ISTIO_ALLOW, { trustDomainAliases: [], memberTrustDomains: MEMBERS });
    expect(warnings).toEqual([
      'authz.yaml:7: spec.rules[0].from[0].source.principals[0]: "cluster.local/ns/shop/sa/orders": trust domain "cluster.local" is no cluster\'s and no alias (spec.trustDomainAliases of federation.yaml): matches no caller in this federation (members: eu-west.acme.internal, us-east.acme.internal)',
    ]);
    expect(authorize(index.authorization('shop', 'payments', 'us-east'), call('spiffe://us-east.acme.internal/ns/shop/sa/orders', 'us-east')).allowed).toBe(false);
  });

  it('native principals and trustDomains are checked and expanded the same way', () => {
    const { errors, warnings, index } = compileFile(NATIVE, { memberTrustDomains: MEMBERS });
    expect(errors).toEqual([]);
    expect(warnings).toEqual([
      'authz.yaml:9: spec.rules[0].from[0].principals[0]: "spiffe://elsewhere.example/ns/shop/sa/orders": trust domain "elsewhere.example" is no cluster\'s and no alias (spec.trustDomainAliases of federation.yaml): matches no caller in this federation (members: eu-west.acme.internal, us-east.acme.internal)',
      'authz.yaml:10: spec.rules[0].from[0].trustDomains[1]: trust domain "nowhere.example" is no cluster\'s and no alias (spec.trustDomainAliases of federation.yaml): matches no caller in this federation (members: eu-west.acme.internal, us-east.acme.internal)',
    ]);
    // trustDomains naming an alias of every member no longer narrows the source.
    const policy = index.set.policies[0];
    expect(policy?.kind === 'AuthorizationPolicy' && policy.spec.rules?.[0]?.from?.[0]?.trustDomains).toBeUndefined();
  });

  it('without the members, principals are not judged (nothing to judge them against)', () => {
    expect(compileFile(NATIVE, {}).warnings).toEqual([]);
  });
});
