import { gatewayDefaultsShape, type GatewayDefaults } from '../config/federation-config.js';
import { NO_AUTHORIZATION } from './authorization.js';
import { compilePolicySet } from './compile.js';
import { appliesOnCluster, PolicyIndex } from './resolve.js';
import { defaultServicePolicy } from './service-policy.js';

const defaults = (gatewayDefaultsShape.defaultFactory as () => GatewayDefaults)();

function doc(kind: string, name: string, spec: Record<string, unknown>, namespace = 'shop'): Record<string, unknown> {
  return { apiVersion: 'fedgate.io/v1alpha1', kind, metadata: { name, namespace }, spec };
}

/** Compiles documents into an index; the documents must be valid. */
function indexOf(...documents: Array<Record<string, unknown>>): PolicyIndex {
  const result = compilePolicySet(documents.map((document, i) => ({ document, source: `doc-${i}.yaml` })));
  expect(result.issues).toEqual([]);
  return new PolicyIndex(result.set);
}

const EAST = { cluster: 'us-east', region: 'us-east-1' };
const WEST = { cluster: 'us-west', region: 'us-west-2' };

describe('PolicyIndex precedence: namespace-wide < namespace-wide on the cluster < service < service on the cluster', () => {
  // Names sort against specificity on purpose: the most specific document has the name that sorts first … last.
  const index = indexOf(
    doc('TrafficPolicy', 'z-namespace', { timeout: '1s' }),
    doc('TrafficPolicy', 'y-namespace-clusters', { clusters: ['us-east', 'us-central'], timeout: '2s' }),
    doc('TrafficPolicy', 'x-service', { service: 'payments', timeout: '3s' }),
    doc('TrafficPolicy', 'w-service-clusters', { service: 'payments', clusters: ['us-central'], timeout: '4s' }),
  );
  const timeout = (namespace: string, service: string, cluster: string): number | undefined => index.servicePolicy(defaults, namespace, service, { cluster, region: 'r' }).timeoutMs;

  it.each<[string, string, string, number | undefined]>([
    ['service on the cluster beats everything', 'payments', 'us-central', 4000],
    ['service beats namespace-wide on the cluster', 'payments', 'us-east', 3000],
    ['service beats namespace-wide', 'payments', 'us-west', 3000],
    ['namespace-wide on the cluster beats namespace-wide', 'orders', 'us-east', 2000],
    ['namespace-wide alone', 'orders', 'us-west', 1000],
  ])('%s (%s on %s)', (_name, service, cluster, expected) => {
    expect(timeout('shop', service, cluster)).toBe(expected);
  });

  it('another namespace keeps the federation default', () => {
    const policy = index.servicePolicy(defaults, 'billing', 'payments', EAST);
    expect(policy.timeoutMs).toBe(defaults.timeout);
    expect(policy.timeoutExplicit).toBe(false);
    expect(policy.sources).toEqual(['defaults']);
  });

  it('lists the documents applied, lowest precedence first', () => {
    expect(index.servicePolicy(defaults, 'shop', 'payments', { cluster: 'us-central', region: 'r' }).sources).toEqual([
      'defaults',
      'TrafficPolicy/shop/z-namespace',
      'TrafficPolicy/shop/y-namespace-clusters',
      'TrafficPolicy/shop/x-service',
      'TrafficPolicy/shop/w-service-clusters',
    ]);
  });

  it('selecting() returns the documents in force, lowest precedence first, and nothing scoped to other clusters', () => {
    expect(index.selecting('TrafficPolicy', 'shop', 'payments', 'us-west').map((p) => p.name)).toEqual(['z-namespace', 'x-service']);
    expect(index.selecting('TrafficPolicy', 'shop', 'payments', 'us-east').map((p) => p.name)).toEqual(['z-namespace', 'y-namespace-clusters', 'x-service']);
    expect(index.selecting('RoutePolicy', 'shop', 'payments', 'us-east')).toEqual([]);
  });

  it('between equally specific documents the name first in alphabetical order wins', () => {
    const tie = indexOf(
      doc('TrafficPolicy', 'beta', { service: 'payments', timeout: '5s', retries: { attempts: 1 } }),
      doc('TrafficPolicy', 'alpha', { service: 'payments', timeout: '6s' }),
      doc('TrafficPolicy', 'gamma', { service: 'payments', retries: { attempts: 7 } }),
    );
    const policy = tie.servicePolicy(defaults, 'shop', 'payments', EAST);
    expect(policy.timeoutMs).toBe(6000);
    // alpha sets no retries: beta (before gamma) sets them.
    expect(policy.retries.attempts).toBe(1);
    expect(policy.sources).toEqual(['defaults', 'TrafficPolicy/shop/gamma', 'TrafficPolicy/shop/beta', 'TrafficPolicy/shop/alpha']);
  });
});

