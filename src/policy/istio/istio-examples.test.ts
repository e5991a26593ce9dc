/**
 * The Istio documents of federation-config/istio-examples/ (the shapes Istio's own docs and
 * samples publish), read from disk as an operator would: they validate as one set and each alone,
 * their out-of-range values are clamped with a warning naming the value used, and a VirtualService
 * whose DestinationRule is not in the files is a warning here and an error where the set is complete.
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { readYamlFile } from '../../config/yaml-source.js';
import { formatIssue } from '../../core/errors.js';
import type { CompiledPolicy, PolicyInput } from '../compile.js';
import { validatePolicySet } from '../policy-set.js';
import type { PolicyContext } from '../trust-domains.js';

const DIR = join(process.cwd(), 'federation-config', 'istio-examples');
const FILES = readdirSync(DIR).filter((f) => f.endsWith('.yaml')).sort();

function inputsOf(files: readonly string[]): PolicyInput[] {
  return files.flatMap((file) => {
    const parsed = readYamlFile(join(DIR, file), file);
    if (parsed.issues.length > 0) throw new Error(parsed.issues.map(formatIssue).join('; '));
    return parsed.documents.map((doc) => ({ document: doc.value, source: doc.source, lineOf: (path: ReadonlyArray<string | number>) => doc.lineOf(path) }));
  });
}

function validate(files: readonly string[], context: PolicyContext = {}): { errors: string[]; warnings: string[]; policies: readonly CompiledPolicy[] } {
  const result = validatePolicySet(inputsOf(files), context);
  return { errors: result.issues.map(formatIssue), warnings: result.warnings.map(formatIssue), policies: result.set.policies };
}

function compiled<K extends CompiledPolicy['kind']>(policies: readonly CompiledPolicy[], kind: K, name: string): Extract<CompiledPolicy, { kind: K }> {
  const found = policies.find((p) => p.kind === kind && p.name === name);
  if (!found) throw new Error(`no ${kind} ${name} in ${policies.map((p) => `${p.kind} ${p.name}`).join(', ')}`);
  return found as Extract<CompiledPolicy, { kind: K }>;
}

const MEMBERS = { memberTrustDomains: ['us-east.acme.internal', 'us-west.acme.internal', 'eu-west.acme.internal'] };

describe('the Istio example documents', () => {
  it('are seven documents in seven files', () => {
    expect(FILES).toHaveLength(7);
    expect(inputsOf(FILES)).toHaveLength(7);
  });

  it('validate as one set, with the clamped connection pool as the only warning', () => {
    const { errors, warnings } = validate(FILES, MEMBERS);
    expect(errors).toEqual([]);
    expect(warnings).toEqual(["reviews-destination-rule.yaml:13: spec.trafficPolicy.connectionPool.tcp.maxConnections: 100 is above fedgate's maximum 64; using 64"]);
  });

  it('compile to what the documents mean', () => {
    const { policies } = validate(FILES, MEMBERS);
    const reviews = compiled(policies, 'RoutePolicy', 'reviews.virtualservice');
    expect(reviews.spec.routes).toEqual([
      { name: 'http-0', match: [{ headers: { 'end-user': { exact: 'jason' } } }], destinations: [{ labels: { version: 'v2' }, weight: 100 }] },
      { name: 'http-1', match: [], destinations: [{ labels: { version: 'v1' }, weight: 90 }, { labels: { version: 'v2' }, weight: 10 }] },
    ]);
    expect(compiled(policies, 'TrafficPolicy', 'reviews.destinationrule').spec).toMatchObject({
      service: 'reviews',
      connectionPool: { maxConnections: 64, maxRequests: 1000, maxRequestsPerConnection: 10 },
      outlierDetection: { consecutiveErrors: 7, interval: 300_000, baseEjectionTime: 900_000 },
    });
    expect(compiled(policies, 'FaultPolicy', 'ratings.virtualservice').spec.faults).toEqual([
      { match: [{ headers: { 'end-user': { exact: 'jason' } } }], delay: { fixedDelay: 7000, percentage: 100 } },
      { match: [], abort: { httpStatus: 500, percentage: 10 } },
    ]);
    expect(compiled(policies, 'TrafficPolicy', 'httpbin.destinationrule').spec).toMatchObject({
      connectionPool: { maxConnections: 1, maxPendingRequests: 1, maxRequestsPerConnection: 1 },
      outlierDetection: { consecutiveErrors: 1, interval: 1000, baseEjectionTime: 180_000, maxEjectionPercent: 100 },
    });
    // cluster.local (Istio's default trust domain) stands for every member by default.
    const allow = compiled(policies, 'AuthorizationPolicy', 'payments-viewer');
    expect({ service: allow.service, spec: allow.spec }).toEqual({
      service: 'payments',
      spec: expect.objectContaining({ action: 'ALLOW', rules: [expect.objectContaining({ from: [expect.objectContaining({ principals: ['spiffe://*/ns/default/sa/orders-service'] })], to: [expect.objectContaining({ methods: ['GET', 'POST'], paths: ['/api/*'] })] })] }),
    });
    expect(compiled(policies, 'AuthorizationPolicy', 'payments-deny-admin').spec).toEqual(expect.objectContaining({ action: 'DENY', rules: [expect.objectContaining({ to: [expect.objectContaining({ paths: ['/api/admin/*'] })] })] }));
  });

  it.each(FILES)('%s validates alone where the controller completes the set (subsets: warnings, not errors)', (file) => {
    const { errors } = validate([file], { ...MEMBERS, unresolvedSubsets: 'warning' });
    expect(errors).toEqual([]);
  });

  it('a VirtualService alone: each subset is a warning locally, an error where the set is complete', () => {
    const local = validate(['reviews-virtual-service.yaml'], { unresolvedSubsets: 'warning' });
    expect(local.errors).toEqual([]);
    expect(local.warnings).toEqual([
      'reviews-virtual-service.yaml:19: spec.http[0].route[0].destination.subset: subset "v2" is not defined by a DestinationRule for reviews.default in these documents; the controller looks for it among its stored DestinationRules when you apply',
      'reviews-virtual-service.yaml:23: spec.http[1].route[0].destination.subset: subset "v1" is not defined by a DestinationRule for reviews.default in these documents; the controller looks for it among its stored DestinationRules when you apply',
      'reviews-virtual-service.yaml:27: spec.http[1].route[1].destination.subset: subset "v2" is not defined by a DestinationRule for reviews.default in these documents; the controller looks for it among its stored DestinationRules when you apply',
    ]);
    const complete = validate(['reviews-virtual-service.yaml']);
    expect(complete.errors).toEqual([
      'reviews-virtual-service.yaml:19: spec.http[0].route[0].destination.subset: subset "v2" is not defined by a DestinationRule for reviews.default, neither in the documents applied nor among those stored',
      'reviews-virtual-service.yaml:23: spec.http[1].route[0].destination.subset: subset "v1" is not defined by a DestinationRule for reviews.default, neither in the documents applied nor among those stored',
      'reviews-virtual-service.yaml:27: spec.http[1].route[1].destination.subset: subset "v2" is not defined by a DestinationRule for reviews.default, neither in the documents applied nor among those stored',
    ]);
    // With its DestinationRule (as the controller validates it, beside the stored one) it resolves.
    expect(validate(['reviews-destination-rule.yaml', 'reviews-virtual-service.yaml']).errors).toEqual([]);
  });

  it('principals of no member and no alias are a warning: they match no caller', () => {
    const { errors, warnings } = validate(FILES, { ...MEMBERS, trustDomainAliases: [] });
    expect(errors).toEqual([]);
    expect(warnings).toContain(
      'payments-authorization-policy.yaml:17: spec.rules[0].from[0].source.principals[0]: "cluster.local/ns/default/sa/orders-service": trust domain "cluster.local" is no cluster\'s and no alias (spec.trustDomainAliases of federation.yaml): matches no caller in this federation (members: eu-west.acme.internal, us-east.acme.internal, us-west.acme.internal)',
    );
  });
});
