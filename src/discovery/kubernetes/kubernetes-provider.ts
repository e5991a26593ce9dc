import { dirname } from 'node:path';
import type { BackoffOptions } from '../../core/backoff.js';
import type { Logger } from '../../core/logger.js';
import type { ClusterConfig } from '../../config/cluster-config.js';
import { exportKeyOf, type DiscoveryProvider, type DiscoveryState, type ExportStatus, type ImportedService, type LocalExport } from '../provider.js';
import { ExportStatusWriter, type StatusSubject } from './export-status-writer.js';
import { translateExport } from './export-translator.js';
import { KubeClient, loadKubeConfig } from './kube-client.js';
import { ENDPOINT_SLICES, MANAGED_BY, MANAGED_BY_LABEL, SERVICE_EXPORTS, SERVICE_IMPORTS, SERVICE_NAME_LABEL, SERVICES, objectKey, type KubeResource, type RawObject } from './kube-resources.js';
import { ResourceInformer, type InformerHandlers } from './resource-informer.js';
import { ServiceImportReconciler } from './service-import-reconciler.js';

export interface KubernetesProviderOptions {
  /** Informer events within this window are applied together (one recompute, one onChange). */
  batchMs?: number;
  /** Restart back-off of a failed list/watch. */
  backoff?: BackoffOptions;
  /** Back-off of a failed status or ServiceImport write, per object. */
  writeBackoff?: BackoffOptions;
  /** Watches are ended by the API server after this long and resumed (default 5–10 min). */
  watchTimeoutSeconds?: number;
  /** Concurrent writes to the API server, per kind of write. */
  writeConcurrency?: number;
  /**
   * Written as `spec.ips` of every ServiceImport: the ClusterIP of the Service in front of the
   * gateway's outbound listener, for the CoreDNS multicluster plugin. Default: the
   * comma-separated `FEDGATE_CLUSTERSET_IPS`, else none (see ServiceImportReconciler).
   */
  clustersetIps?: string[];
  /** Clock for condition transition times. */
  now?: () => Date;
  env?: NodeJS.ProcessEnv;
}

interface ExportEntry {
  uid: string | undefined;
  /** What is published: the current translation, or the last good one after a bad edit. */
  export: LocalExport | undefined;
  invalid?: { reason: string; message: string };
  warnings: string;
}

/** The objects of one run of the informers; a restart starts from an empty view and relists. */
class ClusterView {
  readonly serviceExports = new Map<string, RawObject>();
  readonly services = new Map<string, RawObject>();
  /** Service key → slice key → EndpointSlice. */
  readonly slices = new Map<string, Map<string, RawObject>>();
  /** Slice key → the service key it was filed under (its label can change). */
  readonly sliceOwner = new Map<string, string>();
}

function sameExport(a: LocalExport | undefined, b: LocalExport | undefined): boolean {
  if (a === b) return true;
  if (!a || !b) return false;
  return JSON.stringify(a) === JSON.stringify(b);
}

/**
 * Exports from the Kubernetes Multi-Cluster Services API: a Service is exported while a
 * ServiceExport of the same namespace/name exists. Three informers (ServiceExport, Service,
 * EndpointSlice; per namespace when `namespaces` is set) feed one view; each change recomputes the
 * exports it touches, and listeners hear only of real changes. Nothing is published before all
 * three have listed once, so the state is never a half-listed view.
 *
 * Writes go back to the API server: the ServiceExport status conditions (`Valid`, `Ready`,
 * `Conflict`, from the translation and the controller's verdicts) and one ServiceImport per
 * clusterset service of the catalog (`reportImports`).
 *
 * A bad edit (an unparsable consumers annotation, a malformed Service) is reported as `Valid=False`
 * and the last good version of that export stays in force; a service that truly stopped being
 * exportable (ServiceExport or Service deleted, no TCP port left) is withdrawn.
 */
export class KubernetesDiscoveryProvider implements DiscoveryProvider {
  readonly name = 'kubernetes';
  private state: DiscoveryState;
  private readonly listeners = new Set<(state: DiscoveryState) => void>();
  private readonly entries = new Map<string, ExportEntry>();
  private readonly verdicts = new Map<string, ExportStatus>();
  private readonly dirty = new Set<string>();
  private view: ClusterView | undefined;
  private syncedValue = false;
  /** Set while the first state is computed: one summary line instead of a line per export. */
  private quiet = false;
  private flushTimer: NodeJS.Timeout | undefined;
  private statusWriter: ExportStatusWriter | undefined;
  private imports: ServiceImportReconciler | undefined;
  private lastImports: readonly ImportedService[] | undefined;
  private readonly syncWaiters = new Set<() => void>();
  private readonly settings: { kubeconfig?: string; context?: string; namespaces: readonly string[] };

  constructor(
    private readonly cluster: ClusterConfig,
    private readonly log: Logger,
    private readonly options: KubernetesProviderOptions = {},
  ) {
    this.settings = cluster.spec.discovery.kubernetes ?? { namespaces: [] };
    this.state = { exports: new Map(), source: 'kubernetes' };
  }

  current(): DiscoveryState {
    return this.state;
  }

