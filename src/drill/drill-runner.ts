import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { errorMessage } from '../core/errors.js';
import { runLoad, type LoadTarget, type Sample } from './load-generator.js';
import type { PreflightResult } from './preflight.js';
import { renderMarkdown, renderSvg } from './render.js';
import { buildReport, type DrillMarks, type DrillPlan, type DrillReport } from './report.js';
import { DEFAULT_MAX_FAILBACK_SECONDS, DEFAULT_MIN_BASELINE_SHARE } from './verdict.js';

/** How a drill fails a cluster and brings it back; built by the caller (controller admin API, local processes, firewall rules). */
export interface DrillInjector {
  /** e.g. "drain us-east through the controller" */
  readonly description: string;
  inject(): Promise<void>;
  restore(): Promise<void>;
}

/**
 * Watches the --from gateway's view of the failing cluster: resolves with the wall-clock time
 * (ms since the epoch) its health checks marked the cluster down, or undefined when the signal
 * ends the watch first.
 */
export type DetectionWatch = (since: number, signal: AbortSignal) => Promise<number | undefined>;

export interface DrillRunOptions {
  /** Progress lines for a terminal. */
  progress?: (line: string) => void;
  /** Where the failure phase starts and ends, as fractions of the duration. */
  failureWindow?: { from: number; to: number };
  /** Stops the drill early (Ctrl-C): the load stops and an injected failure is restored. */
  signal?: AbortSignal;
  /** The checks made before the drill, carried into the report. */
  preflight?: PreflightResult[];
  detection?: DetectionWatch;
  /** Per-request timeout of the load generator. */
  requestTimeoutMs?: number;
}

/** The drill did not finish (an injector failed, or it was interrupted); `report` says how far it got. */
export class DrillAborted extends Error {
  constructor(
    message: string,
    readonly report: DrillReport,
  ) {
    super(message);
  }
}

/**
 * One drill: continuous load through the `from` gateway for the whole duration; the failure is
 * injected after the baseline quarter and restored after the failure half, so every phase is
 * measured under the same load. When the restored cluster has not served again by the planned
 * end, the load goes on until it does or the failback objective has run out, so that "no failback"
 * is a measurement and not a drill that ended too soon. The cluster is restored even when the
 * drill is aborted.
 */
export async function runDrill(plan: DrillPlan, target: LoadTarget, injector: DrillInjector, options: DrillRunOptions = {}): Promise<DrillReport> {
  const progress = options.progress ?? (() => undefined);
  const window = options.failureWindow ?? { from: 0.25, to: 0.75 };
  const startedAt = new Date();
  const origin = performance.now();
  const originWall = Date.now() - (performance.now() - origin);
  const since = (): number => performance.now() - origin;
  const abort = new AbortController();
  const marks: Partial<DrillMarks> = {};
  let injected = false;
  let failure: unknown;

  const interrupted = new Promise<never>((_, reject) => {
    const stop = (): void => reject(new Error('interrupted (SIGINT or SIGTERM)'));
    if (options.signal?.aborted) stop();
    options.signal?.addEventListener('abort', stop, { once: true });
  });
  interrupted.catch(() => undefined);
  const at = (fraction: number): Promise<void> => Promise.race([new Promise<void>((resolve) => setTimeout(resolve, Math.max(0, plan.durationMs * fraction - since()))), interrupted]);

  const watch = new AbortController();
  let watching: Promise<void> = Promise.resolve();
  const script = (async () => {
    await at(window.from);
    progress(`${(since() / 1000).toFixed(1)}s  ${injector.description}`);
    marks.injectAt = since();
    injected = true;
    if (options.detection) {
      const injectWall = originWall + marks.injectAt;
      watching = options.detection(injectWall, watch.signal).then(
        (wall) => {
          if (wall !== undefined) marks.detectedAt = Math.max(marks.injectAt as number, wall - originWall);
        },
        (error: unknown) => progress(`could not watch the ${plan.from} gateway's health checks: ${errorMessage(error)}`),
      );
    }
    await Promise.race([injector.inject(), interrupted]);
    marks.injectedAt = since();
    await at(window.to);
    progress(`${(since() / 1000).toFixed(1)}s  restoring ${plan.fail}`);
    marks.restoreAt = since();
    watch.abort();
    injected = false;
    // A restore is never cut short, not even by Ctrl-C: it is what leaves the federation whole.
    await injector.restore();
    marks.restoredAt = since();
  })().catch((error: unknown) => {
    failure = error;
    abort.abort();
  });

  // Failback is waited for only when the failing cluster carried traffic worth coming back.
  let baselineOk = 0;
  let baselineOfFailing = 0;
  let firstBackAt: number | undefined;
  const maxFailbackMs = (plan.objectives.maxFailbackSeconds ?? DEFAULT_MAX_FAILBACK_SECONDS) * 1000;
  const onSample = (sample: Sample): void => {
    if (marks.injectAt === undefined || sample.at < marks.injectAt) {
      if (sample.ok) {
        baselineOk += 1;
        if (sample.servedBy === plan.fail) baselineOfFailing += 1;
      }
    } else if (marks.restoreAt !== undefined && sample.at >= marks.restoreAt && sample.ok && sample.servedBy === plan.fail) {
      firstBackAt = Math.min(firstBackAt ?? Infinity, sample.at);
    }
  };
  const extendTo = (): number => {
    // Still restoring (a killed gateway starting again): keep the load going, within reason.
    if (marks.restoredAt === undefined || marks.restoreAt === undefined) return Math.min(since() + 1000, plan.durationMs + 60_000);
    if (baselineOk === 0 || baselineOfFailing / baselineOk < DEFAULT_MIN_BASELINE_SHARE) return plan.durationMs;
    if (firstBackAt !== undefined) return firstBackAt + 1000;
    return marks.restoreAt + maxFailbackMs + 500;
  };

  progress(`0.0s  baseline: ${plan.rps} rps of ${plan.protocol} to ${plan.service} through ${plan.from}`);
  const samples = await runLoad(target, { rps: plan.rps, durationMs: plan.durationMs, extendTo, origin, signal: abort.signal, timeoutMs: options.requestTimeoutMs ?? 5000 }, onSample);
  await script;
  watch.abort();
  await watching;
  const endAt = Math.max(plan.durationMs, ...samples.map((s) => s.at));
  if (failure !== undefined) {
    if (injected) {
      progress(`restoring ${plan.fail} after the abort`);
      await injector.restore().catch((error: unknown) => progress(`restore after the abort failed too: ${errorMessage(error)}`));
    }
    const stoppedAt = samples.length > 0 ? (samples[samples.length - 1] as Sample).at : since();
    const fill = (value: number | undefined): number => value ?? stoppedAt;
    const reason = `drill aborted: ${errorMessage(failure)}`;
    const partial: DrillMarks = {
      injectAt: fill(marks.injectAt),
      injectedAt: fill(marks.injectedAt ?? marks.injectAt),
      restoreAt: fill(marks.restoreAt),
      restoredAt: fill(marks.restoredAt ?? marks.restoreAt),
      endAt: Math.max(stoppedAt, fill(marks.restoreAt)),
      ...(marks.detectedAt !== undefined ? { detectedAt: marks.detectedAt } : {}),
    };
    throw new DrillAborted(reason, buildReport(plan, samples, partial, { startedAt, finishedAt: new Date(), preflight: options.preflight, aborted: reason }));
  }
  return buildReport(plan, samples, { ...(marks as DrillMarks), endAt }, { startedAt, finishedAt: new Date(), preflight: options.preflight });
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
