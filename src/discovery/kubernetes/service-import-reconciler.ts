import type { BackoffOptions } from '../../core/backoff.js';
import type { Logger } from '../../core/logger.js';
import type { Protocol } from '../../model/catalog.js';
import type { ImportedService } from '../provider.js';
import { KubeApiError, type KubeClient } from './kube-client.js';
import { MANAGED_BY, MANAGED_BY_LABEL, SERVICE_IMPORTS, apiVersionOf, objectKey, type RawObject } from './kube-resources.js';
import type { InformerHandlers } from './resource-informer.js';
import { WorkQueue } from './work-queue.js';

export interface ServiceImportReconcilerOptions {
  client: KubeClient;
  log: Logger;
  /** Namespaces fedgate may write to; undefined: all. */
  namespaces?: readonly string[];
  /** Written as `spec.ips` (see the class comment); empty: left unset. */
  clustersetIps: readonly string[];
  concurrency?: number;
  backoff?: BackoffOptions;
}

interface ImportSpec {
  type: 'ClusterSetIP';
  ports: Array<{ name: string; port: number; protocol: 'TCP'; appProtocol?: string }>;
  ips?: string[];
}

interface ImportStatus {
  clusters: Array<{ cluster: string }>;
}

const APP_PROTOCOL: Record<Protocol, string | undefined> = { http: 'http', http2: 'kubernetes.io/h2c', grpc: 'grpc', tcp: undefined };

function canonical(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v !== null && typeof v === 'object' && !Array.isArray(v) ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) : v,
  );
}

function specOf(service: ImportedService, ips: readonly string[]): ImportSpec {
  return {
    type: 'ClusterSetIP',
    ports: [...service.ports]
      .sort((a, b) => a.port - b.port)
      .map((p) => {
        const appProtocol = APP_PROTOCOL[p.protocol];
        return { name: p.name, port: p.port, protocol: 'TCP', ...(appProtocol ? { appProtocol } : {}) };
      }),
    ...(ips.length > 0 ? { ips: [...ips] } : {}),
  };
}

function statusOf(service: ImportedService): ImportStatus {
  return { clusters: [...new Set(service.clusters)].sort().map((cluster) => ({ cluster })) };
}

function sameSpec(object: RawObject, spec: ImportSpec): boolean {
  const have = (object.spec ?? {}) as Partial<ImportSpec>;
  return canonical({ type: have.type, ports: have.ports ?? [], ips: have.ips ?? [] }) === canonical({ type: spec.type, ports: spec.ports, ips: spec.ips ?? [] });
}

function sameStatus(object: RawObject, status: ImportStatus): boolean {
  const have = (object.status ?? {}) as Partial<ImportStatus>;
  return canonical(have.clusters ?? []) === canonical(status.clusters);
}

/**
 * Keeps one `ServiceImport` (multicluster.x-k8s.io/v1alpha1) per clusterset service of the
 * catalog, in the service's namespace: `spec.type: ClusterSetIP`, the merged ports, and the
 * exporting clusters in `status.clusters`. It creates, updates and deletes to match exactly the
 * last reported set, and deletes only ServiceImports labelled `app.kubernetes.io/managed-by:
 * fedgate` (one it finds without the label is someone else's and is left alone).
 *
 * The DNS story, honestly: fedgate serves no DNS. A client reaches
 * `name.ns.svc.clusterset.local` through the local gateway's outbound listener, which routes
 * HTTP, h2c and gRPC by Host/:authority (and raw TCP through `spec.gateway.tcpImports`, one local
 * listener per imported port, since TCP carries no name). For in-cluster clients to resolve the
 * name, the cluster's DNS must answer it with the address of a Service in front of the gateway's
 * outbound listener (exposing the imported ports, each targeting the outbound port). Two ways:
 * - the CoreDNS `multicluster` plugin serves `clusterset.local` from ServiceImport `spec.ips`;
 *   give the provider that Service's ClusterIP (`clustersetIps`, or `FEDGATE_CLUSTERSET_IPS`)
 *   and it writes it to every ServiceImport;
 * - or a CoreDNS rewrite, with no ServiceImport involved:
 *   `rewrite name regex (.+)\.svc\.clusterset\.local fedgate-outbound.fedgate.svc.cluster.local answer auto`.
 * Without either, clients must address the outbound listener themselves (an HTTP proxy setting,
 * or the gateway address with the clusterset name as Host). The ServiceImports remain useful as
 * the Multi-Cluster Services view of what the cluster can reach (`kubectl get serviceimports`).
 */
export class ServiceImportReconciler {
  private desired: Map<string, ImportedService> | undefined;
  private existing = new Map<string, RawObject>();
  /** What was last written per key and is not yet seen back through the watch. */
  private readonly inFlight = new Map<string, string>();
  private readonly warned = new Set<string>();
  private synced = false;
  private queue: WorkQueue | undefined;

  constructor(private readonly options: ServiceImportReconcilerOptions) {}