describe('TrafficPolicy: merged field by field over the federation defaults', () => {
  it('no document: exactly the defaults', () => {
    expect(PolicyIndex.EMPTY.servicePolicy(defaults, 'shop', 'payments', EAST)).toEqual(defaultServicePolicy(defaults));
  });

  it('each field from the most specific document that sets it, the rest from the defaults', () => {
    const index = indexOf(
      doc('TrafficPolicy', 'base', { timeout: '5s', connectionPool: { maxConnections: 8 }, outlierDetection: { consecutiveErrors: 3 } }),
      doc('TrafficPolicy', 'payments', { service: 'payments', retries: { attempts: 4, retryOn: ['5xx'] }, outlierDetection: { interval: '2s' } }),
    );
    expect(index.servicePolicy(defaults, 'shop', 'payments', EAST)).toEqual({
      timeoutMs: 5000,
      timeoutExplicit: true,
      retries: { attempts: 4, perTryTimeoutMs: undefined, retryOn: new Set(['5xx']), budgetPercent: 20, minRetryConcurrency: 3 },
      connectionPool: { maxConnectionsPerPeer: 8, maxPendingRequests: 1024, maxRequests: 10_000, maxRequestsPerConnection: 0, dedicated: true },
      outlierDetection: { consecutiveErrors: 3, intervalMs: 2000, baseEjectionTimeMs: 30_000, maxEjectionPercent: 50, dedicated: true },
      failover: { overprovisioningFactor: 1.4, panicThreshold: 50, regionOrder: [], distribute: undefined },
      routes: [],
      faults: [],
      sources: ['defaults', 'TrafficPolicy/shop/base', 'TrafficPolicy/shop/payments'],
    });
  });

  it('retries merge inside: attempts from the service, perTryTimeout and retryOn from the namespace', () => {
    const index = indexOf(
      doc('TrafficPolicy', 'base', { retries: { attempts: 1, perTryTimeout: '300ms', retryOn: ['gateway-error'] } }),
      doc('TrafficPolicy', 'payments', { service: 'payments', retries: { attempts: 5 } }),
    );
    const { retries } = index.servicePolicy(defaults, 'shop', 'payments', EAST);
    expect(retries).toEqual({ attempts: 5, perTryTimeoutMs: 300, retryOn: new Set(['gateway-error']), budgetPercent: 20, minRetryConcurrency: 3 });
  });

  it('a policy that sizes the connection pool or sets outlier detection makes them dedicated', () => {
    const index = indexOf(doc('TrafficPolicy', 'p', { service: 'payments', connectionPool: { maxRequestsPerConnection: 100 }, outlierDetection: { maxEjectionPercent: 10 } }));
    const policy = index.servicePolicy(defaults, 'shop', 'payments', EAST);
    expect(policy.connectionPool).toEqual({ maxConnectionsPerPeer: 2, maxPendingRequests: 1024, maxRequests: 10_000, maxRequestsPerConnection: 100, dedicated: true });
    expect(policy.outlierDetection).toEqual({ consecutiveErrors: 5, intervalMs: 10_000, baseEjectionTimeMs: 30_000, maxEjectionPercent: 10, dedicated: true });
  });
});

