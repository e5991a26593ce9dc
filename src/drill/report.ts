import { percentile, type Sample } from './load-generator.js';
import type { PreflightResult } from './preflight.js';
import { effectiveObjectives, judge, missedObjectives, type DrillMode, type DrillObjectives, type DrillVerdict, type EffectiveObjectives } from './verdict.js';

// The modes and objectives are the verdict's vocabulary; the report hands them on to its readers.
export { DRILL_MODES, type DrillMode, type DrillObjectives } from './verdict.js';

export const DRILL_REPORT_SCHEMA = 'fedgate.io/drill-report/v1';

/** Partition drills: which packets of the failing cluster are dropped. */
export type PartitionDirection = 'in' | 'out' | 'both';

/** How the failure was made, so that a report can be rerun and compared. */
export interface FailureParameters {
  /** In words: "drop every packet into and out of us-east's network namespace fgl-…". */
  description: string;
  /** partition: which packets are dropped. */
  direction?: PartitionDirection;
  /** partition: the network namespace the rules were put in. */
  netns?: string;
  /** partition: the nft ruleset, verbatim. */
  rules?: string;
}

export interface DrillPlan {
  /** `name.namespace`, as typed. */
  service: string;
  /** `namespace/name` */
  serviceKey: string;
  protocol: 'http' | 'grpc';
  from: string;
  fail: string;
  mode: DrillMode;
  rps: number;
  durationMs: number;
  objectives: DrillObjectives;
  failure: FailureParameters;
}

/** Times of the phase changes, ms since the start of the load (the load generator's clock). */
export interface DrillMarks {
  /** The failure was requested (start of the failure phase). */
  injectAt: number;
  /** The injector returned (the failure is in effect as far as the drill can tell). */
  injectedAt: number;
  restoreAt: number;
  restoredAt: number;
  endAt: number;
  /** The --from gateway's health checks marked the failing cluster down (when the drill could watch them). */
  detectedAt?: number;
}

export interface PhaseSummary {
  fromMs: number;
  toMs: number;
  requests: number;
  errors: number;
  /** Successful requests by the cluster that served them. */
  servedBy: Record<string, number>;
  /** Latency of successful requests. */
  p50Ms: number | null;
  p99Ms: number | null;
  /** The slowest successful request: in the failure phase, how long requests caught by the failure waited. */
  maxMs: number | null;
}

export interface TimelineBin {
  startMs: number;
  /** Successful requests by serving cluster. */
  servedBy: Record<string, number>;
  errors: number;
}

/** Failed requests of one cause (a status and the gateway's reason, a connect error and its address, a timeout). */
export interface ErrorCause {
  cause: string;
  count: number;
  firstAtMs: number;
  lastAtMs: number;
}

export interface DrillReport {
  schema: typeof DRILL_REPORT_SCHEMA;
  startedAt: string;
  finishedAt: string;
  plan: DrillPlan;
  verdict: DrillVerdict;
  /** One line: why this verdict. */
  reason: string;
  /** The checks made before any traffic was sent. */
  preflight: PreflightResult[];
  /** The checks made after the load: the federation is whole again as its status reports it. */
  postflight: PreflightResult[];
  marks: DrillMarks;
  phases: { baseline: PhaseSummary; failure: PhaseSummary; recovery: PhaseSummary };
  failover: {
    /** Share of baseline successes the failing cluster served (0..1). */
    baselineShareOfFailing: number;
    /** From the failure to when the --from gateway's health checks marked the failing cluster down; null if not watched or never. */
    detectionMs: number | null;
    /** From the failure to the due time of the first successful request (due after it) served by another cluster. */
    firstSuccessElsewhereMs: number | null;
    /**
     * From the failure to the due time of the first request of the run of requests that all
     * succeeded elsewhere until the restore; null if that never held. Never less than
     * firstSuccessElsewhereMs: that run starts with a success elsewhere.
     */
    fullFailoverMs: number | null;
    /** Times measured on requests are due times: exact to one request interval (1000 / rps ms). */
    resolutionMs: number;
  };
  failback: {
    /** From the restore to the first successful request served by the restored cluster. */
    firstSuccessFromRestoredMs: number | null;
    /** Share of successes the restored cluster served in the second half of the recovery phase. */
    shareAfterRecovery: number;
  };
  errors: { total: number; byReason: Record<string, number>; causes: ErrorCause[] };
  timeline: { binMs: number; bins: TimelineBin[] };
  objectives: EffectiveObjectives & { passed: boolean; missed: string[] };
  warnings: string[];
}

const round = (v: number): number => Math.round(v * 1000) / 1000;
const roundOrNull = (v: number | null): number | null => (v === null ? null : round(v));

