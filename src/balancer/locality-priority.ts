import { localityDistance, type Locality } from '../model/locality.js';
import { registerLoadBalancer, type BalancerConfig, type LoadBalancer, type Picker, type PickRequest, type PickResult, type Target } from './picker.js';

interface Entry {
  cluster: string;
  weight: number;
  healthy: boolean;
}

interface Priority {
  entries: Entry[];
  healthyEntries: Entry[];
  healthyWeight: number;
  allWeight: number;
  /** Envoy's health: healthy share × overprovisioning factor, capped at 100. */
  health: number;
  /** Healthy share without overprovisioning, for the panic threshold. */
  healthyPercent: number;
  /** Share of requests (percent) this priority receives. */
  load: number;
  panic: boolean;
}

/** Priority index of a target: same cluster, same zone, same region, failover regions in order, the rest. */
export function priorityOf(target: Locality, local: Locality, failoverRegions: readonly string[] = []): number {
  const distance = localityDistance(local, target);
  if (distance < 3) return distance;
  const index = failoverRegions.indexOf(target.region);
  return index === -1 ? 3 + failoverRegions.length : 3 + index;
}

/**
 * Envoy's priority load: a priority at least 1/overprovisioning healthy keeps all the load it can;
 * as it degrades, the missing share spills to the next priority proportionally rather than all at
 * once. When the priorities' health sums below 100 the loads are scaled up to sum to 100.
 */
export function priorityLoads(health: readonly number[]): number[] {
  const total = Math.min(100, health.reduce((sum, h) => sum + h, 0));
  const loads = health.map(() => 0);
  if (total === 0) {
    if (loads.length > 0) loads[0] = 100;
    return loads;
  }
  let remaining = 100;
  for (let i = 0; i < health.length; i++) {
    const share = Math.min(remaining, ((health[i] as number) * 100) / total);
    loads[i] = share;
    remaining -= share;
  }
  return loads;
}

class LocalityPriorityPicker implements Picker {
  private readonly random: () => number;

  constructor(
    private readonly priorities: Priority[],
    random: (() => number) | undefined,
  ) {
    this.random = random ?? Math.random;
  }

  pick(request?: PickRequest): PickResult {
    const priorities = this.priorities;
    if (priorities.length === 0) return { type: 'unavailable', reason: 'no cluster exports this service' };
    const exclude = request?.exclude;
    let roll = this.random() * 100;
    let chosen = priorities.length - 1;
    for (let i = 0; i < priorities.length; i++) {
      roll -= (priorities[i] as Priority).load;
      if (roll < 0) {
        chosen = i;
        break;
      }
    }
    // The chosen priority first; if everything there is excluded (a retry), the others in order.
    const first = this.pickIn(priorities[chosen] as Priority, chosen, exclude);
    if (first) return first;
    for (let i = 0; i < priorities.length; i++) {
      if (i === chosen) continue;
      const next = this.pickIn(priorities[i] as Priority, i, exclude);
      if (next) return next;
    }
    return { type: 'unavailable', reason: exclude && exclude.size > 0 ? 'every cluster was tried' : 'no healthy cluster' };
  }

  private pickIn(priority: Priority, index: number, exclude: ReadonlySet<string> | undefined): PickResult | undefined {
    const pool = priority.panic ? priority.entries : priority.healthyEntries;
    if (pool.length === 0) return undefined;
    let total = 0;
    for (const entry of pool) if (!exclude?.has(entry.cluster)) total += entry.weight;
    if (total <= 0) {
      // Weights can all be zero (no ready endpoints, panic): fall back to equal chances.
      const candidates = pool.filter((entry) => !exclude?.has(entry.cluster));
      if (candidates.length === 0) return undefined;
      const entry = candidates[Math.floor(this.random() * candidates.length)] as Entry;
      return { type: 'complete', cluster: entry.cluster, priority: index, panic: priority.panic };
    }
    let roll = this.random() * total;
    for (const entry of pool) {
      if (exclude?.has(entry.cluster)) continue;
      roll -= entry.weight;
      if (roll < 0) return { type: 'complete', cluster: entry.cluster, priority: index, panic: priority.panic };
    }
    const last = [...pool].reverse().find((entry) => !exclude?.has(entry.cluster)) as Entry;
    return { type: 'complete', cluster: last.cluster, priority: index, panic: priority.panic };
  }
}

/**
 * Locality-aware failover with priorities (grpc-js-xds' priority balancer, Envoy's load rules).
 * A target's health is its ready endpoints, zeroed when its gateway is down or it is ejected;
 * draining targets are left out entirely, so they receive no new requests.
 */
export const localityPriorityBalancer: LoadBalancer = {
  name: 'locality-priority',
  picker(targets: readonly Target[], local: Locality, config: BalancerConfig): Picker {
    const byPriority = new Map<number, Entry[]>();
    const totals = new Map<number, { healthyWeight: number; allWeight: number }>();
    const distributing = targets.some((t) => !t.draining && (t.share ?? 0) > 0);
    for (const target of targets) {
      if (target.draining) continue;
      const shared = distributing && (target.share ?? 0) > 0;
      const locality = priorityOf(target.locality, local, config.failoverRegions);
      const index = distributing ? (shared ? 0 : 1 + locality) : locality;
      const healthy = target.alive && !target.ejected && target.readyEndpoints > 0;
      const weight = shared ? (target.share as number) : (target.weight ?? target.readyEndpoints);
      const entries = byPriority.get(index) ?? [];
      entries.push({ cluster: target.cluster, weight, healthy });
      byPriority.set(index, entries);
      const sums = totals.get(index) ?? { healthyWeight: 0, allWeight: 0 };
      // Health counts endpoints: half the endpoints of a priority ready is half its health.
      const capacity = shared ? weight : (target.weight ?? Math.max(target.totalEndpoints, target.readyEndpoints, 1));
      sums.allWeight += capacity;
      if (healthy) sums.healthyWeight += weight;
      totals.set(index, sums);
    }
    const priorities: Priority[] = [...byPriority.keys()]
      .sort((a, b) => a - b)
      .map((index) => {
        const entries = byPriority.get(index) as Entry[];
        const sums = totals.get(index) as { healthyWeight: number; allWeight: number };
        const healthyPercent = sums.allWeight > 0 ? (sums.healthyWeight * 100) / sums.allWeight : 0;
        return {
          entries,
          healthyEntries: entries.filter((entry) => entry.healthy),
          healthyWeight: sums.healthyWeight,
          allWeight: sums.allWeight,
          health: Math.min(100, healthyPercent * config.overprovisioningFactor),
          healthyPercent,
          load: 0,
          panic: false,
        };
      });
    const loads = priorityLoads(priorities.map((p) => p.health));
    // Envoy's rule: while the priorities together are fully available, health decides; once they
    // are not, a priority whose healthy share is below the panic threshold routes to all of its
    // members, healthy or not — better to try suspect clusters than to fail everything.
    const degraded = priorities.reduce((sum, p) => sum + p.health, 0) < 100;
    priorities.forEach((priority, i) => {
      priority.load = loads[i] as number;
      priority.panic = degraded && priority.healthyPercent < config.panicThreshold;
    });
    return new LocalityPriorityPicker(priorities, config.random);
  },
};

registerLoadBalancer(localityPriorityBalancer);
