import { ADD, DELETE, ERROR, UPDATE, makeInformer, type KubernetesListObject, type KubernetesObject } from '@kubernetes/client-node';
import { Backoff, sleep, type BackoffOptions } from '../../core/backoff.js';
import { errorMessage } from '../../core/errors.js';
import type { Logger } from '../../core/logger.js';
import type { KubeClient } from './kube-client.js';
import { isRawObject, objectKey, resourcePath, type KubeResource, type RawObject } from './kube-resources.js';

/** What an operator should check, for the failures that are configuration rather than weather. */
function hintFor(error: unknown, resource: KubeResource): { hint?: string } {
  const e = error as { statusCode?: unknown; status?: unknown } | null;
  const status = typeof e?.statusCode === 'number' ? e.statusCode : typeof e?.status === 'number' ? e.status : undefined;
  if (status === 404 && resource.group !== '' && resource.group !== 'discovery.k8s.io') return { hint: `is the ${resource.kind} CRD (${resource.plural}.${resource.group}) installed?` };
  if (status === 401) return { hint: 'the API server refused the credentials of the kubeconfig' };
  if (status === 403) return { hint: `the gateway's service account may not list/watch ${resource.plural}; check its RBAC` };
  return {};
}

export interface InformerHandlers {
  upsert(object: RawObject): void;
  remove(object: RawObject): void;
}

export interface ResourceInformerOptions {
  client: KubeClient;
  resource: KubeResource;
  /** Undefined: every namespace. */
  namespace?: string;
  labelSelector?: string;
  log: Logger;
  backoff?: BackoffOptions;
  /** A watch is ended by the server after this long and resumed from its last version (default 5–10 min). */
  watchTimeoutSeconds?: number;
  /** A run that lasted this long counts as healthy, so the next failure starts back-off afresh. */
  healthyAfterMs?: number;
}

/**
 * One client-node informer (ListWatch: list, then watch from the list's resourceVersion), kept
 * alive. ListWatch resumes by itself when a watch ends cleanly, and relists after 410 Gone; on
 * any other error (list refused, connection reset, API server down) it reports and stops, so it
 * is restarted here with back-off. A restart resumes from the last resourceVersion seen, and a
 * failed relist leaves the previous objects in place: no event is lost and nothing good is erased.
 */
export class ResourceInformer {
  private syncedValue = false;

  constructor(
    private readonly options: ResourceInformerOptions,
    private readonly handlers: InformerHandlers,
  ) {}

  /** True once the first list has been delivered and the watch opened. */
  get synced(): boolean {
    return this.syncedValue;
  }

  async run(signal: AbortSignal, onSynced: () => void): Promise<void> {
    const { client, resource, namespace, labelSelector, log } = this.options;
    const timeoutSeconds = this.options.watchTimeoutSeconds ?? 300 + Math.floor(Math.random() * 300);
    // Query parameters in the path survive into the watch URL (client-node appends its own).
    // Bookmarks keep the resume point fresh on quiet resources, so a reconnect rarely meets 410.
    const path = `${resourcePath(resource, namespace)}?allowWatchBookmarks=true&timeoutSeconds=${timeoutSeconds}`;
    // Objects stay plain JSON (see KubeClient); client-node's typings call them KubernetesObject.
    const informer = makeInformer<KubernetesObject>(client.config, path, () => this.list() as Promise<KubernetesListObject<KubernetesObject>>, labelSelector);
    const deliver = (what: 'upsert' | 'remove', object: unknown): void => {
      if (signal.aborted || !isRawObject(object)) return;
      try {
        this.handlers[what](object);
      } catch (error) {
        log.error({ resource: resource.plural, object: objectKey(object), err: errorMessage(error) }, 'cannot handle a watch event; ignoring it');
      }
    };
    informer.on(ADD, (o) => deliver('upsert', o));
    informer.on(UPDATE, (o) => deliver('upsert', o));
    informer.on(DELETE, (o) => deliver('remove', o));
    let failure: ((error: unknown) => void) | undefined;
    informer.on(ERROR, (error) => failure?.(error));
    const aborted = new Promise<'aborted'>((resolve) => {
      if (signal.aborted) resolve('aborted');
      signal.addEventListener('abort', () => resolve('aborted'), { once: true });
    });
    const backoff = new Backoff({ initialMs: 250, maxMs: 30_000, ...this.options.backoff });
    const healthyAfterMs = this.options.healthyAfterMs ?? 30_000;
    try {
      while (!signal.aborted) {
        let failed = false;
        const failedWith = new Promise<{ error: unknown }>((resolve) => {
          failure = (error) => {
            failed = true;
            resolve({ error });
          };
        });
        const startedAt = Date.now();
        const started = await Promise.race([
          informer.start().then(
            () => 'started' as const,
            (error: unknown) => {
              failure?.(error);
              return 'failed' as const;
            },
          ),
          aborted,
        ]);
        if (started === 'aborted') break;
        if (!failed && !this.syncedValue) {
          this.syncedValue = true;
          onSynced();
        }
        const outcome = await Promise.race([failedWith, aborted]);
        if (outcome === 'aborted') break;
        if (Date.now() - startedAt >= healthyAfterMs) backoff.reset();
        const delay = backoff.next();
        log.warn({ resource: resource.plural, namespace: namespace ?? '*', err: errorMessage(outcome.error), retryInMs: delay, ...hintFor(outcome.error, resource) }, 'list/watch failed; restarting it');
        await sleep(delay, signal).catch(() => undefined);
      }
    } finally {
      failure = undefined;
      await informer.stop();
      // client-node keeps the watch request only once the watch's response has started: a stop()
      // that comes earlier aborts nothing, and the watch it started then stays open, holding the
      // process (a gateway would not exit on SIGTERM). A request that lands after the stop is
      // aborted as it arrives.
      Object.defineProperty(informer, 'request', {
        configurable: true,
        get: () => undefined,
        set: (request: { abort?: () => void } | undefined) => request?.abort?.(),
      });
    }
  }

  /** The list for ListWatch, with objects it could not even cache (no name) left out and reported. */
  private async list(): Promise<{ apiVersion: string; kind: string; metadata: { resourceVersion: string }; items: RawObject[] }> {
    const { client, resource, namespace, labelSelector, log } = this.options;
    const { resourceVersion, items } = await client.list(resource, namespace, labelSelector);
    const usable = items.filter(isRawObject);
    if (usable.length !== items.length) log.warn({ resource: resource.plural, skipped: items.length - usable.length }, 'list returned objects without metadata.name; skipping them');
    return { apiVersion: 'v1', kind: 'List', metadata: { resourceVersion }, items: usable };
  }
}
