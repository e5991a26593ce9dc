import { ErrorCodes, errorMessage, InputError, StoreError } from '../../core/errors.js';
import type { Logger } from '../../core/logger.js';
import type { Counter } from '../../admin/metrics.js';
import { serviceKey, type ClusterRecord, type ExportRecord } from '../../model/catalog.js';
import { bundleFromProto, exportFromProto } from '../../proto/convert.js';
import type { ExportSpec, ExportVerdict, Hello, TrustBundle as BundleMessage } from '../../proto/gen/fedgate.js';
import { TrustBundle } from '../../pki/trust-bundle.js';
import type { Store } from '../../store/store.js';
import type { CatalogState } from '../catalog-state.js';
import type { GatewaySession } from './gateway-session.js';

export interface CatalogWriterOptions {
  catalog: CatalogState;
  store: Store;
  replicaId: string;
  leaseTtlMs: number;
  maxExportsPerCluster: number;
  /** False while the controller cannot serve a consistent catalog (store epoch being rebuilt). */
  serving: () => boolean;
  rejected: Counter<'reason'>;
}

/**
 * What a gateway's Sync stream writes, and what its greeting reads: its exports and bundle into
 * the store (checked, never more than the limit), its cluster's lease and state, and where its
 * catalog resumes. Knows nothing of other streams.
 */
export class CatalogWriter {
  constructor(private readonly options: CatalogWriterOptions) {}

  /** What Hello needs from the store: the catalog to send, the cluster's lease and state, its exports. */
  async greet(session: GatewaySession, hello: Hello, log: Logger): Promise<void> {
    const { catalog } = this.options;
    const cluster = session.cluster;
    if (hello.epoch !== '' && hello.epoch === catalog.epoch) {
      session.acknowledgeHeld(hello.revision, hello.policyRevision, hello.policyRefusal, hello.policyRefusalRevision);
    }
    // What the gateway must be told: a delta when it holds this epoch and the log still reaches
    // its revision, else a snapshot.
    if (!this.options.serving()) {
      session.startWithSnapshot();
    } else if (hello.epoch !== '' && hello.epoch === catalog.epoch) {
      if (hello.revision >= catalog.revision) {
        // The gateway is level with (or, having come from a replica further along, ahead of) this
        // replica: nothing to send until this replica's catalog moves past its revision.
        session.resume(hello.revision, catalog.touchedBy([]));
      } else {
        const changes = await this.options.store.changesSince(hello.revision).catch(() => 'snapshot-required' as const);
        if (changes === 'snapshot-required') session.startWithSnapshot();
        else session.resume(hello.revision, catalog.touchedBy(changes.filter((c) => c.revision <= catalog.revision)));
      }
    } else {
      session.startWithSnapshot();
    }

    await this.renewLease(cluster, log);
    const record = catalog.clusters.get(cluster) as ClusterRecord;
    if (record.state === 'unreachable') {
      await this.options.store
        .setClusterState(cluster, 'active', { by: this.options.replicaId, reason: 'gateway reconnected', at: Date.now() })
        .catch((error: unknown) => log.warn({ err: errorMessage(error) }, 'could not mark cluster active'));
    }
    await this.writeExports(session, hello.exports, [], true, log);
  }

  async renewLease(cluster: string, log: Logger): Promise<void> {
    try {
      await this.options.store.renewLease(cluster, this.options.replicaId, Date.now() + this.options.leaseTtlMs);
    } catch (error) {
      log.debug({ err: errorMessage(error) }, 'lease renewal failed');
    }
  }

  /**
   * Exports belong to the cluster, not to an instance: every instance sends its full export set on
   * Hello (and after ResendExports) and replaces the cluster's set with it. The instances of one
   * cluster must therefore share their discovery configuration, or each would replace the others'
   * exports with its own.
   */
  async writeExports(session: GatewaySession, upserts: ExportSpec[], deletes: string[], full: boolean, log: Logger): Promise<void> {
    const { catalog, store } = this.options;
    const cluster = session.cluster;
    const now = Date.now();
    const records: ExportRecord[] = [];
    const invalid: ExportVerdict[] = [];
    upserts.forEach((spec, index) => {
      try {
        const record = exportFromProto(spec, cluster, now, `exports[${index}]`);
        // An export keeps its seniority (MCS conflict rule) even if the gateway forgot when it began.
        const existing = catalog.exports.get(serviceKey(record.namespace, record.name))?.get(cluster);
        if (existing && spec.createdAtMs === 0) record.createdAt = existing.createdAt;
        records.push(record);
      } catch (error) {
        invalid.push({ namespace: spec.namespace, name: spec.name, accepted: false, reason: error instanceof InputError ? error.message : errorMessage(error) });
      }
    });
    const resulting = full ? records.length : new Set([...catalog.exportsOf(cluster).map((e) => serviceKey(e.namespace, e.name)), ...records.map((r) => serviceKey(r.namespace, r.name))].filter((k) => !deletes.includes(k))).size;
    if (resulting > this.options.maxExportsPerCluster) {
      this.options.rejected.inc({ reason: 'too-many-exports' });
      session.reject(`cluster ${cluster} would export ${resulting} services; the limit is ${this.options.maxExportsPerCluster} (spec.controller.maxExportsPerCluster). The previous exports stay in force.`);
      return;
    }
    if (invalid.length > 0) session.sendVerdicts(invalid);
    try {
      await store.writeExports(cluster, { upserts: records, deletes, replace: full });
    } catch (error) {
      if (error instanceof StoreError && (error.code === ErrorCodes.STORE_UNAVAILABLE || error.code === ErrorCodes.STORE_EPOCH_CHANGED)) {
        session.exportsDirty = true;
        log.warn({ err: errorMessage(error) }, 'store unavailable; the gateway will be asked to re-send its exports');
        return;
      }
      throw error;
    }
  }

  /** A gateway publishes its own trust domain's bundle (a CA rotation), never another's. */
  async updateBundle(session: GatewaySession, bundle: BundleMessage, log: Logger): Promise<void> {
    const record = this.options.catalog.clusters.get(session.cluster);
    if (!record || bundle.trustDomain !== record.trustDomain) {
      session.reject(`the gateway of ${session.cluster} may only publish the bundle of ${record?.trustDomain ?? 'its own trust domain'}, not "${bundle.trustDomain}"`);
      return;
    }
    try {
      TrustBundle.fromSpiffeJson(bundle.trustDomain, bundle.spiffeJson).withSequence(bundle.sequence);
    } catch (error) {
      session.reject(`bundle rejected: ${errorMessage(error)}`);
      return;
    }
    const result = await this.options.store.putBundle(bundleFromProto(bundle));
    if ('stale' in result) {
      if (bundle.sequence < result.current) session.reject(`bundle sequence ${bundle.sequence} is older than the stored ${result.current}`);
      return;
    }
    log.info({ trustDomain: bundle.trustDomain, sequence: bundle.sequence, revision: result.revision }, 'trust bundle updated');
  }
}
