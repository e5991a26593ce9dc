import { percentile, type Sample } from './load-generator.js';

export const DRILL_REPORT_SCHEMA = 'fedgate.io/drill-report/v1';

export type DrillMode = 'drain' | 'blackhole' | 'kill';

export interface DrillObjectives {
  /** Failed requests allowed over the whole drill. */
  maxErrors?: number;
  /** Longest acceptable time from the failure to 100% failed over. */
  maxFailoverSeconds?: number;
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
}

export interface TimelineBin {
  startMs: number;
  /** Successful requests by serving cluster. */
  servedBy: Record<string, number>;
  errors: number;
}

export interface DrillReport {
  schema: typeof DRILL_REPORT_SCHEMA;
  startedAt: string;
  finishedAt: string;
  plan: DrillPlan;
  marks: DrillMarks;
  phases: { baseline: PhaseSummary; failure: PhaseSummary; recovery: PhaseSummary };
  failover: {
    /** Share of baseline successes the failing cluster served (0..1). */
    baselineShareOfFailing: number;
    /** From the failure to the first successful request (due after it) served by another cluster. */
    firstSuccessElsewhereMs: number | null;
    /** From the failure until every request was answered by another cluster; null if that never held. */
    fullFailoverMs: number | null;
  };
  failback: {
    /** From the restore to the first successful request served by the restored cluster. */
    firstSuccessFromRestoredMs: number | null;
    /** Share of successes the restored cluster served in the second half of the recovery phase. */
    shareAfterRecovery: number;
  };
  errors: { total: number; byReason: Record<string, number> };
  timeline: { binMs: number; bins: TimelineBin[] };
  objectives: DrillObjectives & { passed: boolean; missed: string[] };
  warnings: string[];
}

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
  const round = (v: number): number => Math.round(v * 1000) / 1000;
  return {
    fromMs: round(fromMs),
    toMs: round(toMs),
    requests: inPhase.length,
    errors,
    servedBy,
    p50Ms: latencies.length > 0 ? round(percentile(latencies, 50)) : null,
    p99Ms: latencies.length > 0 ? round(percentile(latencies, 99)) : null,
  };
}

function share(phase: PhaseSummary, cluster: string): number {
  const total = Object.values(phase.servedBy).reduce((sum, n) => sum + n, 0);
  return total === 0 ? 0 : (phase.servedBy[cluster] ?? 0) / total;
}

/** A failed request, named by what the client saw: the gateway's reason, a status, or a transport error. */
function reasonOf(sample: Sample): string {
  if (sample.error && /^[a-z_-]+$/.test(sample.error)) return sample.error;
  if (sample.status === 'error') return `transport: ${(sample.error ?? 'error').replace(/\d+/g, 'N')}`;
  return `status ${sample.status}`;
}

/**
 * Turns the samples of one drill into its report. Every figure is computed from what the load
 * generator recorded (due time, latency, serving cluster), so the report describes what callers
 * experienced, not what the gateways believe.
 */
