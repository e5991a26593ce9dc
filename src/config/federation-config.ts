import { formatDuration } from '../core/duration.js';
import { trustDomainProblem } from '../model/spiffe-id.js';
import { address, arrayOf, dnsLabel, duration, either, enumOf, int, literal, num, object, optional, recordOf, refine, section, str, transform, type Infer, type Shape } from './shape.js';

export const API_VERSION = 'fedgate.io/v1alpha1';

export function trustDomain(): Shape<string> {
  return refine(str(), (value) => trustDomainProblem(value));
}

export const metadataShape = object({
  /** Name of the federation or cluster: a DNS label. */
  name: dnsLabel(),
  /** Free-form labels, copied to the cluster record. */
  labels: optional(recordOf(str()), {}),
});

/** How gateways normalize request paths before routing and authorization (src/policy/path-normalization.ts). */
export const PATH_NORMALIZATIONS = ['none', 'base', 'merge-slashes', 'decode-and-merge-slashes'] as const;
export type PathNormalization = (typeof PATH_NORMALIZATIONS)[number];

/** Data-plane defaults every gateway uses unless a policy says otherwise. */
export const gatewayDefaultsShape = section({
  /**
   * Request paths are normalized before routing and authorization, and forwarded normalized, the
   * same in every cluster: `none`, `base` (RFC 3986 dot-segments and percent-encodings),
   * `merge-slashes` (also `//` → `/`), `decode-and-merge-slashes` (also refuses %2F and %5C).
   */
  pathNormalization: optional(enumOf(PATH_NORMALIZATIONS), 'decode-and-merge-slashes'),
  /** Active health checks of remote gateways over the pooled HTTP/2 connection. */
  healthCheck: section({
    interval: optional(duration({ min: 50 }), 500),
    timeout: optional(duration({ min: 10 }), 1000),
    /** Consecutive missed checks before a remote gateway counts as down. */
    unhealthyThreshold: optional(int({ min: 1, max: 100 }), 3),
    healthyThreshold: optional(int({ min: 1, max: 100 }), 1),
  }),
  /** Passive outlier detection: consecutive failures eject a remote cluster for a growing time. */
  outlierDetection: section({
    consecutiveErrors: optional(int({ min: 1, max: 1000 }), 5),
    interval: optional(duration({ min: 100 }), 10_000),
    baseEjectionTime: optional(duration({ min: 100 }), 30_000),
    maxEjectionPercent: optional(int({ min: 0, max: 100 }), 50),
  }),
  failover: section({
    /** Envoy's overprovisioning factor: a priority at ≥ 1/factor healthy keeps all its load. */
    overprovisioningFactor: optional(num({ min: 1, max: 10 }), 1.4),
    /** Below this healthy percentage a priority ignores health (panic mode). */
    panicThreshold: optional(int({ min: 0, max: 100 }), 50),
  }),
  timeout: optional(duration({ min: 1 }), 15_000),
  retries: section({
    attempts: optional(int({ min: 0, max: 10 }), 2),
    perTryTimeout: optional(duration({ min: 1 })),
    /** Retries may add at most this percentage on top of active requests. */
    budgetPercent: optional(int({ min: 0, max: 100 }), 20),
    /** Retries always allowed regardless of the budget. */
    minRetryConcurrency: optional(int({ min: 0, max: 1000 }), 3),
  }),
  connectionPool: section({
    maxConnectionsPerPeer: optional(int({ min: 1, max: 64 }), 2),
    maxPendingRequests: optional(int({ min: 1 }), 1024),
    maxRequests: optional(int({ min: 1 }), 10_000),
    maxConcurrentStreams: optional(int({ min: 1, max: 2_147_483_647 }), 1000),
  }),
  /** Lifetime of gateway leaf certificates; re-issued at half of it. */
  certificateTtl: optional(duration({ min: 60_000 }), 24 * 3_600_000),
});

export type GatewayDefaults = Infer<typeof gatewayDefaultsShape>;

/** The duration fields of the defaults (a round-trip test keeps this list complete). */
const DEFAULTS_DURATIONS: ReadonlyArray<readonly string[]> = [
  ['healthCheck', 'interval'],
  ['healthCheck', 'timeout'],
  ['outlierDetection', 'interval'],
  ['outlierDetection', 'baseEjectionTime'],
  ['timeout'],
  ['retries', 'perTryTimeout'],
  ['certificateTtl'],
];

/**
 * The defaults as a document again (durations as "500ms" strings), for sending to gateways, which
 * check them with the same shape as the file: parsed values would not pass it.
 */
export function gatewayDefaultsDocument(defaults: GatewayDefaults): Record<string, unknown> {
  const document = JSON.parse(JSON.stringify(defaults)) as Record<string, unknown>;
  for (const path of DEFAULTS_DURATIONS) {
    let parent: Record<string, unknown> | undefined = document;
    for (const key of path.slice(0, -1)) parent = parent?.[key] as Record<string, unknown> | undefined;
    const leaf = path[path.length - 1] as string;
    if (parent && typeof parent[leaf] === 'number') parent[leaf] = formatDuration(parent[leaf]);
  }
  return document;
}

/**
 * One trust-domain alias: a plain name stands for every member cluster's trust domain (Istio's
 * `trustDomainAliases`); `{ alias, trustDomains }` for the listed member trust domains only.
 */
