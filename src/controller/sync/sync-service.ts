import { errorMessage } from '../../core/errors.js';
import type { Logger } from '../../core/logger.js';
import type { Counter, Gauge } from '../../admin/metrics.js';
import { serviceKey, type ExportRecord } from '../../model/catalog.js';
import type { ExportVerdict, FederationSettings, SyncDown, SyncUp } from '../../proto/gen/fedgate.js';
import { toGrpcError } from '../../proto/grpc-errors.js';
import { GrpcStatus, type ServerDuplexStream } from '../../proto/grpc-transport.js';
import type { PeerVerifier } from '../../pki/peer-verifier.js';
import type { Store } from '../../store/store.js';
import type { CatalogState, Touched } from '../catalog-state.js';
import { CatalogWriter } from './catalog-writer.js';
import type { GatewaySession } from './gateway-session.js';
import { SessionRegistry } from './session-registry.js';
import { authenticateGateway } from './sync-auth.js';
import { SyncStream } from './sync-stream.js';

export interface SyncServiceOptions {
  catalog: CatalogState;
  store: Store;
  verifier: PeerVerifier;
  log: Logger;
  replicaId: string;
  leaseTtlMs: number;
  maxExportsPerCluster: number;
  /** False while the controller cannot serve a consistent catalog (store epoch being rebuilt). */
  serving: () => boolean;
  metrics: { sessions: Gauge<string>; rejected: Counter<'reason'> };
  /** Federation-wide settings sent first on every stream. */
  settings: Omit<FederationSettings, 'controllerAddresses'>;
  /** API addresses of the live controller replicas, this one first; sent with the settings. */
  controllerAddresses: () => string[];
}

/**
 * The Sync RPC: one bidirectional stream per gateway instance. Up: the gateway's exports, ACK/NACK
 * of each revision, bundle updates. Down: a snapshot or a delta from the revision the gateway holds.
 * Its parts: authentication (sync-auth), one SyncStream per call (protocol, greeting, status), the
 * CatalogWriter (what streams write to the store), and this service, which holds the sessions and
 * tells them what changed.
 */
export class SyncService {
  private readonly sessions: SessionRegistry;
  private readonly writer: CatalogWriter;

  constructor(private readonly options: SyncServiceOptions) {
    this.sessions = new SessionRegistry(options.metrics.sessions);
    this.writer = new CatalogWriter({
      catalog: options.catalog,
      store: options.store,
      replicaId: options.replicaId,
      leaseTtlMs: options.leaseTtlMs,
      maxExportsPerCluster: options.maxExportsPerCluster,
      serving: options.serving,
      rejected: options.metrics.rejected,
    });
  }

  /** This replica's open streams, by cluster, then by instance. */
  get connected(): ReadonlyMap<string, ReadonlyMap<string, GatewaySession>> {
    return this.sessions.byCluster;
  }

  handle(call: ServerDuplexStream<SyncUp, SyncDown>): void {
    let cluster: string;
    try {
      cluster = authenticateGateway(call, this.options.verifier, this.options.catalog);
    } catch (error) {
      this.options.metrics.rejected.inc({ reason: 'unauthenticated' });
      this.options.log.warn({ peer: call.getPeer(), err: errorMessage(error) }, 'sync stream refused');
      call.emit('error', toGrpcError(error));
      return;
    }
    new SyncStream(call, cluster, {
      catalog: this.options.catalog,
      store: this.options.store,
      writer: this.writer,
      sessions: this.sessions,
      replicaId: this.options.replicaId,
      leaseTtlMs: this.options.leaseTtlMs,
      rejected: this.options.metrics.rejected,
      settings: () => this.settingsMessage(),
      sendCurrentVerdicts: (session) => this.sendCurrentVerdicts(session),
      log: this.options.log,
    });
  }

  /** Pushes a revision the catalog just applied to every session. */
  broadcast(revision: number, touched: Touched): void {
    for (const session of this.sessions.all()) session.changed(revision, touched);
    if (touched.services.size > 0) this.sendVerdicts(touched);
    for (const name of touched.clusters) {
      if (this.options.catalog.clusters.has(name)) continue;
      for (const session of this.sessions.of(name)) session.close(GrpcStatus.PERMISSION_DENIED, `cluster "${name}" was removed from the federation`);
    }
  }

  private settingsMessage(): FederationSettings {
    return { ...this.options.settings, controllerAddresses: this.options.controllerAddresses() };
  }

  /** The set of live controller replicas changed: every gateway learns where it can fail over to. */
  replicasChanged(): void {
    const settings = this.settingsMessage();
    for (const session of this.sessions.all()) session.sendSettings(settings);
  }

  /** The store lost its state and was rebuilt: every gateway gets a snapshot and re-sends its exports. */
  resyncAll(reason: string): void {
    for (const session of this.sessions.all()) {
      session.resync();
      session.requestExports(reason);
    }
  }

  /** The store is reachable again: gateways whose export writes failed send them again. */
  storeRecovered(): void {
    for (const session of this.sessions.all()) {
      if (session.exportsDirty) {
        session.exportsDirty = false;
        session.requestExports('the store was unavailable when your exports arrived');
      }
    }
  }

  closeAll(): void {
    for (const session of this.sessions.all()) session.close(GrpcStatus.UNAVAILABLE, 'controller shutting down');
    this.sessions.clear();
  }

  /**
   * Tells exporting gateways whether their exports of the touched services are accepted or in
   * conflict. Only verdicts that changed are sent: a change to one service must not cost every
   * exporter a message listing all its exports.
   */
  private sendVerdicts(touched: Touched): void {
    const { catalog } = this.options;
    for (const key of touched.services) {
      const byCluster = catalog.exports.get(key);
      for (const cluster of new Set([...(byCluster?.keys() ?? []), ...touched.exporters])) {
        const sessions = this.sessions.of(cluster);
        if (sessions.length === 0) continue;
        const record = byCluster?.get(cluster);
        if (!record) {
          for (const session of sessions) session.forgetVerdict(key);
          continue;
        }
        const verdict = this.verdictOf(record);
        for (const session of sessions) session.queueVerdict(key, verdict);
      }
    }
    for (const session of this.sessions.all()) session.flushVerdicts();
  }

  /**
   * A new stream learns the verdicts on its cluster's exports as they stand: when they are already
   * stored (another instance of the cluster, or this one before a reconnect) its Hello changes
   * nothing, so no revision would bring them.
   */
  private sendCurrentVerdicts(session: GatewaySession): void {
    for (const record of this.options.catalog.exportsOf(session.cluster)) session.queueVerdict(serviceKey(record.namespace, record.name), this.verdictOf(record));
    session.flushVerdicts();
  }

  private verdictOf(record: ExportRecord): ExportVerdict {
    const conflict = this.options.catalog.mergedService(serviceKey(record.namespace, record.name))?.conflicts.find((c) => c.cluster === record.cluster);
    return { namespace: record.namespace, name: record.name, accepted: !conflict, reason: conflict?.reason ?? '' };
  }
}
