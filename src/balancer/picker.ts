import type { Locality } from '../model/locality.js';
import { ErrorCodes, FedgateError } from '../core/errors.js';

/** One cluster that can serve a clusterset service, as the balancer sees it. */
export interface Target {
  cluster: string;
  locality: Locality;
  readyEndpoints: number;
  totalEndpoints: number;
  /** Explicit weight within its priority; default: ready endpoints. */
  weight?: number;
  /**
   * Fixed share (percent) from a FailoverPolicy distribute rule. When any target has one, the
   * targets with a share form the first priority, weighted by it, and every other target keeps its
   * locality priority after them: a shared cluster that fails spills along the failover order.
   */
  share?: number;
  /** Takes no new requests (operator drain). */
  draining: boolean;
  /** The remote gateway answers its health checks (always true for the local cluster). */
  alive: boolean;
  /** Currently ejected by outlier detection. */
  ejected: boolean;
}

export interface PickRequest {
  /** Clusters already tried by this request: a retry goes elsewhere. */
  exclude?: ReadonlySet<string>;
}

/** What a pick decided. Never thrown: "nothing to pick" is an expected outcome on the request path. */
export type PickResult =
  | { type: 'complete'; cluster: string; priority: number; panic: boolean }
  /** Nothing can take the request now, with the reason for the response. */
  | { type: 'unavailable'; reason: string }
  /** The request is refused on purpose (policy). */
  | { type: 'drop'; reason: string };

/** Synchronous and allocation-light: called once per request (and per retry). */
export interface Picker {
  pick(request?: PickRequest): PickResult;
}

export interface BalancerConfig {
  overprovisioningFactor: number;
  /** Percent; below it a priority ignores health. */
  panicThreshold: number;
  /** Region failover order after the local region; unlisted regions come after these. */
  failoverRegions?: readonly string[];
  /** Random source in [0, 1); injectable for tests. */
  random?: () => number;
}

/** A balancer builds pickers from targets; registered by name like grpc-js load balancers. */
export interface LoadBalancer {
  readonly name: string;
  picker(targets: readonly Target[], local: Locality, config: BalancerConfig): Picker;
}

const registry = new Map<string, LoadBalancer>();

export function registerLoadBalancer(balancer: LoadBalancer): void {
  registry.set(balancer.name, balancer);
}

export function loadBalancer(name: string): LoadBalancer {
  const balancer = registry.get(name);
  if (!balancer) throw new FedgateError(ErrorCodes.CONFIG_INVALID, `no load balancer "${name}" registered (known: ${[...registry.keys()].join(', ')})`);
  return balancer;
}
