import { Backoff, sleep } from '../core/backoff.js';
import { ErrorCodes, errorMessage, StoreError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import type { Component } from '../core/lifecycle.js';
import type { Counter, Gauge } from '../admin/metrics.js';
import type { AuditEntry, Store, StoreSnapshot } from '../store/store.js';
import type { CatalogState } from './catalog-state.js';

export interface StoreGuardOptions {
  store: Store;
  catalog: CatalogState;
  replicaId: string;
  log: Logger;
  metrics: { storeUp: Gauge<string>; epochLosses: Counter<string> };
  /** Loads a snapshot into the replica's catalog (and its trust). */
  loadSnapshot: (snapshot: StoreSnapshot) => void;
  /** The catalog was rebuilt: every gateway gets a snapshot and re-sends its exports. */
  resyncAll: (reason: string) => void;
  /** The store answers again: gateways whose export writes failed send them again. */
  storeRecovered: () => void;
  /** The audit log as last read, written back with the catalog. */
  auditCopy: () => readonly AuditEntry[];
}

/**
 * Whether this replica may trust the store, and what it does when it may not: it opens the store
 * (waiting while it is unreachable), watches it answer, notices when it came back without this
 * catalog (Redis restarted empty), and rebuilds it from memory. The replica is ready only while
 * the store is reachable and known to hold this catalog.
 */
export class StoreGuard implements Component {
  readonly name = 'store-health';
  private storeReady = false;
  private catalogLoaded = false;
  private rebuildingValue = false;
  /** The store answers but no longer holds this catalog's epoch: not ready until rebuilt. */
  private storeStateLost = false;
  /** The store connection generation whose epoch was last checked against the catalog. */
  private verifiedGeneration = -1;
  private readonly abort = new AbortController();
  /** Set by the catalog watch: restarts it, so it notices a lost store at once. */
  restartWatch: (() => void) | undefined;

  constructor(private readonly options: StoreGuardOptions) {}

  get ready(): boolean {
    return this.storeReady;
  }

  /** A rebuild is in progress: the catalog is not to be served or pushed. */
  get rebuilding(): boolean {
    return this.rebuildingValue;
  }

  /** The store's content can be read as this catalog's (for copies kept of it, such as the audit log). */
  get trusted(): boolean {
    return !this.rebuildingValue && !this.storeStateLost;
  }

  readiness(): { ready: boolean; reason?: string } {
    const { store } = this.options;
    if (!this.storeReady) return { ready: false, reason: 'store unreachable' };
    if (!this.catalogLoaded) return { ready: false, reason: 'catalog not loaded' };
    if (this.rebuildingValue || this.storeStateLost) return { ready: false, reason: 'rebuilding the catalog after the store lost its state' };
    if (!store.connectionUp) return { ready: false, reason: 'store unreachable (connection down)' };
    if (store.connectionGeneration !== this.verifiedGeneration) return { ready: false, reason: 'the store connection was re-established; checking it still holds the catalog' };
    return { ready: true };
  }

  /** Opens the store, waiting (with back-off) while it is unreachable; the admin server reports not ready meanwhile. */
  async connect(): Promise<void> {
    const backoff = new Backoff({ initialMs: 200, maxMs: 5000 });
    for (;;) {
      try {
        const { epoch, created } = await this.options.store.open();
        const snapshot = await this.options.store.snapshot();
        this.options.loadSnapshot(snapshot);
        this.storeReady = true;
        this.catalogLoaded = true;
        this.verifiedGeneration = this.options.store.connectionGeneration;
        this.options.metrics.storeUp.set(1);
        this.options.log.info({ epoch, created, revision: snapshot.revision, clusters: snapshot.clusters.length }, created ? 'store initialised' : 'catalog loaded from the store');
        return;
      } catch (error) {
        this.options.metrics.storeUp.set(0);
        this.options.log.warn({ err: errorMessage(error) }, 'store unavailable at start; retrying');
        await sleep(backoff.next(), this.abort.signal);
      }
    }
  }

  /**
   * The store lost its state (Redis restarted without persistence) or was replaced. Never publish
   * the empty catalog that results: the replica holding the last good catalog writes it back under
   * a new epoch (under a lock, so only one does), every gateway gets a snapshot of it, and gateways
   * are asked to re-send their exports, which are the source of truth for what they export.
   */
  async recover(): Promise<void> {
    const { store } = this.options;
    this.rebuildingValue = true;
    this.options.metrics.epochLosses.inc();
    this.options.log.error({ epoch: this.options.catalog.epoch, revision: this.options.catalog.revision }, 'the store lost its state; rebuilding the catalog (gateways keep serving their last snapshot)');
    const backoff = new Backoff({ initialMs: 200, maxMs: 2000 });
    while (!this.abort.signal.aborted) {
      try {
        const epoch = await store.epoch();
        const snapshot = epoch === undefined ? undefined : await store.snapshot();
        const storeEmpty = snapshot === undefined || snapshot.clusters.length === 0;
        if (storeEmpty && !this.options.catalog.isEmpty) {
          const token = await store.acquireLock('restore', this.options.replicaId, 30_000);
          if (token === undefined) {
            await sleep(backoff.next(), this.abort.signal);
            continue;
          }
          const fence = { lock: 'restore', holder: this.options.replicaId, token };
          try {
            const restored = await store.restore({ ...this.options.catalog.toSnapshot(), audit: [...this.options.auditCopy()] }, fence);
            this.options.log.warn({ epoch: restored.epoch, revision: restored.revision, clusters: this.options.catalog.clusters.size }, 'catalog written back to the store from memory');
          } catch (error) {
            if (!(error instanceof StoreError && error.code === ErrorCodes.STORE_CONFLICT)) throw error;
          } finally {
            await store.releaseLock(fence).catch(() => undefined);
          }
        }
        await store.open();
        const current = await store.snapshot();
        if (current.clusters.length === 0 && !this.options.catalog.isEmpty) {
          await sleep(backoff.next(), this.abort.signal);
          continue;
        }
        this.options.loadSnapshot(current);
        break;
      } catch (error) {
        this.options.log.warn({ err: errorMessage(error) }, 'catalog rebuild attempt failed; retrying');
        await sleep(backoff.next(), this.abort.signal).catch(() => undefined);
      }
    }
    this.rebuildingValue = false;
    this.storeStateLost = false;
    this.verifiedGeneration = this.options.store.connectionGeneration;
    this.options.resyncAll('the federation store lost its state and was rebuilt');
    this.options.log.info({ epoch: this.options.catalog.epoch, revision: this.options.catalog.revision }, 'catalog rebuilt; gateways asked to re-send their exports');
  }

  async start(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      const wasReady = this.storeReady;
      try {
        const generation = this.options.store.connectionGeneration;
        await this.options.store.ping();
        // A store that answers again may have come back empty (Redis restarted without its data):
        // until the watch notices and the catalog is written back, this replica is not ready, and
        // the watch is nudged instead of waiting out its back-off.
        const epoch = await this.options.store.epoch();
        if (epoch === this.options.catalog.epoch) this.verifiedGeneration = generation;
        if (epoch !== this.options.catalog.epoch && !this.rebuildingValue && !this.storeStateLost) {
          this.storeStateLost = true;
          this.options.log.error({ epoch: this.options.catalog.epoch, found: epoch ?? 'none' }, 'the store no longer holds this catalog; not ready until it is rebuilt');
          this.restartWatch?.();
        }
        this.storeReady = true;
        this.options.metrics.storeUp.set(1);
        if (!wasReady) {
          this.options.log.info('store reachable again');
          this.options.storeRecovered();
        }
      } catch (error) {
        this.storeReady = false;
        this.options.metrics.storeUp.set(0);
        if (wasReady) this.options.log.error({ err: errorMessage(error) }, 'store unreachable; gateways keep their catalog, writes wait');
      }
      try {
        await sleep(1000, signal);
      } catch {
        return;
      }
    }
  }

  stop(): void {
    this.abort.abort();
  }
}
