import { Backoff, type BackoffOptions, sleep } from './backoff.js';
import { errorMessage } from './errors.js';
import type { Logger } from './logger.js';

/** A long-running loop (a watch, a sync stream, an informer). `start` returns when the signal aborts. */
export interface Component {
  readonly name: string;
  start(signal: AbortSignal): Promise<void>;
}

export interface ResilientOptions {
  log: Logger;
  backoff?: BackoffOptions;
  /** A run that lasted this long counts as healthy, so the next failure starts back-off afresh. */
  healthyAfterMs?: number;
  onError?: (error: unknown) => void;
}

/**
 * Runs a component until the signal aborts, restarting it with back-off whenever it fails or
 * returns early. Kuma runs its KDS and watch loops the same way: a loop that dies must not take
 * the process, and must not spin either.
 */
export async function runResilient(component: Component, signal: AbortSignal, options: ResilientOptions): Promise<void> {
  const backoff = new Backoff(options.backoff);
  const healthyAfterMs = options.healthyAfterMs ?? 30_000;
  while (!signal.aborted) {
    const startedAt = Date.now();
    try {
      await component.start(signal);
      if (signal.aborted) return;
      options.log.warn({ component: component.name }, 'component stopped unexpectedly; restarting');
    } catch (error) {
      if (signal.aborted) return;
      options.onError?.(error);
      options.log.warn({ component: component.name, err: errorMessage(error) }, 'component failed; restarting');
    }
    if (Date.now() - startedAt >= healthyAfterMs) backoff.reset();
    try {
      await sleep(backoff.next(), signal);
    } catch {
      return;
    }
  }
}

/** Runs cleanup functions in reverse order of registration; each failure is logged, none stops the rest. */
export class Closer {
  private readonly steps: Array<{ name: string; close: () => unknown }> = [];

  add(name: string, close: () => unknown): void {
    this.steps.push({ name, close });
  }

  async close(log?: Logger): Promise<void> {
    while (this.steps.length > 0) {
      const step = this.steps.pop() as { name: string; close: () => unknown };
      try {
        await step.close();
      } catch (error) {
        log?.warn({ step: step.name, err: errorMessage(error) }, 'shutdown step failed');
      }
    }
  }
}