export const trustDomainAliasShape = either(
  transform(trustDomain(), (alias): { alias: string; trustDomains?: string[] } => ({ alias })),
  object({
    /** The trust domain policies may name (e.g. cluster.local). */
    alias: trustDomain(),
    /**
     * The member trust domains it stands for; absent means every member. The object form without
     * it is how the controller sends the plain-name form, so it must read back the same.
     */
    trustDomains: optional(arrayOf(trustDomain(), { minItems: 1, uniqueBy: (td) => td, uniqueMessage: 'trust domain listed twice' })),
  }),
  (value) => (typeof value === 'string' ? 'first' : 'second'),
);

export type TrustDomainAliasConfig = Infer<typeof trustDomainAliasShape>;

/** Without spec.trustDomainAliases: Istio's default trust domain stands for every member. */
export const DEFAULT_TRUST_DOMAIN_ALIASES: readonly TrustDomainAliasConfig[] = [{ alias: 'cluster.local' }];

export const federationShape = object({
  apiVersion: literal(API_VERSION),
  kind: literal('Federation'),
  metadata: metadataShape,
  spec: object({
    /** Trust domain of the controller's own CA; the controller is spiffe://<trustDomain>/fedgate/controller. */
    trustDomain: trustDomain(),
    /**
     * Trust domains that policies may name in place of members' ones, as in Istio's mesh config: an
     * AuthorizationPolicy principal `cluster.local/ns/shop/sa/web` then matches shop/web in each
     * cluster the alias stands for. Default `[cluster.local]` (every member); `[]` turns it off.
     */
    trustDomainAliases: optional(arrayOf(trustDomainAliasShape, { uniqueBy: (a) => a.alias, uniqueMessage: 'alias listed twice' }), [...DEFAULT_TRUST_DOMAIN_ALIASES]),
    controller: section({
      /** gRPC API (Sync, Status, Admin), mutual TLS. */
      listen: optional(address(), '0.0.0.0:15012'),
      /** gRPC Join endpoint, server TLS only: joining clusters have no trusted certificate yet. */
      joinListen: optional(address(), '0.0.0.0:15010'),
      /** Admin HTTP: /healthz, /readyz, /metrics, /config. */
      admin: optional(address(), '0.0.0.0:15014'),
      /** Addresses gateways and join tokens use to reach `listen` and `joinListen`; defaults to the listen addresses. */
      advertise: optional(address()),
      advertiseJoin: optional(address()),
      /** Address of the admin endpoint joiners fetch the controller CA from; defaults to `admin` (or this host's name when it listens on all interfaces). */
      advertiseAdmin: optional(address()),
      /** Directory of the controller CA (tls.crt, tls.key, ca.crt). Default: pki/controller next to this file. */
      pkiDir: optional(str({ minLength: 1 })),
      /** Gateways whose lease is older than this are marked unreachable. */
      leaseTtl: optional(duration({ min: 1000 }), 15_000),
      maxMessageBytes: optional(int({ min: 1024, max: 256 * 1024 * 1024 }), 16 * 1024 * 1024),
      maxExportsPerCluster: optional(int({ min: 1 }), 10_000),
      /** Default lifetime of join tokens created without --ttl. */
      tokenTtl: optional(duration({ min: 1000 }), 3_600_000),
    }),
    store: section({
      /**
       * redis:// or rediss:// URL. Empty (and no `sentinels`): the embedded store, journaled to
       * `dataDir` (durable across restarts, one controller replica).
       */
      url: optional(str()),
      /**
       * Directory of the embedded store (used when no Redis is configured): its journal, snapshot
       * and lock file (one controller per directory). Created with mode 0700 when missing.
       * Default: state/controller next to this file (beside the default pki/controller). Relative
       * paths are resolved against this file's directory.
       */
      dataDir: optional(str({ minLength: 1 })),
      /** Sentinel addresses; with `sentinelName`, the master is found through them. */
      sentinels: optional(arrayOf(address()), []),
      sentinelName: optional(str({ minLength: 1 })),
      username: optional(str({ minLength: 1 })),
      /** File holding the Redis password (the password itself never belongs in this file). */
      passwordFile: optional(str({ minLength: 1 })),
      tls: optional(
        object({
          caFile: optional(str({ minLength: 1 })),
          certFile: optional(str({ minLength: 1 })),
          keyFile: optional(str({ minLength: 1 })),
          serverName: optional(str({ minLength: 1 })),
        }),
      ),
      /** Every key lives under {<keyPrefix>} so the whole federation is one Redis Cluster hash slot. */
      keyPrefix: optional(str({ pattern: /^[A-Za-z0-9_.:-]+$/, patternMessage: 'must use only letters, digits and _ . : -' }), 'fedgate'),
      /** Entries kept in the change stream; gateways further behind get a snapshot. */
      changeLogLength: optional(int({ min: 100 }), 100_000),
    }),
    defaults: gatewayDefaultsShape,
  }),
});

export type FederationConfig = Infer<typeof federationShape> & {
  /** Absolute path of the file this came from (empty for embedded configs). */
  readonly file: string;
  /** Resolved absolute directory of the controller CA. */
  readonly controllerPkiDir: string;
  /** Resolved absolute directory of the embedded store (`spec.store.dataDir`). */
  readonly storeDataDir: string;
};