describe('FailoverPolicy: merged field by field; failover order and distribute picked by the gateway region', () => {
  const index = indexOf(
    doc('FailoverPolicy', 'regions', {
      failover: [
        { from: 'us-east-1', to: ['us-west-2', 'eu-west-1'] },
        { from: 'us-west-2', to: ['us-east-1'] },
      ],
      overprovisioningFactor: 2,
    }),
    doc('FailoverPolicy', 'payments', { service: 'payments', distribute: [{ from: 'us-east-1', to: { 'us-east-1': 70, 'us-west-2': 30 } }], panicThreshold: 10 }),
    doc('FailoverPolicy', 'payments-east-b', { service: 'payments', clusters: ['us-east-b'], failover: [{ from: 'us-east-1', to: ['eu-west-1'] }] }),
  );

  it.each<[string, { cluster: string; region: string }, unknown]>([
    ['us-east-1: order of the namespace, shares of the service', EAST, { overprovisioningFactor: 2, panicThreshold: 10, regionOrder: ['us-west-2', 'eu-west-1'], distribute: new Map([['us-east-1', 70], ['us-west-2', 30]]) }],
    ['us-east-1 on the cluster with its own order', { cluster: 'us-east-b', region: 'us-east-1' }, { overprovisioningFactor: 2, panicThreshold: 10, regionOrder: ['eu-west-1'], distribute: new Map([['us-east-1', 70], ['us-west-2', 30]]) }],
    ['us-west-2: its own order, no shares', WEST, { overprovisioningFactor: 2, panicThreshold: 10, regionOrder: ['us-east-1'], distribute: undefined }],
    ['a region no document names: locality order only', { cluster: 'eu', region: 'eu-west-1' }, { overprovisioningFactor: 2, panicThreshold: 10, regionOrder: [], distribute: undefined }],
  ])('%s', (_name, scope, expected) => {
    expect(index.servicePolicy(defaults, 'shop', 'payments', scope).failover).toEqual(expected);
  });

  it('another service of the namespace gets only the namespace-wide fields', () => {
    expect(index.servicePolicy(defaults, 'shop', 'orders', EAST).failover).toEqual({ overprovisioningFactor: 2, panicThreshold: 50, regionOrder: ['us-west-2', 'eu-west-1'], distribute: undefined });
  });
});

