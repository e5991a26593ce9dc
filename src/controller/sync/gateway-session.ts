import type { Logger } from '../../core/logger.js';
import { bundleToProto, clusterToProto, policyToProto } from '../../proto/convert.js';
import type { CatalogUpdate, ExportVerdict, SyncDown } from '../../proto/gen/fedgate.js';
import type { OutgoingSyncDown } from '../../proto/sync-codec.js';
import type { ServerDuplexStream } from '../../proto/grpc-transport.js';
import type { SyncUp } from '../../proto/gen/fedgate.js';
import { Touched, type CatalogState } from '../catalog-state.js';

/**
 * One gateway instance's Sync stream, seen from the controller. Updates are never queued as messages:
 * the session remembers which keys changed since the last update it sent and, when the stream can
 * take more, sends their current values in one delta. A slow gateway therefore gets fewer, larger
 * updates instead of an ever-growing backlog, and no change is lost or sent twice.
 */
export class GatewaySession {
  /** The revision the gateway holds once it has applied everything sent. */
  sentRevision = 0;
  sentEpoch = '';
  ackedRevision = 0;
  ackedPolicyRevision = 0;
  lastNack = '';
  lastNackRevision = 0;
  readonly connectedAt = Date.now();
  lastSeen = Date.now();
  /** Export writes failed (store unavailable): ask the gateway to re-send once the store is back. */
  exportsDirty = false;
  private readonly pending = new Touched();
  private snapshotPending = false;
  /**
   * Until the session knows what the gateway holds (resume or snapshot), changes only accumulate:
   * a delta sent before that would be based on a revision the gateway never had.
   */
  private started = false;
  private blocked = false;
  private closed = false;
  private readonly verdicts = new Map<string, string>();
  private pendingVerdicts: ExportVerdict[] = [];

