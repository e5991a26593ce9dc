import type { BackoffOptions } from '../../core/backoff.js';
import type { Logger } from '../../core/logger.js';
import { desiredConditions, mergeConditions, type ExportStanding } from './export-conditions.js';
import { KubeApiError, type KubeClient } from './kube-client.js';
import { SERVICE_EXPORTS, type RawObject } from './kube-resources.js';
import { WorkQueue } from './work-queue.js';

/** A ServiceExport as last seen, and what the provider makes of it. */
export interface StatusSubject {
  object: RawObject;
  standing: ExportStanding;
}

export interface ExportStatusWriterOptions {
  client: KubeClient;
  log: Logger;
  /** Undefined: nothing to write (gone, or not computed yet). */
  source: (key: string) => StatusSubject | undefined;
  now?: () => Date;
  concurrency?: number;
  backoff?: BackoffOptions;
}

/**
 * Writes the `Valid`, `Ready` and `Conflict` conditions of ServiceExports through the status
 * subresource (JSON merge patch), only when a condition actually changes: our own write comes back
 * through the watch, and must find nothing left to do. The patch carries the resourceVersion it
 * was computed from, so a concurrent writer's conditions are never overwritten blindly (409: the
 * newer object is on its way through the watch, which queues the key again).
 */
export class ExportStatusWriter {
  private readonly inFlight = new Map<string, string>();
  private queue: WorkQueue | undefined;

  constructor(private readonly options: ExportStatusWriterOptions) {}

  enqueue(key: string): void {
    this.queue?.add(key);
  }

  /** A watch event for the key: a finished write of ours has been seen back. */
  observed(key: string): void {
    if (!this.queue?.isActive(key)) this.inFlight.delete(key);
  }

  async run(signal: AbortSignal): Promise<void> {
    this.inFlight.clear();
    const queue = new WorkQueue((key) => this.write(key), { name: 'serviceexport-status', log: this.options.log, concurrency: this.options.concurrency, backoff: this.options.backoff });
    this.queue = queue;
    await new Promise<void>((resolve) => {
      if (signal.aborted) resolve();
      signal.addEventListener('abort', () => resolve(), { once: true });
    });
    queue.stop();
    if (this.queue === queue) this.queue = undefined;
  }

  private async write(key: string): Promise<void> {
    const current = this.options.source(key);
    if (!current) return;
    const { object, standing } = current;
    const desired = desiredConditions(standing);
    const status = object.status as { conditions?: unknown } | undefined;
    const { conditions, changed } = mergeConditions(status?.conditions, desired, (this.options.now ?? (() => new Date()))());
    if (!changed) return;
    const signature = JSON.stringify(desired);
    if (this.inFlight.get(key) === signature) return;
    this.inFlight.set(key, signature);
    try {
      await this.options.client.mergePatch(
        SERVICE_EXPORTS,
        standing.namespace,
        standing.name,
        { metadata: { resourceVersion: object.metadata.resourceVersion }, status: { conditions } },
        'status',
      );
      this.options.log.debug({ service: key, conditions: desired.map((c) => `${c.type}=${c.status}`).join(',') }, 'ServiceExport status written');
    } catch (error) {
      this.inFlight.delete(key);
      if (error instanceof KubeApiError && (error.status === 404 || error.status === 409)) return;
      throw error;
    }
  }
}
