import type { Gauge } from '../../admin/metrics.js';
import type { GatewaySession } from './gateway-session.js';

/**
 * The Sync streams this replica holds, by cluster, then by instance. A cluster's gateway may run
 * as several instances (replicas of its Deployment), each with its own stream; whatever concerns
 * a cluster concerns every session of it.
 */
export class SessionRegistry {
  private readonly sessions = new Map<string, Map<string, GatewaySession>>();

  constructor(private readonly gauge: Gauge<string>) {}

  get byCluster(): ReadonlyMap<string, ReadonlyMap<string, GatewaySession>> {
    return this.sessions;
  }

  all(): GatewaySession[] {
    return [...this.sessions.values()].flatMap((byInstance) => [...byInstance.values()]);
  }

  of(cluster: string): GatewaySession[] {
    return [...(this.sessions.get(cluster)?.values() ?? [])];
  }

  /** Registers a session; returns the one it replaces (the same instance's older stream). */
  add(session: GatewaySession): GatewaySession | undefined {
    let byInstance = this.sessions.get(session.cluster);
    if (!byInstance) {
      byInstance = new Map();
      this.sessions.set(session.cluster, byInstance);
    }
    const previous = byInstance.get(session.instance);
    byInstance.set(session.instance, session);
    this.updateGauge();
    return previous;
  }

  /** Forgets a session unless a newer stream of its instance took its place; true when it did. */
  remove(session: GatewaySession): boolean {
    const byInstance = this.sessions.get(session.cluster);
    if (byInstance?.get(session.instance) !== session) return false;
    byInstance.delete(session.instance);
    if (byInstance.size === 0) this.sessions.delete(session.cluster);
    this.updateGauge();
    return true;
  }

  clear(): void {
    this.sessions.clear();
    this.updateGauge();
  }

  private updateGauge(): void {
    let count = 0;
    for (const byInstance of this.sessions.values()) count += byInstance.size;
    this.gauge.set(count);
  }
}