function summarize(samples: readonly Sample[], fromMs: number, toMs: number): PhaseSummary {
  const inPhase = samples.filter((s) => s.at >= fromMs && s.at < toMs);
  const servedBy: Record<string, number> = {};
  const latencies: number[] = [];
  let errors = 0;
  for (const s of inPhase) {
    if (!s.ok) {
      errors += 1;
      continue;
    }
    const cluster = s.servedBy ?? 'unknown';
    servedBy[cluster] = (servedBy[cluster] ?? 0) + 1;
    latencies.push(s.latencyMs);
  }
  latencies.sort((a, b) => a - b);
  return {
    fromMs: round(fromMs),
    toMs: round(toMs),
    requests: inPhase.length,
    errors,
    servedBy,
    p50Ms: latencies.length > 0 ? round(percentile(latencies, 50)) : null,
    p99Ms: latencies.length > 0 ? round(percentile(latencies, 99)) : null,
    maxMs: latencies.length > 0 ? round(latencies[latencies.length - 1] as number) : null,
  };
}

function share(phase: PhaseSummary, cluster: string): number {
  const total = Object.values(phase.servedBy).reduce((sum, n) => sum + n, 0);
  return total === 0 ? 0 : (phase.servedBy[cluster] ?? 0) / total;
}

/** Failed requests grouped by their cause, the most frequent first. */
function errorCauses(samples: readonly Sample[]): ErrorCause[] {
  const causes = new Map<string, ErrorCause>();
  for (const s of samples) {
    if (s.ok) continue;
    const cause = s.error ?? `status ${s.status}`;
    const entry = causes.get(cause);
    if (entry) {
      entry.count += 1;
      entry.lastAtMs = round(s.at);
    } else causes.set(cause, { cause, count: 1, firstAtMs: round(s.at), lastAtMs: round(s.at) });
  }
  return [...causes.values()].sort((a, b) => b.count - a.count || a.firstAtMs - b.firstAtMs);
}

export interface ReportContext {
  startedAt: Date;
  finishedAt: Date;
  preflight?: PreflightResult[];
  /** The drill did not finish: why. Marks it never reached are the end of the load. */
  aborted?: string;
}

/**
 * Turns the samples of one drill into its report. Every figure is computed from what the load
 * generator recorded (due time, latency, serving cluster), so the report describes what callers
 * experienced, not what the gateways believe; only `detectionMs` comes from the --from gateway.
 */
