import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runLoad, type LoadTarget, type Sample } from './load-generator.js';
import { renderMarkdown, renderSvg } from './render.js';
import { buildReport, type DrillMarks, type DrillPlan, type DrillReport } from './report.js';

/** How a drill fails a cluster and brings it back; built by the caller (controller admin API, local processes). */
export interface DrillInjector {
  /** e.g. "drain us-east through the controller" */
  readonly description: string;
  inject(): Promise<void>;
  restore(): Promise<void>;
}

export interface DrillRunOptions {
  /** Progress lines for a terminal. */
  progress?: (line: string) => void;
  /** Where the failure phase starts and ends, as fractions of the duration. */
  failureWindow?: { from: number; to: number };
  /** Stops the drill early (Ctrl-C): the load stops and an injected failure is restored. */
  signal?: AbortSignal;
}

/** The drill was stopped by an injector error; the partial report says how far it got. */
export class DrillAborted extends Error {
  constructor(
    message: string,
    readonly samples: readonly Sample[],
  ) {
    super(message);
  }
}

/**
 * One drill: continuous load through the `from` gateway for the whole duration; the failure is
 * injected after the baseline quarter and restored after the failure half, so every phase is
 * measured under the same load. The cluster is restored even when the drill is aborted.
 */
export async function runDrill(plan: DrillPlan, target: LoadTarget, injector: DrillInjector, options: DrillRunOptions = {}): Promise<DrillReport> {
  const progress = options.progress ?? (() => undefined);
  const window = options.failureWindow ?? { from: 0.25, to: 0.75 };
  const startedAt = new Date();
  const origin = performance.now();
  const since = (): number => performance.now() - origin;
  const abort = new AbortController();
  const marks: Partial<DrillMarks> = {};
  let injected = false;
  let failure: unknown;

  const interrupted = new Promise<never>((_, reject) => {
    const stop = (): void => reject(new Error('interrupted'));
    if (options.signal?.aborted) stop();
    options.signal?.addEventListener('abort', stop, { once: true });
  });
  interrupted.catch(() => undefined);
  const at = (fraction: number): Promise<void> => Promise.race([new Promise<void>((resolve) => setTimeout(resolve, Math.max(0, plan.durationMs * fraction - since()))), interrupted]);
  const script = (async () => {
    await at(window.from);
    progress(`${(since() / 1000).toFixed(1)}s  ${injector.description}`);
    marks.injectAt = since();
    injected = true;
    await injector.inject();
    marks.injectedAt = since();
    await at(window.to);
    progress(`${(since() / 1000).toFixed(1)}s  restoring ${plan.fail}`);
    marks.restoreAt = since();
    injected = false;
    await injector.restore();
    marks.restoredAt = since();
  })().catch((error: unknown) => {
    failure = error;
    abort.abort();
  });

  progress(`0.0s  baseline: ${plan.rps} rps of ${plan.protocol} to ${plan.service} through ${plan.from}`);
  const samples = await runLoad(target, { rps: plan.rps, durationMs: plan.durationMs, origin, signal: abort.signal, timeoutMs: 5000 });
  await script;
  if (failure !== undefined) {
    if (injected) {
      await injector.restore().catch((error: unknown) => progress(`restore after the abort failed too: ${error instanceof Error ? error.message : String(error)}`));
    }
    throw new DrillAborted(`drill aborted: ${failure instanceof Error ? failure.message : String(failure)}`, samples);
  }
  const endAt = Math.max(plan.durationMs, ...samples.map((s) => s.at));
  return buildReport(plan, samples, { ...(marks as DrillMarks), endAt }, { startedAt, finishedAt: new Date() });
}

/** Writes report.json, report.md and timeline.svg; returns their paths. */
export function writeReport(report: DrillReport, dir: string): { json: string; markdown: string; svg: string } {
  mkdirSync(dir, { recursive: true });
  const files = { json: join(dir, 'report.json'), markdown: join(dir, 'report.md'), svg: join(dir, 'timeline.svg') };
  writeFileSync(files.json, `${JSON.stringify(report, null, 2)}\n`);
  writeFileSync(files.markdown, renderMarkdown(report));
  writeFileSync(files.svg, renderSvg(report));
  return files;
}