describe('RoutePolicy and FaultPolicy: the most specific document applies whole', () => {
  const routes = indexOf(
    doc('RoutePolicy', 'b-canary', {
      service: 'payments',
      routes: [
        { name: 'canary', match: [{ headers: { 'x-canary': { exact: 'true' } }, path: { regex: '/v[0-9]+' } }], destinations: [{ labels: { version: 'v2' } }] },
        { name: 'split', destinations: [{ cluster: 'us-east', weight: 90 }, { cluster: 'us-west', weight: 10 }] },
      ],
    }),
    doc('RoutePolicy', 'a-pin', { service: 'payments', routes: [{ name: 'pin', destinations: [{ cluster: 'us-west' }] }] }),
    doc('RoutePolicy', 'z-east', { service: 'payments', clusters: ['us-east'], routes: [{ name: 'east', timeout: '1s', destinations: [{ cluster: 'us-east' }] }] }),
    doc('RoutePolicy', 'other', { service: 'orders', routes: [{ name: 'o', destinations: [{ cluster: 'us-east' }] }] }),
  );

  it('on its cluster, the cluster-scoped document alone (its routes are not mixed with others)', () => {
    const policy = routes.servicePolicy(defaults, 'shop', 'payments', EAST);
    expect(policy.routes).toEqual([{ name: 'east', origin: 'RoutePolicy/shop/z-east', matches: [], destinations: [{ cluster: 'us-east', weight: 100 }], timeoutMs: 1000 }]);
    expect(policy.sources).toEqual(['defaults', 'RoutePolicy/shop/z-east']);
  });

  it('elsewhere, of two equally specific documents the first by name', () => {
    expect(routes.servicePolicy(defaults, 'shop', 'payments', WEST).routes).toEqual([
      { name: 'pin', origin: 'RoutePolicy/shop/a-pin', matches: [], destinations: [{ cluster: 'us-west', weight: 100 }] },
    ]);
  });

  it('compiles matches (regular expressions anchored) and label destinations', () => {
    const only = indexOf(doc('RoutePolicy', 'b-canary', {
      service: 'payments',
      routes: [
        { name: 'canary', match: [{ headers: { 'x-canary': { exact: 'true' } }, path: { regex: '/v[0-9]+' } }], destinations: [{ labels: { version: 'v2' } }] },
        { name: 'split', destinations: [{ cluster: 'us-east', weight: 90 }, { cluster: 'us-west', weight: 10 }] },
      ],
    }));
    expect(only.servicePolicy(defaults, 'shop', 'payments', EAST).routes).toEqual([
      { name: 'canary', origin: 'RoutePolicy/shop/b-canary', matches: [{ headers: [{ name: 'x-canary', exact: 'true' }], pathRegex: /^(?:\/v[0-9]+)$/ }], destinations: [{ clusterLabels: { version: 'v2' }, weight: 100 }] },
      { name: 'split', origin: 'RoutePolicy/shop/b-canary', matches: [], destinations: [{ cluster: 'us-east', weight: 90 }, { cluster: 'us-west', weight: 10 }] },
    ]);
  });

  it('a service without a RoutePolicy has no routes', () => {
    expect(routes.servicePolicy(defaults, 'shop', 'cart', EAST).routes).toEqual([]);
  });

  it('faults: the cluster-scoped document replaces the service-wide one on its cluster', () => {
    const faults = indexOf(
      doc('FaultPolicy', 'chaos', { service: 'payments', faults: [{ match: [{ path: { prefix: '/slow' } }], delay: { fixedDelay: '2s', percentage: 50 } }] }),
      doc('FaultPolicy', 'chaos-east', { service: 'payments', clusters: ['us-east'], faults: [{ abort: { httpStatus: 503, grpcStatus: 14, percentage: 5 } }] }),
    );
    expect(faults.servicePolicy(defaults, 'shop', 'payments', EAST).faults).toEqual([{ origin: 'FaultPolicy/shop/chaos-east', matches: [], abort: { status: 503, grpcStatus: 14, percent: 5 } }]);
    expect(faults.servicePolicy(defaults, 'shop', 'payments', WEST).faults).toEqual([
      { origin: 'FaultPolicy/shop/chaos', matches: [{ headers: [], pathPrefix: '/slow' }], delay: { ms: 2000, percent: 50 } },
    ]);
    expect(faults.servicePolicy(defaults, 'shop', 'payments', WEST).sources).toEqual(['defaults', 'FaultPolicy/shop/chaos']);
  });
});

