import type { Logger } from '../../core/logger.js';
import type { GatewayDefaults } from '../../config/federation-config.js';
import type { DiscoveryState } from '../../discovery/provider.js';
import type { AuthorizationRules } from '../../policy/authorization.js';
import { PolicyIndex } from '../../policy/resolve.js';
import type { ServicePolicy } from '../../policy/service-policy.js';
import type { CatalogData } from '../control/catalog-replica.js';

/** This gateway's own cluster, as routing and policies see it. */
export interface LocalCluster {
  readonly cluster: string;
  readonly region: string;
  readonly zone: string;
  readonly trustDomain: string;
  readonly labels: Readonly<Record<string, string>>;
}

/** Clusters ejected by outlier detection, by service (`namespace/name`); '*' for the gateway-wide detector. */
export type Ejections = ReadonlyMap<string, ReadonlySet<string>>;

const NO_EJECTIONS: Ejections = new Map();

/**
 * Everything the data plane decides by, as one immutable value: the catalog, the policy set in
 * force, the federation's defaults, this cluster's exports, which peer gateways answer their
 * health checks, and which clusters outlier detection ejected. A new view is published whenever
 * one of them changes; a request reads the view current when it starts and nothing else, so no
 * line of the request path can reach back into the components that produced it.
 */
export interface ControlView {
  /** Increases with every published view: caches built from a view are keyed on it. */
  readonly version: number;
  readonly local: LocalCluster;
  readonly federation: string;
  readonly catalog: CatalogData;
  readonly policies: PolicyIndex;
  readonly defaults: GatewayDefaults;
  readonly localExports: DiscoveryState;
  /** Peer gateways that fail their active health checks (absent: alive). */
  readonly unhealthy: ReadonlySet<string>;
  readonly ejections: Ejections;
  /** Services this gateway does not answer for (a blackhole drill). */
  readonly blackholes: ReadonlySet<string>;
  /** The effective policy of a service under this view (memoized per view). */
  servicePolicy(namespace: string, name: string): ServicePolicy;
  /** The authorization rules this gateway enforces for a service it serves (memoized per view). */
  authorization(namespace: string, name: string): AuthorizationRules;
  isEjected(service: string, cluster: string): boolean;
}

/** The inputs a view is made of; each producer updates its own. */
export interface ViewInputs {
  federation: string;
  catalog: CatalogData;
  policies: PolicyIndex;
  defaults: GatewayDefaults;
  localExports: DiscoveryState;
  unhealthy: ReadonlySet<string>;
  ejections: Ejections;
}

class View implements ControlView {
  readonly blackholes: ReadonlySet<string>;
  private readonly policiesByService = new Map<string, ServicePolicy>();
  private readonly rulesByService = new Map<string, AuthorizationRules>();

  constructor(
    readonly version: number,
    readonly local: LocalCluster,
    private readonly inputs: ViewInputs,
  ) {
    this.blackholes = new Set(inputs.catalog.clusters.get(local.cluster)?.blackholed ?? []);
  }

  get federation(): string {
    return this.inputs.federation;
  }
  get catalog(): CatalogData {
    return this.inputs.catalog;
  }
  get policies(): PolicyIndex {
    return this.inputs.policies;
  }
  get defaults(): GatewayDefaults {
    return this.inputs.defaults;
  }
  get localExports(): DiscoveryState {
    return this.inputs.localExports;
  }
  get unhealthy(): ReadonlySet<string> {
    return this.inputs.unhealthy;
  }
  get ejections(): Ejections {
    return this.inputs.ejections;
  }

  // The memos below fill lazily but never change a value once computed: the view stays a value.
  servicePolicy(namespace: string, name: string): ServicePolicy {
    const key = `${namespace}/${name}`;
    let policy = this.policiesByService.get(key);
    if (!policy) {
      policy = this.inputs.policies.servicePolicy(this.inputs.defaults, namespace, name, { cluster: this.local.cluster, region: this.local.region });
      this.policiesByService.set(key, policy);
    }
    return policy;
  }

  authorization(namespace: string, name: string): AuthorizationRules {
    const key = `${namespace}/${name}`;
    let rules = this.rulesByService.get(key);
    if (!rules) {
      rules = this.inputs.policies.authorization(namespace, name, this.local.cluster);
      this.rulesByService.set(key, rules);
    }
    return rules;
  }

  isEjected(service: string, cluster: string): boolean {
    return this.inputs.ejections.get(service)?.has(cluster) === true;
  }
}

/**
 * Holds the current view and publishes the next one when an input changes. Producers (catalog,
 * policies, settings, discovery, health, outlier detection) call `update` with what they own;
 * consumers `watch` and get every new view, in order.
 */
export class ControlViewPublisher {
  private view: View;
  private inputs: ViewInputs;
  private readonly watchers = new Set<(view: ControlView, previous: ControlView) => void>();

  constructor(local: LocalCluster, initial: Omit<ViewInputs, 'unhealthy' | 'ejections' | 'policies'> & Partial<Pick<ViewInputs, 'unhealthy' | 'ejections' | 'policies'>>) {
    this.inputs = { unhealthy: new Set(), ejections: NO_EJECTIONS, policies: PolicyIndex.EMPTY, ...initial };
    this.view = new View(1, local, this.inputs);
  }

  get current(): ControlView {
    return this.view;
  }

  /** Publishes a view with these inputs replaced; nothing is published when none of them changed. */
  update(changes: Partial<ViewInputs>): ControlView {
    let changed = false;
    for (const key of Object.keys(changes) as Array<keyof ViewInputs>) {
      if (changes[key] !== undefined && changes[key] !== this.inputs[key]) changed = true;
    }
    if (!changed) return this.view;
    this.inputs = { ...this.inputs, ...definedOnly(changes) };
    const previous = this.view;
    this.view = new View(previous.version + 1, previous.local, this.inputs);
    for (const watcher of this.watchers) watcher(this.view, previous);
    return this.view;
  }

  /** Calls `watcher` with every view published from now on; returns the unsubscribe function. */
  watch(watcher: (view: ControlView, previous: ControlView) => void): () => void {
    this.watchers.add(watcher);
    return () => this.watchers.delete(watcher);
  }
}

function definedOnly(changes: Partial<ViewInputs>): Partial<ViewInputs> {
  const out: Partial<ViewInputs> = {};
  for (const [key, value] of Object.entries(changes)) if (value !== undefined) (out as Record<string, unknown>)[key] = value;
  return out;
}

/** Blackholes come with the catalog (set through the controller's audited admin API): each change is worth a line. */
export function logBlackholeChanges(log: Logger, view: ControlView, previous: ControlView): void {
  for (const service of view.blackholes) if (!previous.blackholes.has(service)) log.warn({ service }, 'blackhole on: no longer answering for this service (drill)');
  for (const service of previous.blackholes) if (!view.blackholes.has(service)) log.warn({ service }, 'blackhole off: answering for this service again');
}
