import { exportKey, serviceKey, splitExportKey, type BundleRecord, type Change, type ClusterRecord, type ExportRecord, type PolicyRecord } from '../model/catalog.js';
import { mergeExports, viewForConsumer, type ClustersetServiceView } from '../model/clusterset.js';
import { encodeService } from '../proto/sync-codec.js';
import type { StoreSnapshot } from '../store/store.js';

/** Resource keys a batch of changes touched; what each gateway session must be told about. */
export class Touched {
  readonly clusters = new Set<string>();
  readonly services = new Set<string>();
  readonly bundles = new Set<string>();
  readonly policies = new Set<string>();
  /** Clusters whose own exports changed (their gateway gets fresh verdicts). */
  readonly exporters = new Set<string>();

  merge(other: Touched): void {
    for (const k of other.clusters) this.clusters.add(k);
    for (const k of other.services) this.services.add(k);
    for (const k of other.bundles) this.bundles.add(k);
    for (const k of other.policies) this.policies.add(k);
    for (const k of other.exporters) this.exporters.add(k);
  }

  get empty(): boolean {
    return this.clusters.size + this.services.size + this.bundles.size + this.policies.size === 0;
  }

  clear(): void {
    this.clusters.clear();
    this.services.clear();
    this.bundles.clear();
    this.policies.clear();
    this.exporters.clear();
  }
}

/**
 * The controller's in-memory copy of the catalog, kept current from the store's change stream.
 * Every replica holds one, which is what lets replicas stay stateless towards Redis and serve their
 * gateways without reading the store per request. It also is the last known good state a replica
 * writes back if Redis loses everything.
 */
export class CatalogState {
  epoch = '';
  revision = 0;
  policyRevision = 0;
  readonly clusters = new Map<string, ClusterRecord>();
  /** service key → cluster → export */
  readonly exports = new Map<string, Map<string, ExportRecord>>();
  readonly bundles = new Map<string, BundleRecord>();
  readonly policies = new Map<string, PolicyRecord>();
  private readonly merged = new Map<string, ClustersetServiceView | undefined>();
  /** Encoded merged views, shared by every session that sees the service unfiltered. */
  private readonly encoded = new Map<string, Uint8Array>();

  load(snapshot: StoreSnapshot): void {
    this.epoch = snapshot.epoch;
    this.revision = snapshot.revision;
    this.clusters.clear();
    this.exports.clear();
    this.bundles.clear();
    this.policies.clear();
    this.merged.clear();
    this.encoded.clear();
    for (const c of snapshot.clusters) this.clusters.set(c.name, c);
    for (const e of snapshot.exports) this.putExport(e);
    for (const b of snapshot.bundles) this.bundles.set(b.trustDomain, b);
    for (const p of snapshot.policies) this.policies.set(p.key, p);
    this.policyRevision = Math.max(0, ...snapshot.policies.map((p) => p.revision));
  }

  /** Applies the changes of one revision; returns what they touched. */
  apply(revision: number, changes: readonly Change[]): Touched {
    const touched = new Touched();
    for (const change of changes) {
      switch (change.type) {
        case 'cluster':
          if (change.op === 'put') this.clusters.set(change.key, change.value as ClusterRecord);
          else this.clusters.delete(change.key);
          touched.clusters.add(change.key);
          break;
        case 'export': {
          const { cluster, namespace, name } = splitExportKey(change.key);
          const key = serviceKey(namespace, name);
          if (change.op === 'put') this.putExport(change.value as ExportRecord);
          else this.deleteExport(key, cluster);
          this.merged.delete(key);
          this.encoded.delete(key);
          touched.services.add(key);
          touched.exporters.add(cluster);
          break;
        }
        case 'bundle':
          if (change.op === 'put') this.bundles.set(change.key, change.value as BundleRecord);
          else this.bundles.delete(change.key);
          touched.bundles.add(change.key);
          break;
        case 'policy':
          if (change.op === 'put') this.policies.set(change.key, change.value as PolicyRecord);
          else this.policies.delete(change.key);
          touched.policies.add(change.key);
          this.policyRevision = Math.max(this.policyRevision, revision);
          break;
      }
    }
    this.revision = Math.max(this.revision, revision);
    return touched;
  }

  /** Every key, as if everything changed: what a snapshot sends. */
  everything(): Touched {
    const touched = new Touched();
    for (const k of this.clusters.keys()) touched.clusters.add(k);
    for (const k of this.exports.keys()) touched.services.add(k);
    for (const k of this.bundles.keys()) touched.bundles.add(k);
    for (const k of this.policies.keys()) touched.policies.add(k);
    return touched;
  }

  /** Keys touched by a list of stored changes (a resuming gateway's gap). */
  touchedBy(changes: readonly Change[]): Touched {
    const touched = new Touched();
    for (const change of changes) {
      if (change.type === 'cluster') touched.clusters.add(change.key);
      else if (change.type === 'bundle') touched.bundles.add(change.key);
      else if (change.type === 'policy') touched.policies.add(change.key);
      else {
        const { namespace, name } = splitExportKey(change.key);
        touched.services.add(serviceKey(namespace, name));
      }
    }
    return touched;
  }

  mergedService(key: string): ClustersetServiceView | undefined {
    if (!this.merged.has(key)) {
      const byCluster = this.exports.get(key);
      this.merged.set(key, byCluster ? mergeExports([...byCluster.values()]) : undefined);
    }
    return this.merged.get(key);
  }

  /** The protobuf encoding of the service as `consumer` sees it; encoded once for all unfiltered consumers. */
  encodedServiceFor(key: string, consumer: string): Uint8Array | undefined {
    const view = this.serviceFor(key, consumer);
    if (!view) return undefined;
    if (view !== this.mergedService(key)) return encodeService(view);
    let bytes = this.encoded.get(key);
    if (!bytes) {
      bytes = encodeService(view);
      this.encoded.set(key, bytes);
    }
    return bytes;
  }

  /** The service as `consumer` may see it, or undefined when it may see none of it. */
  serviceFor(key: string, consumer: string): ClustersetServiceView | undefined {
    const merged = this.mergedService(key);
    if (!merged) return undefined;
    return viewForConsumer(merged, this.exports.get(key) ?? new Map(), consumer);
  }

  exportsOf(cluster: string): ExportRecord[] {
    const out: ExportRecord[] = [];
    for (const byCluster of this.exports.values()) {
      const record = byCluster.get(cluster);
      if (record) out.push(record);
    }
    return out;
  }

  /** The catalog as a store snapshot (for writing it back after a state loss). */
  toSnapshot(): StoreSnapshot {
    return {
      epoch: this.epoch,
      revision: this.revision,
      clusters: [...this.clusters.values()],
      exports: [...this.exports.values()].flatMap((m) => [...m.values()]),
      bundles: [...this.bundles.values()],
      policies: [...this.policies.values()],
    };
  }

  get isEmpty(): boolean {
    return this.clusters.size === 0 && this.exports.size === 0 && this.policies.size === 0;
  }

  private putExport(record: ExportRecord): void {
    const key = serviceKey(record.namespace, record.name);
    const byCluster = this.exports.get(key) ?? new Map<string, ExportRecord>();
    byCluster.set(record.cluster, record);
    this.exports.set(key, byCluster);
    this.merged.delete(key);
    this.encoded.delete(key);
  }

  private deleteExport(key: string, cluster: string): void {
    const byCluster = this.exports.get(key);
    if (!byCluster) return;
    byCluster.delete(cluster);
    if (byCluster.size === 0) this.exports.delete(key);
    this.merged.delete(key);
    this.encoded.delete(key);
  }
}

export { exportKey };
