import { errorMessage } from '../core/errors.js';

/** One check made before a drill sends any traffic or changes anything. */
export interface PreflightResult {
  /** What was checked: "controller", "cluster us-east", "target", "drill lock" … */
  check: string;
  ok: boolean;
  /** What was found, one line: why it passed, or what is wrong and what to do. */
  detail: string;
}

/** A check: resolves with what it found, or throws `PreflightFailure` (any error fails it too). */
export interface PreflightCheck {
  check: string;
  run(): Promise<string>;
}

/** A check that did not pass; its message is the one line the operator reads. */
export class PreflightFailure extends Error {}

/**
 * Runs the checks in order and stops at the first that fails: later checks build on earlier
 * ones (no cluster list without a controller), and the one line that matters comes last.
 */
export async function runPreflight(checks: readonly PreflightCheck[], onResult: (result: PreflightResult) => void = () => undefined): Promise<{ ok: boolean; results: PreflightResult[] }> {
  const results: PreflightResult[] = [];
  for (const { check, run } of checks) {
    let result: PreflightResult;
    try {
      result = { check, ok: true, detail: await run() };
    } catch (error) {
      result = { check, ok: false, detail: errorMessage(error) };
    }
    results.push(result);
    onResult(result);
    if (!result.ok) return { ok: false, results };
  }
  return { ok: true, results };
}
