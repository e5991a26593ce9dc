export type DrillMode = 'drain' | 'blackhole' | 'kill' | 'partition';
export const DRILL_MODES: readonly DrillMode[] = ['drain', 'blackhole', 'kill', 'partition'];

/** Objectives as declared on the command line; the report holds the effective ones (`EffectiveObjectives`). */
export interface DrillObjectives {
  /** Failed requests allowed over the whole drill. */
  maxErrors?: number;
  /** Longest acceptable time from the failure to 100% failed over. */
  maxFailoverSeconds?: number;
  /** Longest acceptable time from the restore to the first request served by the restored cluster. */
  maxFailbackSeconds?: number;
}


/** The four outcomes of a drill; each has its own exit code of `fedgate drill run`. */
export type DrillVerdict = 'PASSED' | 'FAILED' | 'INCONCLUSIVE' | 'ABORTED';

/** Exit codes of `fedgate drill run` (2 is a usage or pre-flight error: nothing was changed). */
export const VERDICT_EXIT_CODES: Readonly<Record<DrillVerdict, number>> = { PASSED: 0, FAILED: 1, INCONCLUSIVE: 3, ABORTED: 4 };
export const PREFLIGHT_EXIT_CODE = 2;

/** Below this share of the baseline traffic on the failing cluster, failing it proves nothing. */
export const DEFAULT_MIN_BASELINE_SHARE = 0.1;
export const DEFAULT_MAX_FAILBACK_SECONDS = 10;
/**
 * Failure modes without a goodbye (a process killed, a service blackholed, packets dropped) may
 * lose requests that were in flight on the vanished path when the service has no retries: the
 * default budget is 1% of the drill's requests, at least 1. A drain is announced by the controller
 * and loses nothing: its budget is 0.
 */
export const DEFAULT_ERROR_BUDGET_SHARE = 0.01;

/** The objectives a drill was judged by: the declared ones, and defaults for the rest. */
export interface EffectiveObjectives {
  /** INCONCLUSIVE when the failing cluster served less than this share of the baseline successes. */
  minBaselineShare: number;
  /** Failed requests allowed over the whole drill. */
  maxErrors: number;
  /** The restored cluster must serve again within this many seconds of the restore. */
  maxFailbackSeconds: number;
  /** 100% failed over within this many seconds (only when declared). */
  maxFailoverSeconds?: number;
  /** Names of the objectives that took their default (not given on the command line). */
  defaulted: string[];
}

export function defaultMaxErrors(mode: DrillMode, requests: number): number {
  return mode === 'drain' ? 0 : Math.max(1, Math.ceil(requests * DEFAULT_ERROR_BUDGET_SHARE));
}

export function effectiveObjectives(mode: DrillMode, declared: DrillObjectives, requests: number): EffectiveObjectives {
  const defaulted: string[] = ['minBaselineShare'];
  if (declared.maxErrors === undefined) defaulted.push('maxErrors');
  if (declared.maxFailbackSeconds === undefined) defaulted.push('maxFailbackSeconds');
  return {
    minBaselineShare: DEFAULT_MIN_BASELINE_SHARE,
    maxErrors: declared.maxErrors ?? defaultMaxErrors(mode, requests),
    maxFailbackSeconds: declared.maxFailbackSeconds ?? DEFAULT_MAX_FAILBACK_SECONDS,
    ...(declared.maxFailoverSeconds !== undefined ? { maxFailoverSeconds: declared.maxFailoverSeconds } : {}),
    defaulted,
  };
}

/** What the verdict is decided on: figures of the report, already computed. */
export interface VerdictInput {
  mode: DrillMode;
  fail: string;
  objectives: EffectiveObjectives;
  aborted?: string;
  baselineRequests: number;
  baselineErrors: number;
  /** The most frequent cause of the baseline's failed requests. */
  baselineTopCause?: string;
  baselineShareOfFailing: number;
  failurePhaseRequests: number;
  servedByFailingDuringFailure: number;
  fullFailoverMs: number | null;
  totalErrors: number;
  firstSuccessFromRestoredMs: number | null;
  /** How long after the restore the drill kept watching. */
  watchedAfterRestoreMs: number;
}

