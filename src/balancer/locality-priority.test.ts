import type { Locality } from '../model/locality.js';
import { localityPriorityBalancer, priorityLoads, priorityOf } from './locality-priority.js';
import type { BalancerConfig, Target } from './picker.js';

const local: Locality = { region: 'us-east-1', zone: 'us-east-1a', cluster: 'us-east' };
const config: BalancerConfig = { overprovisioningFactor: 1.4, panicThreshold: 50 };

function target(cluster: string, region: string, zone: string, overrides: Partial<Target> = {}): Target {
  return { cluster, locality: { region, zone, cluster }, readyEndpoints: 10, totalEndpoints: 10, draining: false, alive: true, ejected: false, ...overrides };
}

/** Deterministic sweep over [0, 1): n evenly spaced values, reused cyclically. */
function sweep(n: number): () => number {
  let i = 0;
  return () => ((i++ % n) + 0.5) / n;
}

function distribution(targets: Target[], n = 10_000, extra: Partial<BalancerConfig> = {}): Record<string, number> {
  const picker = localityPriorityBalancer.picker(targets, local, { ...config, random: Math.random, ...extra });
  const counts: Record<string, number> = {};
  for (let i = 0; i < n; i++) {
    const result = picker.pick();
    const key = result.type === 'complete' ? result.cluster : result.type;
    counts[key] = (counts[key] ?? 0) + 1;
  }
  return Object.fromEntries(Object.entries(counts).map(([k, v]) => [k, Math.round((v * 1000) / n) / 10]));
}

describe('priorities by locality', () => {
  it('orders same cluster, same zone, same region, failover regions, then the rest', () => {
    expect(priorityOf(local, local)).toBe(0);
    expect(priorityOf({ region: 'us-east-1', zone: 'us-east-1a', cluster: 'x' }, local)).toBe(1);
    expect(priorityOf({ region: 'us-east-1', zone: 'us-east-1b', cluster: 'x' }, local)).toBe(2);
    expect(priorityOf({ region: 'eu-west-1', zone: 'a', cluster: 'x' }, local, ['eu-west-1', 'us-west-2'])).toBe(3);
    expect(priorityOf({ region: 'us-west-2', zone: 'a', cluster: 'x' }, local, ['eu-west-1', 'us-west-2'])).toBe(4);
    expect(priorityOf({ region: 'ap-south-1', zone: 'a', cluster: 'x' }, local, ['eu-west-1', 'us-west-2'])).toBe(5);
    expect(priorityOf({ region: 'ap-south-1', zone: 'a', cluster: 'x' }, local)).toBe(3);
  });
});

describe("Envoy's priority load", () => {
  it.each([
    [[100, 100], [100, 0]],
    [[70, 100], [70, 30]],
    [[0, 100], [0, 100]],
    [[42, 42], [50, 50]],
    [[0, 0], [100, 0]],
    [[20, 20, 100], [20, 20, 60]],
  ])('health %j gives loads %j', (health, loads) => {
    expect(priorityLoads(health).map((l) => Math.round(l))).toEqual(loads);
  });
});

describe('LocalityPriorityBalancer', () => {
  it('keeps all load in the best priority while it is healthy enough', () => {
    const targets = [target('us-east', 'us-east-1', 'us-east-1a'), target('us-west', 'us-west-2', 'a'), target('eu-west', 'eu-west-1', 'a')];
    expect(distribution(targets)).toEqual({ 'us-east': 100 });
  });

  it('spills proportionally as the best priority degrades (overprovisioning 1.4)', () => {
    // 5 of 10 ready: health 50 × 1.4 = 70 % stays, 30 % spills to the next priority.
    const targets = [target('us-east', 'us-east-1', 'us-east-1a', { readyEndpoints: 5 }), target('us-west', 'us-west-2', 'a')];
    const split = distribution(targets, 20_000);
    expect(split['us-east']).toBeGreaterThan(67);
    expect(split['us-east']).toBeLessThan(73);
    expect(split['us-west']).toBeGreaterThan(27);
  });

  it('sends nothing to draining clusters and fails over when the local gateway target is down', () => {
    const targets = [target('us-east', 'us-east-1', 'us-east-1a', { draining: true }), target('us-west', 'us-west-2', 'a'), target('eu-west', 'eu-west-1', 'a', { alive: false })];
    expect(distribution(targets)).toEqual({ 'us-west': 100 });
  });

  it('weights clusters of one priority by ready endpoints, or by explicit weights', () => {
    const targets = [target('a', 'eu-west-1', 'z1', { readyEndpoints: 3, totalEndpoints: 3 }), target('b', 'ap-south-1', 'z2', { readyEndpoints: 1, totalEndpoints: 1 })];
    const byEndpoints = distribution(targets, 20_000);
    expect(byEndpoints.a).toBeGreaterThan(72);
    expect(byEndpoints.a).toBeLessThan(78);
    const weighted = distribution(targets.map((t) => ({ ...t, weight: 50 })), 20_000);
    expect(weighted.a).toBeGreaterThan(47);
    expect(weighted.a).toBeLessThan(53);
  });

  it('ignores health below the panic threshold when nothing else is available', () => {
    // Two clusters in one priority, one ejected: 50 % healthy, health 70 < 100, but 50 is not below 50.
    const half = [target('a', 'eu-west-1', 'z'), target('b', 'eu-west-1', 'z', { ejected: true })];
    expect(distribution(half)).toEqual({ a: 100 });
    // Three clusters, two down: 33 % healthy < 50 → panic: all three receive traffic.
    const third = [target('a', 'eu-west-1', 'z'), target('b', 'eu-west-1', 'z', { alive: false }), target('c', 'eu-west-1', 'z', { ejected: true })];
    const split = distribution(third, 30_000);
    expect(Object.keys(split).sort()).toEqual(['a', 'b', 'c']);
    const picker = localityPriorityBalancer.picker(third, local, { ...config, random: sweep(3) });
    expect(picker.pick()).toMatchObject({ type: 'complete', panic: true });
  });

  it('retries go to a different cluster, across priorities if needed', () => {
    const targets = [target('us-east', 'us-east-1', 'us-east-1a'), target('us-west', 'us-west-2', 'a'), target('eu-west', 'eu-west-1', 'a')];
    const picker = localityPriorityBalancer.picker(targets, local, { ...config, random: sweep(7) });
    expect(picker.pick()).toMatchObject({ cluster: 'us-east', priority: 0 });
    const second = picker.pick({ exclude: new Set(['us-east']) });
    expect(second.type === 'complete' && second.cluster !== 'us-east').toBe(true);
    expect(picker.pick({ exclude: new Set(['us-east', 'us-west', 'eu-west']) })).toEqual({ type: 'unavailable', reason: 'every cluster was tried' });
  });

  it('reports no exporter and no healthy cluster as values', () => {
    expect(localityPriorityBalancer.picker([], local, config).pick()).toEqual({ type: 'unavailable', reason: 'no cluster exports this service' });
    expect(localityPriorityBalancer.picker([target('a', 'r', 'z', { draining: true })], local, config).pick()).toEqual({ type: 'unavailable', reason: 'no cluster exports this service' });
  });
});
