import { sleep } from '../core/backoff.js';
import { errorMessage } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import type { Component } from '../core/lifecycle.js';
import type { Fence, Store } from '../store/store.js';
import type { CatalogState } from './catalog-state.js';
import { STATUS_RETENTION_MS } from './gateway-status.js';

/**
 * Work that must run once per federation (marking clusters unreachable when their gateway's lease
 * expired, forgetting long-gone gateway instances) runs on the replica that holds the `leader` lock. Its writes carry the lock's fencing
 * token, so a replica that lost the lock without noticing (a long GC pause, a partition) cannot
 * overwrite the new leader's decisions.
 */
export class Leadership implements Component {
  readonly name = 'leadership';
  private fence: Fence | undefined;

  constructor(
    private readonly options: {
      store: Store;
      catalog: CatalogState;
      replicaId: string;
      leaseTtlMs: number;
      /** When this controller process started: leases expire no earlier than one TTL after it. */
      startedAt: number;
      log: Logger;
      onChange?: (leader: boolean) => void;
    },
  ) {}

  get isLeader(): boolean {
    return this.fence !== undefined;
  }

  async start(signal: AbortSignal): Promise<void> {
    const { store, replicaId, leaseTtlMs, log } = this.options;
    // A leader that dies is replaced within one lease TTL: the lock lives two thirds of it and is
    // renewed four times per life, so one slow renewal never loses it.
    const lockTtl = Math.max(1000, Math.floor((leaseTtlMs * 2) / 3));
    const tick = Math.max(250, Math.floor(lockTtl / 4));
    while (!signal.aborted) {
      try {
        if (this.fence) {
          if (!(await store.renewLock(this.fence, lockTtl))) this.lose('lock lost');
        } else {
          const token = await store.acquireLock('leader', replicaId, lockTtl);
          if (token !== undefined) {
            this.fence = { lock: 'leader', holder: replicaId, token };
            log.info({ fencingToken: token }, 'this replica leads');
            this.options.onChange?.(true);
          }
        }
        if (this.fence) {
          await this.expireLeases(this.fence);
          await this.pruneStatuses();
        }
      } catch (error) {
        log.debug({ err: errorMessage(error) }, 'leadership tick failed');
        if (this.fence) this.lose(errorMessage(error));
      }
      try {
        await sleep(tick, signal);
      } catch {
        break;
      }
    }
    if (this.fence) await store.releaseLock(this.fence).catch(() => undefined);
    this.fence = undefined;
  }

  private lose(reason: string): void {
    this.options.log.warn({ reason }, 'this replica no longer leads');
    this.fence = undefined;
    this.options.onChange?.(false);
  }

  private lastPrune = 0;

  /** Statuses of gateway instances gone for longer than the retention (replaced pods) are dropped. */
  private async pruneStatuses(): Promise<void> {
    const now = Date.now();
    if (now - this.lastPrune < 60_000) return;
    this.lastPrune = now;
    const removed = await this.options.store.pruneGatewayStatus(now - STATUS_RETENTION_MS);
    if (removed > 0) this.options.log.info({ removed }, 'forgot gateway instances not seen for an hour');
  }

  private async expireLeases(fence: Fence): Promise<void> {
    const { store, catalog, replicaId, leaseTtlMs, log } = this.options;
    const now = Date.now();
    // Leases stored before an outage of the controllers (or of every replica) have run out while
    // nobody could renew them: give the gateways one TTL to reconnect before judging them.
    if (now < this.options.startedAt + leaseTtlMs) return;
    // A cluster whose gateway never connected (or whose lease was lost with the store) has no
    // lease to expire: give it one, so it too turns unreachable when nobody renews it.
    const active = [...catalog.clusters.values()].filter((c) => c.state === 'active').map((c) => c.name);
    await store.ensureLeases(active, replicaId, now + leaseTtlMs);
    for (const cluster of await store.expiredLeases(now)) {
      const record = catalog.clusters.get(cluster);
      if (record?.state === 'active') {
        const revision = await store.setClusterState(cluster, 'unreachable', { by: replicaId, reason: `no gateway heartbeat for ${leaseTtlMs}ms`, at: now }, fence);
        log.warn({ cluster, revision }, 'cluster unreachable: gateway lease expired');
      }
      await store.removeLease(cluster);
    }
  }
}