const pct = (share: number): string => `${(share * 100).toFixed(share > 0 && share < 0.1 ? 1 : 0)}%`;
const seconds = (ms: number): string => `${(ms / 1000).toFixed(3)}s`;

/** The objectives missed, in the words the report and the terminal show. */
export function missedObjectives(input: VerdictInput): string[] {
  const { objectives, fail } = input;
  const missed: string[] = [];
  if (input.totalErrors > objectives.maxErrors) {
    missed.push(
      objectives.defaulted.includes('maxErrors')
        ? `${input.totalErrors} errors, more than the default budget of ${objectives.maxErrors} for a ${input.mode} drill (${input.mode === 'drain' ? 'none' : '1% of the requests'}; set --max-errors)`
        : `${input.totalErrors} errors, more than --max-errors ${objectives.maxErrors}`,
    );
  }
  if (input.failurePhaseRequests > 0 && input.fullFailoverMs === null) {
    missed.push(
      objectives.maxFailoverSeconds !== undefined
        ? `never fully failed over; --max-failover-seconds ${objectives.maxFailoverSeconds}`
        : `never fully failed over: ${fail} still served ${input.servedByFailingDuringFailure} of ${input.failurePhaseRequests} requests of the failure phase, or requests kept failing until the restore`,
    );
  } else if (objectives.maxFailoverSeconds !== undefined && input.fullFailoverMs !== null && input.fullFailoverMs / 1000 > objectives.maxFailoverSeconds) {
    missed.push(`full failover took ${seconds(input.fullFailoverMs)}, more than --max-failover-seconds ${objectives.maxFailoverSeconds}`);
  }
  const failbackFlag = objectives.defaulted.includes('maxFailbackSeconds') ? `the default --max-failback-seconds ${objectives.maxFailbackSeconds}` : `--max-failback-seconds ${objectives.maxFailbackSeconds}`;
  if (input.firstSuccessFromRestoredMs === null) {
    missed.push(`no failback: ${fail} served no request in the ${seconds(input.watchedAfterRestoreMs)} after the restore (${failbackFlag})`);
  } else if (input.firstSuccessFromRestoredMs / 1000 > objectives.maxFailbackSeconds) {
    missed.push(`failback took ${seconds(input.firstSuccessFromRestoredMs)}, more than ${failbackFlag}`);
  }
  return missed;
}

/**
 * PASSED only when something was proved and every objective held; INCONCLUSIVE when the failing
 * cluster carried too little of the baseline for the drill to show anything (a wrong --target,
 * --service or --fail); FAILED when an objective was missed; ABORTED when the drill did not finish.
 */
export function judge(input: VerdictInput, missed: readonly string[]): { verdict: DrillVerdict; reason: string } {
  if (input.aborted !== undefined) return { verdict: 'ABORTED', reason: input.aborted };
  if (input.baselineRequests === 0) return { verdict: 'INCONCLUSIVE', reason: 'no baseline traffic was recorded' };
  if (input.baselineShareOfFailing < input.objectives.minBaselineShare) {
    const failed = input.baselineErrors > 0 ? `; ${input.baselineErrors} of ${input.baselineRequests} baseline requests failed${input.baselineTopCause ? ` (${input.baselineTopCause})` : ''}` : '';
    return {
      verdict: 'INCONCLUSIVE',
      reason: `${input.fail} served ${pct(input.baselineShareOfFailing)} of the baseline traffic, less than the ${pct(input.objectives.minBaselineShare)} a drill needs to prove anything${failed}`,
    };
  }
  if (missed.length > 0) return { verdict: 'FAILED', reason: missed.length === 1 ? (missed[0] as string) : `${missed[0]} (and ${missed.length - 1} more)` };
  const failback = input.firstSuccessFromRestoredMs === null ? '' : `, back after ${seconds(input.firstSuccessFromRestoredMs)}`;
  return {
    verdict: 'PASSED',
    reason: `${input.fail} served ${pct(input.baselineShareOfFailing)} of the baseline; 100% failed over after ${seconds(input.fullFailoverMs ?? 0)}${failback}; ${input.totalErrors} errors (at most ${input.objectives.maxErrors})`,
  };
}