describe('documents scoped to other clusters', () => {
  const index = indexOf(
    doc('TrafficPolicy', 'west-only', { clusters: ['us-west'], timeout: '9s' }),
    doc('FaultPolicy', 'west-chaos', { service: 'payments', clusters: ['us-west'], faults: [{ abort: { httpStatus: 500, percentage: 1 } }] }),
    doc('AuthorizationPolicy', 'west-lockdown', { clusters: ['us-west'], action: 'ALLOW' }),
  );

  it('are ignored by the gateways of other clusters', () => {
    const policy = index.servicePolicy(defaults, 'shop', 'payments', EAST);
    expect(policy).toEqual(defaultServicePolicy(defaults));
    expect(index.authorization('shop', 'payments', 'us-east')).toBe(NO_AUTHORIZATION);
    expect(index.onCluster('us-east')).toEqual([]);
  });

  it('apply on their own cluster', () => {
    expect(index.servicePolicy(defaults, 'shop', 'payments', WEST).timeoutMs).toBe(9000);
    expect(index.onCluster('us-west').map((p) => p.origin)).toEqual(['TrafficPolicy/shop/west-only', 'FaultPolicy/shop/west-chaos', 'AuthorizationPolicy/shop/west-lockdown']);
  });

  it('appliesOnCluster: absent clusters means every cluster', () => {
    const [wide, west] = indexOf(doc('TrafficPolicy', 'a', { timeout: '1s' }), doc('TrafficPolicy', 'b', { clusters: ['us-west'], timeout: '1s' })).set.policies;
    expect(wide && appliesOnCluster(wide, 'anything')).toBe(true);
    expect(west && appliesOnCluster(west, 'us-west')).toBe(true);
    expect(west && appliesOnCluster(west, 'us-east')).toBe(false);
  });
});

describe('authorization(): every applicable ALLOW and DENY policy, most specific first', () => {
  const index = indexOf(
    doc('AuthorizationPolicy', 'deny-legacy', { action: 'DENY', rules: [{ from: [{ namespaces: ['legacy'] }] }] }),
    doc('AuthorizationPolicy', 'allow-ops', { action: 'ALLOW', rules: [{ from: [{ namespaces: ['ops'] }] }] }),
    doc('AuthorizationPolicy', 'allow-web', { service: 'payments', action: 'ALLOW', rules: [{ from: [{ principals: ['*/sa/web'] }] }] }),
    doc('AuthorizationPolicy', 'deny-east', { service: 'payments', clusters: ['us-east'], action: 'DENY', rules: [{ to: [{ methods: ['DELETE'] }] }] }),
    doc('AuthorizationPolicy', 'allow-west', { service: 'payments', clusters: ['us-west'], action: 'ALLOW' }),
    doc('AuthorizationPolicy', 'orders-only', { service: 'orders', action: 'ALLOW' }),
    doc('AuthorizationPolicy', 'elsewhere', { action: 'DENY' }, 'billing'),
  );
  const origins = (rules: ReturnType<PolicyIndex['authorization']>): { deny: string[]; allow: string[] } => ({ deny: rules.deny.map((p) => p.origin), allow: rules.allow.map((p) => p.origin) });

  it.each<[string, string, string, { deny: string[]; allow: string[] }]>([
    ['payments on us-east', 'payments', 'us-east', { deny: ['AuthorizationPolicy/shop/deny-east', 'AuthorizationPolicy/shop/deny-legacy'], allow: ['AuthorizationPolicy/shop/allow-web', 'AuthorizationPolicy/shop/allow-ops'] }],
    ['payments on us-west', 'payments', 'us-west', { deny: ['AuthorizationPolicy/shop/deny-legacy'], allow: ['AuthorizationPolicy/shop/allow-west', 'AuthorizationPolicy/shop/allow-web', 'AuthorizationPolicy/shop/allow-ops'] }],
    ['a service with only namespace-wide policies', 'cart', 'us-east', { deny: ['AuthorizationPolicy/shop/deny-legacy'], allow: ['AuthorizationPolicy/shop/allow-ops'] }],
  ])('%s', (_name, service, cluster, expected) => {
    expect(origins(index.authorization('shop', service, cluster))).toEqual(expected);
  });

  it('carries each policy spec', () => {
    expect(index.authorization('shop', 'payments', 'us-east').deny[0]?.spec).toEqual({ service: 'payments', clusters: ['us-east'], action: 'DENY', rules: [{ to: [{ methods: ['DELETE'] }] }] });
  });

  it('no policy at all: NO_AUTHORIZATION', () => {
    expect(index.authorization('nowhere', 'payments', 'us-east')).toBe(NO_AUTHORIZATION);
    expect(NO_AUTHORIZATION).toEqual({ deny: [], allow: [] });
  });
});