export function buildReport(plan: DrillPlan, samples: readonly Sample[], marks: DrillMarks, times: { startedAt: Date; finishedAt: Date }): DrillReport {
  const warnings: string[] = [];
  const baseline = summarize(samples, 0, marks.injectAt);
  const failure = summarize(samples, marks.injectAt, marks.restoreAt);
  const recovery = { ...summarize(samples, marks.restoreAt, Infinity), toMs: Math.round(marks.endAt * 1000) / 1000 };
  const baselineShareOfFailing = share(baseline, plan.fail);
  if (baseline.requests === 0) warnings.push('no baseline traffic was recorded');
  else if (baselineShareOfFailing === 0) warnings.push(`${plan.fail} served none of the baseline traffic: failing it shows nothing about failover (is the service exported there, and preferred from ${plan.from}?)`);

  const duringFailure = samples.filter((s) => s.at >= marks.injectAt && s.at < marks.restoreAt);
  const firstElsewhere = duringFailure.find((s) => s.ok && s.servedBy !== undefined && s.servedBy !== plan.fail);
  // Full failover: the first moment after which every request of the failure phase succeeded
  // elsewhere. It counts only when that held for a meaningful stretch (a second, or 10 requests).
  let lastBad = -1;
  duringFailure.forEach((s, i) => {
    if (!s.ok || s.servedBy === plan.fail) lastBad = i;
  });
  const clean = duringFailure.slice(lastBad + 1);
  const cleanSpanMs = clean.length > 0 ? marks.restoreAt - (clean[0] as Sample).at : 0;
  let fullFailoverMs: number | null = null;
  if (clean.length > 0 && (cleanSpanMs >= 1000 || clean.length >= 10)) {
    fullFailoverMs = lastBad < 0 ? 0 : Math.max(0, (clean[0] as Sample).at - marks.injectAt);
  } else if (duringFailure.length > 0) {
    warnings.push(`traffic never fully left ${plan.fail} during the failure phase`);
  }

  const afterRestore = samples.filter((s) => s.at >= marks.restoreAt);
  const firstBack = afterRestore.find((s) => s.ok && s.servedBy === plan.fail);
  const lateRecovery = summarize(samples, marks.restoreAt + (marks.endAt - marks.restoreAt) / 2, Infinity);
  const shareAfterRecovery = share(lateRecovery, plan.fail);
  if (baselineShareOfFailing > 0 && !firstBack) warnings.push(`${plan.fail} took no traffic back after the restore`);

  const byReason: Record<string, number> = {};
  for (const s of samples) if (!s.ok) byReason[reasonOf(s)] = (byReason[reasonOf(s)] ?? 0) + 1;
  const totalErrors = baseline.errors + failure.errors + recovery.errors;

  const binMs = Math.max(100, Math.ceil(marks.endAt / 120 / 50) * 50);
  const bins: TimelineBin[] = [];
  for (let start = 0; start < marks.endAt; start += binMs) bins.push({ startMs: start, servedBy: {}, errors: 0 });
  for (const s of samples) {
    const bin = bins[Math.min(bins.length - 1, Math.floor(s.at / binMs))];
    if (!bin) continue;
    if (s.ok) bin.servedBy[s.servedBy ?? 'unknown'] = (bin.servedBy[s.servedBy ?? 'unknown'] ?? 0) + 1;
    else bin.errors += 1;
  }

  const missed: string[] = [];
  const { maxErrors, maxFailoverSeconds } = plan.objectives;
  if (maxErrors !== undefined && totalErrors > maxErrors) missed.push(`${totalErrors} errors, more than --max-errors ${maxErrors}`);
  if (maxFailoverSeconds !== undefined) {
    if (fullFailoverMs === null) missed.push(`never fully failed over; --max-failover-seconds ${maxFailoverSeconds}`);
    else if (fullFailoverMs / 1000 > maxFailoverSeconds) missed.push(`full failover took ${(fullFailoverMs / 1000).toFixed(3)}s, more than --max-failover-seconds ${maxFailoverSeconds}`);
  }
  const round = (v: number | null): number | null => (v === null ? null : Math.round(v * 1000) / 1000);
  return {
    schema: DRILL_REPORT_SCHEMA,
    startedAt: times.startedAt.toISOString(),
    finishedAt: times.finishedAt.toISOString(),
    plan,
    marks: {
      injectAt: round(marks.injectAt) as number,
      injectedAt: round(marks.injectedAt) as number,
      restoreAt: round(marks.restoreAt) as number,
      restoredAt: round(marks.restoredAt) as number,
      endAt: round(marks.endAt) as number,
    },
    phases: { baseline, failure, recovery },
    failover: { baselineShareOfFailing: Math.round(baselineShareOfFailing * 10_000) / 10_000, firstSuccessElsewhereMs: round(firstElsewhere ? Math.max(0, firstElsewhere.at - marks.injectAt) : null), fullFailoverMs: round(fullFailoverMs) },
    failback: { firstSuccessFromRestoredMs: round(firstBack ? Math.max(0, firstBack.at - marks.restoreAt) : null), shareAfterRecovery: Math.round(shareAfterRecovery * 10_000) / 10_000 },
    errors: { total: totalErrors, byReason },
    timeline: { binMs, bins },
    objectives: { ...plan.objectives, passed: missed.length === 0, missed },
    warnings,
  };
}