  /** Fed by a ServiceImport informer selecting `app.kubernetes.io/managed-by=fedgate`. */
  readonly handlers: InformerHandlers = {
    upsert: (object) => this.observed(objectKey(object), object),
    remove: (object) => this.observed(objectKey(object), undefined),
  };

  /**
   * An event for a key ends its in-flight write, unless the write is still in progress: the
   * events of its own first steps (the create, before the status) must not make it write again.
   */
  private observed(key: string, object: RawObject | undefined): void {
    if (object) this.existing.set(key, object);
    else this.existing.delete(key);
    if (!this.queue?.isActive(key)) this.inFlight.delete(key);
    this.queue?.add(key);
  }

  inScope(namespace: string): boolean {
    return this.options.namespaces === undefined || this.options.namespaces.includes(namespace);
  }

  /** The catalog's clusterset services: the exact set of ServiceImports to keep. */
  report(imports: readonly ImportedService[]): void {
    const next = new Map<string, ImportedService>();
    for (const service of imports) if (this.inScope(service.namespace)) next.set(`${service.namespace}/${service.name}`, service);
    const keys = new Set([...(this.desired?.keys() ?? []), ...next.keys(), ...this.existing.keys()]);
    this.desired = next;
    for (const key of keys) this.queue?.add(key);
  }

  /** Called when the ServiceImport informer has listed: only then is a missing object really missing. */
  markSynced(): void {
    this.synced = true;
    for (const key of new Set([...(this.desired?.keys() ?? []), ...this.existing.keys()])) this.queue?.add(key);
  }

  /** Starts a fresh session (after a provider restart the informer relists into an empty cache). */
  async run(signal: AbortSignal): Promise<void> {
    this.existing = new Map();
    this.inFlight.clear();
    this.synced = false;
    const queue = new WorkQueue((key) => this.reconcile(key), { name: 'serviceimports', log: this.options.log, concurrency: this.options.concurrency, backoff: this.options.backoff });
    this.queue = queue;
    await new Promise<void>((resolve) => {
      if (signal.aborted) resolve();
      signal.addEventListener('abort', () => resolve(), { once: true });
    });
    queue.stop();
    if (this.queue === queue) this.queue = undefined;
  }

  private async reconcile(key: string): Promise<void> {
    // Before the first report, the catalog is unknown: deleting everything would be wrong.
    if (!this.desired || !this.synced) return;
    const { client, log } = this.options;
    const slash = key.indexOf('/');
    const namespace = key.slice(0, slash);
    const name = key.slice(slash + 1);
    const want = this.desired.get(key);
    const have = this.existing.get(key);
    if (!want) {
      if (!have || this.inFlight.get(key) === 'delete') return;
      this.inFlight.set(key, 'delete');
      try {
        await client.delete(SERVICE_IMPORTS, namespace, name, have.metadata.uid);
        log.info({ service: key }, 'ServiceImport deleted: the service left the catalog');
      } catch (error) {
        // 404: already gone; 409: the uid precondition failed, so it is a new object.
        if (error instanceof KubeApiError && (error.status === 404 || error.status === 409)) return;
        this.inFlight.delete(key);
        throw error;
      }
      return;
    }
    const spec = specOf(want, this.options.clustersetIps);
    const status = statusOf(want);
    if (have && sameSpec(have, spec) && sameStatus(have, status)) return;
    const signature = canonical({ spec, status });
    if (this.inFlight.get(key) === signature) return;
    this.inFlight.set(key, signature);
    try {
      let current = have;
      if (!current) {
        try {
          current = (await client.create(SERVICE_IMPORTS, namespace, {
            apiVersion: apiVersionOf(SERVICE_IMPORTS),
            kind: SERVICE_IMPORTS.kind,
            metadata: { name, namespace, labels: { [MANAGED_BY_LABEL]: MANAGED_BY } },
            spec,
          })) as RawObject;
          log.info({ service: key, clusters: want.clusters }, 'ServiceImport created');
        } catch (error) {
          if (error instanceof KubeApiError && (error.status === 409 || error.status === 404)) {
            // Left in flight: retried when this import changes, not on every catalog update.
            if (!this.warned.has(key)) {
              this.warned.add(key);
              log.warn(
                { service: key, err: error.message },
                error.status === 409 ? 'a ServiceImport not managed by fedgate already exists; leaving it alone' : 'cannot create the ServiceImport (does the namespace exist?)',
              );
            }
            return;
          }
          throw error;
        }
      } else if (!sameSpec(current, spec)) {
        current = (await client.mergePatch(SERVICE_IMPORTS, namespace, name, { spec: { ...spec, ips: spec.ips ?? null } })) as RawObject;
      }
      if (!sameStatus(current, status)) await client.mergePatch(SERVICE_IMPORTS, namespace, name, { status }, 'status');
      this.warned.delete(key);
    } catch (error) {
      this.inFlight.delete(key);
      if (error instanceof KubeApiError && error.status === 404) return;
      throw error;
    }
  }
}