export function buildReport(plan: DrillPlan, samples: readonly Sample[], marks: DrillMarks, context: ReportContext): DrillReport {
  const warnings: string[] = [];
  const baseline = summarize(samples, 0, marks.injectAt);
  const failure = summarize(samples, marks.injectAt, marks.restoreAt);
  const recovery = { ...summarize(samples, marks.restoreAt, Infinity), toMs: round(marks.endAt) };
  const baselineShareOfFailing = share(baseline, plan.fail);

  const duringFailure = samples.filter((s) => s.at >= marks.injectAt && s.at < marks.restoreAt);
  const elsewhere = (s: Sample): boolean => s.ok && s.servedBy !== undefined && s.servedBy !== plan.fail;
  const firstElsewhere = duringFailure.find(elsewhere);
  // Full failover: the due time of the first request of the final run of the failure phase in
  // which every request succeeded elsewhere. That run starts with a success elsewhere, so it can
  // never come before the first one. It counts only when it held for a meaningful stretch (a
  // second, or 10 requests).
  let lastBad = -1;
  duringFailure.forEach((s, i) => {
    if (!elsewhere(s)) lastBad = i;
  });
  const clean = duringFailure.slice(lastBad + 1);
  const cleanSpanMs = clean.length > 0 ? marks.restoreAt - (clean[0] as Sample).at : 0;
  const fullFailoverMs = clean.length > 0 && (cleanSpanMs >= 1000 || clean.length >= 10) ? Math.max(0, (clean[0] as Sample).at - marks.injectAt) : null;

  const afterRestore = samples.filter((s) => s.at >= marks.restoreAt);
  const firstBack = afterRestore.find((s) => s.ok && s.servedBy === plan.fail);
  const lateRecovery = summarize(samples, marks.restoreAt + (marks.endAt - marks.restoreAt) / 2, Infinity);
  const shareAfterRecovery = share(lateRecovery, plan.fail);

  const causes = errorCauses(samples);
  const byReason = Object.fromEntries(causes.map((c) => [c.cause, c.count]));
  const totalErrors = baseline.errors + failure.errors + recovery.errors;
  const requests = baseline.requests + failure.requests + recovery.requests;

  const binMs = Math.max(100, Math.ceil(marks.endAt / 120 / 50) * 50);
  const bins: TimelineBin[] = [];
  for (let start = 0; start < marks.endAt; start += binMs) bins.push({ startMs: start, servedBy: {}, errors: 0 });
  for (const s of samples) {
    const bin = bins[Math.min(bins.length - 1, Math.floor(s.at / binMs))];
    if (!bin) continue;
    if (s.ok) bin.servedBy[s.servedBy ?? 'unknown'] = (bin.servedBy[s.servedBy ?? 'unknown'] ?? 0) + 1;
    else bin.errors += 1;
  }

  const objectives = effectiveObjectives(plan.mode, plan.objectives, requests);
  const verdictInput = {
    mode: plan.mode,
    fail: plan.fail,
    objectives,
    aborted: context.aborted,
    baselineRequests: baseline.requests,
    baselineErrors: baseline.errors,
    baselineTopCause: errorCauses(samples.filter((s) => s.at < marks.injectAt))[0]?.cause,
    baselineShareOfFailing,
    failurePhaseRequests: failure.requests,
    servedByFailingDuringFailure: failure.servedBy[plan.fail] ?? 0,
    fullFailoverMs,
    totalErrors,
    firstSuccessFromRestoredMs: firstBack ? Math.max(0, firstBack.at - marks.restoreAt) : null,
    watchedAfterRestoreMs: Math.max(0, marks.endAt - marks.restoreAt),
  };
  const missed = context.aborted === undefined ? missedObjectives(verdictInput) : [];
  const { verdict, reason } = judge(verdictInput, missed);
  if (verdict !== 'INCONCLUSIVE' && baselineShareOfFailing < 0.5 && baselineShareOfFailing > 0) {
    warnings.push(`${plan.fail} served only ${(baselineShareOfFailing * 100).toFixed(0)}% of the baseline: the failure phase tested part of the traffic`);
  }
  if (marks.detectedAt === undefined && plan.mode !== 'drain' && verdict !== 'INCONCLUSIVE' && context.aborted === undefined) {
    warnings.push(`detection time not measured: the drill could not watch the ${plan.from} gateway's health checks (give --from-admin or --from-config)`);
  }

  return {
    schema: DRILL_REPORT_SCHEMA,
    startedAt: context.startedAt.toISOString(),
    finishedAt: context.finishedAt.toISOString(),
    plan,
    verdict,
    reason,
    preflight: context.preflight ?? [],
    postflight: [],
    marks: {
      injectAt: round(marks.injectAt),
      injectedAt: round(marks.injectedAt),
      restoreAt: round(marks.restoreAt),
      restoredAt: round(marks.restoredAt),
      endAt: round(marks.endAt),
      ...(marks.detectedAt !== undefined ? { detectedAt: round(marks.detectedAt) } : {}),
    },
    phases: { baseline, failure, recovery },
    failover: {
      baselineShareOfFailing: Math.round(baselineShareOfFailing * 10_000) / 10_000,
      detectionMs: marks.detectedAt !== undefined ? round(Math.max(0, marks.detectedAt - marks.injectAt)) : null,
      firstSuccessElsewhereMs: roundOrNull(firstElsewhere ? Math.max(0, firstElsewhere.at - marks.injectAt) : null),
      fullFailoverMs: roundOrNull(fullFailoverMs),
      resolutionMs: round(1000 / plan.rps),
    },
    failback: { firstSuccessFromRestoredMs: roundOrNull(verdictInput.firstSuccessFromRestoredMs), shareAfterRecovery: Math.round(shareAfterRecovery * 10_000) / 10_000 },
    errors: { total: totalErrors, byReason, causes },
    timeline: { binMs, bins },
    objectives: { ...objectives, passed: verdict === 'PASSED', missed },
    warnings,
  };
}

/**
 * Adds the checks made after the load. A drill whose traffic came back but whose federation status
 * is not whole again (the restored cluster not active, its gateway not connected, behind on the
 * catalog or the policies) is not PASSED: an operator would read that status, not the traffic.
 */
export function withPostflight(report: DrillReport, results: readonly PreflightResult[]): DrillReport {
  const failed = results.filter((r) => !r.ok).map((r) => `${r.check}: ${r.detail}`);
  if (failed.length === 0 || report.verdict === 'INCONCLUSIVE' || report.verdict === 'ABORTED') return { ...report, postflight: [...results] };
  const missed = [...report.objectives.missed, ...failed];
  return {
    ...report,
    postflight: [...results],
    verdict: 'FAILED',
    reason: report.verdict === 'PASSED' ? (failed.length === 1 ? (failed[0] as string) : `${failed[0]} (and ${failed.length - 1} more)`) : report.reason,
    objectives: { ...report.objectives, passed: false, missed },
  };
}
