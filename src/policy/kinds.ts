/**
 * The native policy documents (apiVersion fedgate.io/v1alpha1). Each kind is a schema built with
 * the config shape kit, so every problem comes out with its field path, all at once.
 */
import { SpiffeId, trustDomainProblem } from '../model/spiffe-id.js';
import { arrayOf, bool, dnsLabel, duration, enumOf, int, num, object, optional, port, recordOf, refine, str, type Infer, type Shape } from '../config/shape.js';
import { RETRY_ON } from './service-policy.js';

export const NATIVE_API_VERSION = 'fedgate.io/v1alpha1';
export const NATIVE_KINDS = ['TrafficPolicy', 'RoutePolicy', 'FailoverPolicy', 'AuthorizationPolicy', 'FaultPolicy'] as const;
export type NativeKind = (typeof NATIVE_KINDS)[number];

const HEADER_NAME = /^[a-z0-9!#$%&'*+.^_`|~-]+$/;

function regex(): Shape<string> {
  return refine(str({ minLength: 1 }), (value) => {
    try {
      new RegExp(value);
      return undefined;
    } catch (error) {
      return `not a valid regular expression: ${(error as Error).message}`;
    }
  });
}

const stringMatch = refine(
  object({ exact: optional(str()), prefix: optional(str()), regex: optional(regex()), present: optional(bool()) }),
  (m) => {
    const set = [m.exact, m.prefix, m.regex, m.present].filter((v) => v !== undefined).length;
    return set === 1 ? undefined : 'give exactly one of exact, prefix, regex, present';
  },
);

const pathMatch = refine(object({ exact: optional(str({ pattern: /^\//, patternMessage: 'must start with "/"' })), prefix: optional(str({ pattern: /^\//, patternMessage: 'must start with "/"' })), regex: optional(regex()) }), (m) =>
  [m.exact, m.prefix, m.regex].filter((v) => v !== undefined).length === 1 ? undefined : 'give exactly one of exact, prefix, regex',
);

export const requestMatchShape = object({
  /** Header name (lower case) → how its value must match. */
  headers: optional(recordOf(stringMatch, refine(str({ minLength: 1 }), (name) => (HEADER_NAME.test(name) ? undefined : `header name "${name}" must be lower case token characters`))), {}),
  path: optional(pathMatch),
  methods: optional(arrayOf(str({ pattern: /^[A-Z]+$/, patternMessage: 'must be an upper-case HTTP method' }), { minItems: 1 })),
});
export type RequestMatchDoc = Infer<typeof requestMatchShape>;

/** Which service a document applies to (all of its namespace when absent), and on which clusters. */
const scope = {
  /** A service of the document's namespace; absent: every service of the namespace. */
  service: optional(dnsLabel()),
  /** Gateways of these clusters apply the document; absent: every cluster. */
  clusters: optional(arrayOf(dnsLabel(), { minItems: 1, uniqueBy: (c) => c })),
};

/**
 * fedgate's ranges for the numbers an Istio document may set outside them (Istio's defaults are
 * often 2^32-1): an imported document is clamped to these, with a warning naming the value used.
 */
export const TRAFFIC_LIMITS = {
  /** HTTP/2 connections to one peer gateway: each carries many streams, so a few suffice. */
  maxConnections: { min: 1, max: 64 },
  retryAttempts: { min: 0, max: 10 },
  consecutiveErrors: { min: 1, max: 1000 },
  /** Milliseconds. */
  outlierIntervalMs: { min: 100 },
  baseEjectionTimeMs: { min: 100 },
  faultDelayMs: { min: 1, max: 3_600_000 },
} as const;

export const trafficSpecShape = object({
  ...scope,
  timeout: optional(duration({ min: 1 })),
  retries: optional(
    object({
      attempts: int(TRAFFIC_LIMITS.retryAttempts),
      perTryTimeout: optional(duration({ min: 1 })),
      retryOn: optional(arrayOf(enumOf(RETRY_ON), { minItems: 1, uniqueBy: (r) => r })),
    }),
  ),
  connectionPool: optional(
    object({
      maxConnections: optional(int(TRAFFIC_LIMITS.maxConnections)),
      maxPendingRequests: optional(int({ min: 1 })),
      maxRequests: optional(int({ min: 1 })),
      maxRequestsPerConnection: optional(int({ min: 0 })),
    }),
  ),
  outlierDetection: optional(
    object({
      consecutiveErrors: optional(int(TRAFFIC_LIMITS.consecutiveErrors)),
      interval: optional(duration(TRAFFIC_LIMITS.outlierIntervalMs)),
      baseEjectionTime: optional(duration(TRAFFIC_LIMITS.baseEjectionTimeMs)),
      maxEjectionPercent: optional(int({ min: 0, max: 100 })),
    }),
  ),
});

const destinationShape = refine(
  object({
    /** A cluster by name. */
    cluster: optional(dnsLabel()),
    /** Every cluster whose labels include these (e.g. version: v2). */
    labels: optional(recordOf(str({ minLength: 1 }))),
    weight: optional(int({ min: 0, max: 100 })),
  }),
  (d) => ((d.cluster === undefined) === (d.labels === undefined) ? 'give exactly one of cluster, labels' : undefined),
);

export const routeSpecShape = object({
  service: dnsLabel(),
  clusters: scope.clusters,
  routes: arrayOf(
    object({
      name: dnsLabel(),
      /** Any of these matches selects the route; none: every request. */
      match: optional(arrayOf(requestMatchShape), []),
      destinations: arrayOf(destinationShape, { minItems: 1 }),
      timeout: optional(duration({ min: 1 })),
    }),
    { minItems: 1, uniqueBy: (r) => r.name, uniqueMessage: 'route name used twice' },
  ),
});

export const failoverSpecShape = object({
  ...scope,
  /** From a region, the regions to fail over to, in order. */
  failover: optional(arrayOf(object({ from: str({ minLength: 1 }), to: arrayOf(str({ minLength: 1 }), { minItems: 1 }) }), { uniqueBy: (f) => f.from, uniqueMessage: 'region listed twice' })),
  /** From a region, fixed shares (percent) of traffic by region or cluster. */
  distribute: optional(arrayOf(object({ from: str({ minLength: 1 }), to: recordOf(int({ min: 0, max: 100 })) }), { uniqueBy: (d) => d.from, uniqueMessage: 'region listed twice' })),
  overprovisioningFactor: optional(num({ min: 1, max: 10 })),
  panicThreshold: optional(int({ min: 0, max: 100 })),
});

// "*", an exact SPIFFE ID, a prefix ending in "/*", or a suffix starting with "*/"; the trust
// domain "*" ("spiffe://*/ns/shop/sa/web") is the same path in any member's trust domain.
function principalPattern(): Shape<string> {
  return refine(str({ minLength: 1 }), (value) => {
    if (value === '*') return undefined;
    if (value.startsWith('spiffe://*/')) {
      const path = value.endsWith('/*') ? value.slice('spiffe://*'.length, -2) : value.slice('spiffe://*'.length);
      return path !== '' && SpiffeId.tryParse(`spiffe://x${path}`) ? undefined : `"${value}": after "spiffe://*" must come SPIFFE path segments (optionally ending in "/*")`;
    }
    if (value.endsWith('/*')) {
      const base = value.slice(0, -2);
      return SpiffeId.tryParse(base) ? undefined : `"${value}": the part before "/*" must be a SPIFFE ID (spiffe://<trust-domain>[/path])`;
    }
    if (value.startsWith('*/')) {
      const tail = value.slice(2);
      return SpiffeId.tryParse(`spiffe://x/${tail}`) ? undefined : `"${value}": the part after "*/" must be SPIFFE path segments`;
    }
    try {
      SpiffeId.parse(value);
      return undefined;
    } catch (error) {
      return `"${value}" is not a principal pattern: ${(error as Error).message}`;
    }
  });
}

function pathPattern(): Shape<string> {
  // Istio's rule: exact, prefix ("/api/*") or suffix ("*.json") — a star at one end only.
  return refine(str({ minLength: 1 }), (value) => {
    if (value === '*') return undefined;
    if (!value.startsWith('/') && !value.startsWith('*')) return `"${value}" must start with "/" or "*"`;
    const inner = value.slice(1, -1);
    if (inner.includes('*')) return `"${value}": "*" may only start or end a path pattern`;
    if (value.length > 1 && value.startsWith('*') && value.endsWith('*')) return `"${value}": "*" may start or end a path pattern, not both (prefix or suffix match)`;
    return undefined;
  });
}

export const authorizationSpecShape = object({
  ...scope,
  action: enumOf(['ALLOW', 'DENY'] as const),
  rules: optional(
    arrayOf(
      object({
        from: optional(
          arrayOf(
            object({
              principals: optional(arrayOf(principalPattern(), { minItems: 1 })),
              notPrincipals: optional(arrayOf(principalPattern(), { minItems: 1 })),
              trustDomains: optional(arrayOf(refine(str(), (td) => trustDomainProblem(td)), { minItems: 1 })),
              clusters: optional(arrayOf(dnsLabel(), { minItems: 1 })),
              namespaces: optional(arrayOf(dnsLabel(), { minItems: 1 })),
            }),
            { minItems: 1 },
          ),
        ),
        to: optional(
          arrayOf(
            object({
              methods: optional(arrayOf(str({ pattern: /^[A-Z]+$/, patternMessage: 'must be an upper-case HTTP method' }), { minItems: 1 })),
              paths: optional(arrayOf(pathPattern(), { minItems: 1 })),
              ports: optional(arrayOf(port(), { minItems: 1 })),
            }),
            { minItems: 1 },
          ),
        ),
      }),
    ),
    [],
  ),
});

export const faultSpecShape = object({
  service: dnsLabel(),
  clusters: scope.clusters,
  faults: arrayOf(
    refine(
      object({
        match: optional(arrayOf(requestMatchShape), []),
        delay: optional(object({ fixedDelay: duration(TRAFFIC_LIMITS.faultDelayMs), percentage: num({ min: 0, max: 100 }) })),
        abort: optional(object({ httpStatus: int({ min: 200, max: 599 }), grpcStatus: optional(int({ min: 1, max: 16 })), percentage: num({ min: 0, max: 100 }) })),
      }),
      (f) => (f.delay || f.abort ? undefined : 'give a delay, an abort, or both'),
    ),
    { minItems: 1 },
  ),
});

export type TrafficSpec = Infer<typeof trafficSpecShape>;
export type RouteSpec = Infer<typeof routeSpecShape>;
export type FailoverSpec = Infer<typeof failoverSpecShape>;
export type AuthorizationSpec = Infer<typeof authorizationSpecShape>;
export type FaultSpec = Infer<typeof faultSpecShape>;

export const SPEC_SHAPES: Record<NativeKind, Shape<unknown>> = {
  TrafficPolicy: trafficSpecShape as Shape<unknown>,
  RoutePolicy: routeSpecShape as Shape<unknown>,
  FailoverPolicy: failoverSpecShape as Shape<unknown>,
  AuthorizationPolicy: authorizationSpecShape as Shape<unknown>,
  FaultPolicy: faultSpecShape as Shape<unknown>,
};

export const metadataShape = object({
  name: refine(str({ minLength: 1, maxLength: 253 }), (n) => (/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(n) ? undefined : 'must be lower-case letters, digits, "-" and "."')),
  namespace: optional(dnsLabel(), 'default'),
  labels: optional(recordOf(str())),
  annotations: optional(recordOf(str())),
});
