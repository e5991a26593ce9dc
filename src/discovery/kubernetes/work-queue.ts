import { Backoff, type BackoffOptions } from '../../core/backoff.js';
import { errorMessage } from '../../core/errors.js';
import type { Logger } from '../../core/logger.js';

export interface WorkQueueOptions {
  name: string;
  log: Logger;
  /** Keys processed at the same time (never the same key twice at once). */
  concurrency?: number;
  /** Per-key back-off after a failure. */
  backoff?: BackoffOptions;
}

/**
 * Keys of objects to reconcile, in the manner of client-go's workqueue: a key added many times
 * while it waits is processed once, a key is never processed by two workers at once (one added
 * while in progress runs again afterwards), and a failed key is retried with its own back-off.
 * The worker reads the latest state when it runs, so bursts of events collapse into one write.
 */
export class WorkQueue {
  private readonly waiting: string[] = [];
  private readonly queued = new Set<string>();
  private readonly active = new Set<string>();
  private readonly again = new Set<string>();
  private readonly retries = new Map<string, { backoff: Backoff; timer?: NodeJS.Timeout }>();
  private running = 0;
  private stopped = false;
  private readonly concurrency: number;

  constructor(
    private readonly work: (key: string) => Promise<void>,
    private readonly options: WorkQueueOptions,
  ) {
    this.concurrency = options.concurrency ?? 8;
  }

  add(key: string): void {
    if (this.stopped) return;
    if (this.active.has(key)) {
      this.again.add(key);
      return;
    }
    if (this.queued.has(key)) return;
    this.queued.add(key);
    this.waiting.push(key);
    this.pump();
  }

  /** True while a worker is processing the key. */
  isActive(key: string): boolean {
    return this.active.has(key);
  }

  /** Keys waiting or in progress (retries waiting for their back-off not included). */
  get pending(): number {
    return this.waiting.length + this.active.size;
  }

  stop(): void {
    this.stopped = true;
    this.waiting.length = 0;
    this.queued.clear();
    for (const retry of this.retries.values()) clearTimeout(retry.timer);
    this.retries.clear();
  }

  private pump(): void {
    while (!this.stopped && this.running < this.concurrency && this.waiting.length > 0) {
      const key = this.waiting.shift() as string;
      this.queued.delete(key);
      this.active.add(key);
      this.running += 1;
      void this.process(key);
    }
  }

  private async process(key: string): Promise<void> {
    try {
      await this.work(key);
      const retry = this.retries.get(key);
      if (retry && !retry.timer) this.retries.delete(key);
    } catch (error) {
      if (!this.stopped) {
        const retry = this.retries.get(key) ?? { backoff: new Backoff({ initialMs: 500, maxMs: 30_000, ...this.options.backoff }) };
        this.retries.set(key, retry);
        const delay = retry.backoff.next();
        this.options.log.warn({ queue: this.options.name, key, err: errorMessage(error), retryInMs: delay }, 'write to the API server failed; retrying');
        clearTimeout(retry.timer);
        retry.timer = setTimeout(() => {
          retry.timer = undefined;
          this.add(key);
        }, delay);
        retry.timer.unref();
      }
    } finally {
      this.active.delete(key);
      this.running -= 1;
      if (this.again.delete(key)) this.add(key);
      this.pump();
    }
  }
}
