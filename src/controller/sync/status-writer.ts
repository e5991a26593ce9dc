import { errorMessage } from '../../core/errors.js';
import type { Logger } from '../../core/logger.js';
import type { Store } from '../../store/store.js';
import type { CatalogState } from '../catalog-state.js';
import { heartbeatInterval } from '../gateway-status.js';
import type { GatewaySession } from './gateway-session.js';

const STATUS_WRITE_INTERVAL_MS = 500;

/**
 * Writes one gateway instance's status to the store, so every replica (and a replica that takes
 * over) sees it: at once when the stream opens or closes, at most every half second when its
 * revisions change, and on a heartbeat while the stream is open, which also renews the cluster's
 * lease (any of its instances does). A stream that went quiet is told apart from one whose replica
 * died by `lastSeen`.
 */
export class StatusWriter {
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private soonTimer: NodeJS.Timeout | undefined;
  private dirty = false;

  constructor(
    private readonly session: GatewaySession,
    private readonly options: { store: Store; catalog: CatalogState; replicaId: string; leaseTtlMs: number; log: Logger; renewLease: () => Promise<void> },
  ) {}

  /** The stream is admitted: record it connected, and keep it (and the lease) fresh. */
  start(): void {
    this.write(true);
    this.heartbeatTimer = setInterval(() => this.heartbeat(), heartbeatInterval(this.options.leaseTtlMs));
  }

  /** Revisions or a refusal changed: written soon, coalescing bursts of ACKs. */
  soon(): void {
    this.dirty = true;
    this.soonTimer ??= setTimeout(() => {
      this.soonTimer = undefined;
      if (this.dirty) {
        this.dirty = false;
        this.write(true);
      }
    }, STATUS_WRITE_INTERVAL_MS);
  }

  /** The stream closed (and no newer one of the instance replaced it): record it disconnected. */
  disconnected(): void {
    this.stop();
    this.session.lastSeen = Date.now();
    this.write(false);
  }

  stop(): void {
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    if (this.soonTimer) clearTimeout(this.soonTimer);
    this.heartbeatTimer = undefined;
    this.soonTimer = undefined;
  }

  private heartbeat(): void {
    const session = this.session;
    if (session.isClosed) return;
    session.lastSeen = Date.now();
    this.write(true);
    void this.options.renewLease();
  }

  private write(connected: boolean): void {
    const { session } = this;
    const { store, catalog, replicaId, log } = this.options;
    void store
      .putGatewayStatus({
        cluster: session.cluster,
        instance: session.instance,
        connected,
        replica: replicaId,
        lastSeen: session.lastSeen,
        appliedRevision: session.ackedRevision,
        appliedPolicyRevision: session.ackedPolicyRevision,
        lastNack: session.lastNack,
        lastNackRevision: session.lastNackRevision,
        exports: catalog.exportsOf(session.cluster).length,
        connectedAt: session.connectedAt,
        version: session.version,
      })
      .catch((error: unknown) => log.debug({ err: errorMessage(error) }, 'could not record gateway status'));
  }
}