  constructor(
    readonly cluster: string,
    /** Hello.instance: which gateway process of the cluster; '' for a gateway that predates instances. */
    readonly instance: string,
    /** Hello.version */
    readonly version: string,
    private readonly call: ServerDuplexStream<SyncUp, SyncDown>,
    private readonly catalog: CatalogState,
    private readonly log: Logger,
  ) {
    call.on('drain', () => {
      this.blocked = false;
      this.flush();
    });
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Start from a snapshot (new gateway, other epoch, or a gap the change log cannot fill). */
  startWithSnapshot(): void {
    this.started = true;
    this.snapshotPending = true;
    this.flush();
  }

  /** Resume: the gateway holds `revision`; send it the keys touched since then. */
  resume(revision: number, touched: Touched): void {
    this.started = true;
    this.sentRevision = revision;
    this.sentEpoch = this.catalog.epoch;
    this.pending.merge(touched);
    this.flush();
  }

  /** Called after the catalog applied a revision. */
  changed(revision: number, touched: Touched): void {
    if (this.closed || (this.started && revision <= this.sentRevision)) return;
    this.pending.merge(touched);
    this.flush();
  }

  /** After a store epoch change: everything again, under the new epoch. */
  resync(): void {
    this.pending.clear();
    this.snapshotPending = true;
    this.flush();
  }

  requestExports(reason: string): void {
    this.send({ msg: { $case: 'resend', value: { reason } } });
  }

  /**
   * The gateway's greeting told what it holds (same epoch as this catalog): that is its ACK until
   * it acknowledges something newer. Without this, a gateway that reconnects level with the
   * catalog is sent nothing, ACKs nothing, and status shows it at revision 0 until a change.
   */
  acknowledgeHeld(revision: number, policyRevision: number, policyRefusal: string, policyRefusalRevision: number): void {
    this.ackedRevision = Math.max(this.ackedRevision, revision);
    this.ackedPolicyRevision = Math.max(this.ackedPolicyRevision, policyRevision);
    if (policyRefusal !== '') {
      this.lastNack = `policy: ${policyRefusal}`;
      this.lastNackRevision = policyRefusalRevision;
    }
  }

  sendSettings(settings: { federation: string; defaultsJson: string; controllerAddresses: string[] }): void {
    this.send({ msg: { $case: 'settings', value: settings } });
  }

  reject(reason: string): void {
    this.send({ msg: { $case: 'rejected', value: { reason } } });
  }

  sendVerdicts(verdicts: ExportVerdict[]): void {
    this.send({ msg: { $case: 'verdicts', value: { exports: verdicts } } });
  }

  /** Queues a verdict on one of this gateway's exports, unless the gateway already has it. */
  queueVerdict(key: string, verdict: ExportVerdict): void {
    const fingerprint = `${verdict.accepted}|${verdict.reason}`;
    if (this.verdicts.get(key) === fingerprint) return;
    this.verdicts.set(key, fingerprint);
    this.pendingVerdicts.push(verdict);
  }

  forgetVerdict(key: string): void {
    this.verdicts.delete(key);
  }

  flushVerdicts(): void {
    if (this.pendingVerdicts.length === 0) return;
    const verdicts = this.pendingVerdicts;
    this.pendingVerdicts = [];
    this.sendVerdicts(verdicts);
  }

  close(code: number, details: string): void {
    if (this.closed) return;
    this.closed = true;
    this.call.emit('error', Object.assign(new Error(details), { code, details }));
  }

  markClosed(): void {
    this.closed = true;
  }

  private flush(): void {
    if (this.closed || this.blocked || !this.started) return;
    let built: { update: CatalogUpdate; encodedServices: Uint8Array[] } | undefined;
    if (this.snapshotPending) {
      built = this.build(this.catalog.everything(), true);
      this.snapshotPending = false;
      this.pending.clear();
    } else if (!this.pending.empty && this.catalog.revision > this.sentRevision) {
      built = this.build(this.pending, false);
      this.pending.clear();
    }
    if (!built) return;
    this.sentRevision = built.update.revision;
    this.sentEpoch = built.update.epoch;
    this.send({ msg: { $case: 'update', value: built.update }, encodedServices: built.encodedServices });
  }

  private send(message: OutgoingSyncDown | SyncDown): void {
    if (this.closed) return;
    try {
      if (!this.call.write(message)) this.blocked = true;
    } catch (error) {
      this.log.debug({ err: (error as Error).message }, 'write to gateway failed');
      this.closed = true;
    }
  }

  private build(touched: Touched, snapshot: boolean): { update: CatalogUpdate; encodedServices: Uint8Array[] } {
    const catalog = this.catalog;
    const update: CatalogUpdate = {
      epoch: catalog.epoch,
      revision: catalog.revision,
      baseRevision: snapshot ? 0 : this.sentRevision,
      snapshot,
      clusters: [],
      removedClusters: [],
      services: [],
      removedServices: [],
      bundles: [],
      removedBundles: [],
      policies: [],
      removedPolicies: [],
      policyRevision: catalog.policyRevision,
    };
    for (const name of touched.clusters) {
      const record = catalog.clusters.get(name);
      if (record) update.clusters.push(clusterToProto(record));
      else if (!snapshot) update.removedClusters.push(name);
    }
    const encodedServices: Uint8Array[] = [];
    for (const key of touched.services) {
      const bytes = catalog.encodedServiceFor(key, this.cluster);
      if (bytes) encodedServices.push(bytes);
      else if (!snapshot) update.removedServices.push(key);
    }
    for (const td of touched.bundles) {
      const bundle = catalog.bundles.get(td);
      if (bundle) update.bundles.push(bundleToProto(bundle));
      else if (!snapshot) update.removedBundles.push(td);
    }
    for (const key of touched.policies) {
      const policy = catalog.policies.get(key);
      if (policy) update.policies.push(policyToProto(policy));
      else if (!snapshot) update.removedPolicies.push(key);
    }
    return { update, encodedServices };
  }
}