  onChange(listener: (state: DiscoveryState) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** True once every informer has listed and the first state is published. */
  get synced(): boolean {
    return this.syncedValue;
  }

  /** Resolves once the first complete state is published (a gateway can hold its first export report until then). */
  whenSynced(): Promise<void> {
    if (this.syncedValue) return Promise.resolve();
    return new Promise((resolve) => this.syncWaiters.add(resolve));
  }

  reportStatus(statuses: readonly ExportStatus[]): void {
    for (const status of statuses) {
      const key = exportKeyOf(status);
      // Only exports we publish get a verdict; one for a withdrawn export is stale.
      if (!this.entries.get(key)?.export) continue;
      this.verdicts.set(key, { ...status });
      this.statusWriter?.enqueue(key);
    }
  }

  reportImports(imports: readonly ImportedService[]): void {
    this.lastImports = imports.map((i) => ({ ...i, ports: [...i.ports], clusters: [...i.clusters] }));
    this.imports?.report(this.lastImports);
  }

  async start(signal: AbortSignal): Promise<void> {
    const env = this.options.env ?? process.env;
    const client = new KubeClient(loadKubeConfig(this.settings, dirname(this.cluster.file), env));
    const source = `kubernetes ${client.server}`;
    this.state = { exports: this.state.exports, source };
    const namespaces: Array<string | undefined> = this.settings.namespaces.length > 0 ? [...this.settings.namespaces] : [undefined];
    const log = this.log;
    log.info({ server: client.server, namespaces: this.settings.namespaces.length > 0 ? this.settings.namespaces : 'all' }, 'watching ServiceExports, Services and EndpointSlices');

    const view = new ClusterView();
    this.view = view;
    this.syncedValue = false;
    const clustersetIps = this.options.clustersetIps ?? (env.FEDGATE_CLUSTERSET_IPS ?? '').split(',').map((s) => s.trim()).filter((s) => s !== '');
    const statusWriter = new ExportStatusWriter({ client, log, source: (key) => this.standing(key), now: this.options.now, concurrency: this.options.writeConcurrency, backoff: this.options.writeBackoff });
    const imports = new ServiceImportReconciler({
      client,
      log,
      namespaces: this.settings.namespaces.length > 0 ? this.settings.namespaces : undefined,
      clustersetIps,
      concurrency: this.options.writeConcurrency,
      backoff: this.options.writeBackoff,
    });
    this.statusWriter = statusWriter;
    this.imports = imports;
    // Both reset their per-run state synchronously, before any informer delivers.
    const writers = [statusWriter.run(signal), imports.run(signal)];
    if (this.lastImports) imports.report(this.lastImports);

    const informers: Array<{ informer: ResourceInformer; feedsExports: boolean }> = [];
    const add = (resource: KubeResource, handlers: InformerHandlers, feedsExports: boolean, labelSelector?: string): void => {
      for (const namespace of namespaces) {
        const informer = new ResourceInformer(
          { client, resource, namespace, labelSelector, log, backoff: this.options.backoff, watchTimeoutSeconds: this.options.watchTimeoutSeconds },
          handlers,
        );
        informers.push({ informer, feedsExports });
      }
    };
    add(SERVICE_EXPORTS, { upsert: (o) => this.onServiceExport(view, o, true), remove: (o) => this.onServiceExport(view, o, false) }, true);
    add(SERVICES, { upsert: (o) => this.onService(view, o, true), remove: (o) => this.onService(view, o, false) }, true);
    // Only slices that belong to a Service (the label the EndpointSlice controller sets).
    add(ENDPOINT_SLICES, { upsert: (o) => this.onSlice(view, o, true), remove: (o) => this.onSlice(view, o, false) }, true, SERVICE_NAME_LABEL);
    add(SERVICE_IMPORTS, imports.handlers, false, `${MANAGED_BY_LABEL}=${MANAGED_BY}`);

    const onSynced = (): void => {
      if (this.view !== view) return;
      if (!this.syncedValue && informers.every((i) => !i.feedsExports || i.informer.synced)) this.firstSync(view);
      if (informers.every((i) => i.feedsExports || i.informer.synced)) imports.markSynced();
    };
    try {
      await Promise.all([...informers.map(({ informer }) => informer.run(signal, onSynced)), ...writers]);
    } finally {
      client.close();
      if (this.view === view) {
        this.view = undefined;
        clearTimeout(this.flushTimer);
        this.flushTimer = undefined;
        this.dirty.clear();
      }
    }
  }

  private firstSync(view: ClusterView): void {
    this.syncedValue = true;
    // Everything known before and everything listed now: exports gone while we were away go too.
    for (const key of [...this.entries.keys(), ...view.serviceExports.keys()]) this.dirty.add(key);
    this.quiet = true;
    try {
      this.flush();
    } finally {
      this.quiet = false;
    }
    this.log.info({ exports: this.state.exports.size, serviceExports: view.serviceExports.size, services: view.services.size }, 'Kubernetes discovery synced');
    for (const resolve of this.syncWaiters) resolve();
    this.syncWaiters.clear();
  }

  private markDirty(key: string): void {
    this.dirty.add(key);
    if (!this.syncedValue || this.flushTimer) return;
    this.flushTimer = setTimeout(() => this.flush(), this.options.batchMs ?? 10);
  }

  private onServiceExport(view: ClusterView, object: RawObject, present: boolean): void {
    const key = objectKey(object);
    if (present) view.serviceExports.set(key, object);
    else view.serviceExports.delete(key);
    this.statusWriter?.observed(key);
    this.markDirty(key);
  }

  private onService(view: ClusterView, object: RawObject, present: boolean): void {
    const key = objectKey(object);
    if (present) view.services.set(key, object);
    else view.services.delete(key);
    this.markDirty(key);
  }

  private onSlice(view: ClusterView, object: RawObject, present: boolean): void {
    const sliceKey = objectKey(object);
    const serviceName = object.metadata.labels?.[SERVICE_NAME_LABEL];
    const owner = present && typeof serviceName === 'string' && serviceName !== '' ? `${object.metadata.namespace ?? ''}/${serviceName}` : undefined;
    const previous = view.sliceOwner.get(sliceKey);
    if (previous !== undefined && previous !== owner) {
      const slices = view.slices.get(previous);
      slices?.delete(sliceKey);
      if (slices?.size === 0) view.slices.delete(previous);
      view.sliceOwner.delete(sliceKey);
      this.markDirty(previous);
    }
    if (owner === undefined) return;
    let slices = view.slices.get(owner);
    if (!slices) {
      slices = new Map();
      view.slices.set(owner, slices);
    }
    slices.set(sliceKey, object);
    view.sliceOwner.set(sliceKey, owner);
    this.markDirty(owner);
  }

  /** Recomputes the dirty exports; publishes and notifies once if any of them changed. */
  private flush(): void {
    clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    const view = this.view;
    if (!view || !this.syncedValue) return;
    let changed = false;
    for (const key of this.dirty) if (this.recompute(view, key)) changed = true;
    this.dirty.clear();
    if (!changed) return;
    const exports = new Map<string, LocalExport>();
    for (const [key, entry] of this.entries) if (entry.export) exports.set(key, entry.export);
    this.state = { exports, source: this.state.source };
    for (const listener of this.listeners) {
      try {
        listener(this.state);
      } catch (error) {
        this.log.error({ err: (error as Error).message }, 'a discovery listener failed');
      }
    }
  }

  /** True when the published export of `key` changed. */
  private recompute(view: ClusterView, key: string): boolean {
    const serviceExport = view.serviceExports.get(key);
    const before = this.entries.get(key);
    if (!serviceExport) {
      if (!before) return false;
      this.entries.delete(key);
      this.verdicts.delete(key);
      if (before.export) this.log.info({ service: key }, 'export withdrawn: ServiceExport deleted');
      return before.export !== undefined;
    }
    const translation = translateExport({ serviceExport, service: view.services.get(key), slices: view.slices.get(key)?.values() ?? [], cluster: this.cluster.metadata.name });
    const uid = serviceExport.metadata.uid;
    let entry: ExportEntry;
    if (translation.kind === 'exported') {
      entry = { uid, export: translation.export, warnings: translation.warnings.join('; ') };
      if (entry.warnings !== '' && entry.warnings !== before?.warnings) this.log.warn({ service: key, warnings: translation.warnings }, 'ServiceExport exported with parts left out');
      if (before?.invalid) this.log.info({ service: key }, 'ServiceExport valid again');
    } else {
      const keep = translation.keepPrevious && before?.export && before.uid === uid ? before.export : undefined;
      entry = { uid, export: keep, invalid: { reason: translation.reason, message: translation.message }, warnings: '' };
      if (before?.invalid?.message !== translation.message) {
        this.log.warn({ service: key, reason: translation.reason, err: translation.message, keptLastGood: keep !== undefined }, keep ? 'ServiceExport edit refused; the last good export stays in force' : 'ServiceExport not exported');
      }
    }
    this.entries.set(key, entry);
    // A withdrawn export's verdict is stale: a later re-export waits for a fresh one.
    if (!entry.export) this.verdicts.delete(key);
    this.statusWriter?.enqueue(key);
    const changed = !sameExport(before?.export, entry.export);
    if (changed && !this.quiet) {
      const e = entry.export;
      if (e && !before?.export) this.log.info({ service: key, ports: e.ports.map((p) => `${p.name}:${p.port}/${p.protocol}`), ready: e.endpoints.filter((x) => x.ready).length, total: e.endpoints.length }, 'export added');
      else if (!e) this.log.info({ service: key }, 'export withdrawn');
    }
    return changed;
  }

  private standing(key: string): StatusSubject | undefined {
    const object = this.view?.serviceExports.get(key);
    const entry = this.entries.get(key);
    if (!object || !entry || !this.syncedValue) return undefined;
    return {
      object,
      standing: {
        namespace: object.metadata.namespace ?? 'default',
        name: object.metadata.name,
        generation: typeof object.metadata.generation === 'number' ? object.metadata.generation : undefined,
        invalid: entry.invalid,
        exported: entry.export !== undefined,
        verdict: this.verdicts.get(key),
      },
    };
  }
}
