import { clustersetHost } from '../../model/catalog.js';

export type ConditionStatus = 'True' | 'False' | 'Unknown';

/** A `metav1.Condition` as written to ServiceExport status. */
export interface ExportCondition {
  type: string;
  status: ConditionStatus;
  reason: string;
  message: string;
  lastTransitionTime: string;
  observedGeneration?: number;
}

export type DesiredCondition = Omit<ExportCondition, 'lastTransitionTime'>;

/** The condition types fedgate owns on a ServiceExport; any other type is left as it is. */
export const OWN_CONDITION_TYPES: readonly string[] = ['Valid', 'Ready', 'Conflict'];

/** What the provider knows about one ServiceExport when it writes its status. */
export interface ExportStanding {
  namespace: string;
  name: string;
  generation?: number;
  /** Set when the object as it stands cannot be exported. */
  invalid?: { reason: string; message: string };
  /** True while some version of it is in the provider's state (the last good one after a bad edit). */
  exported: boolean;
  /** The federation controller's verdict; undefined until one arrives. */
  verdict?: { accepted: boolean; reason: string };
}

/**
 * The controller words a port conflict as "… in <cluster>, which exported the service first"
 * (model/clusterset.ts, the MCS oldest-export-wins rule); any other refusal is a rejected export.
 */
function isPortConflict(reason: string): boolean {
  return /exported the service first/.test(reason);
}

export function desiredConditions(standing: ExportStanding): DesiredCondition[] {
  const generation = standing.generation === undefined ? {} : { observedGeneration: standing.generation };
  const { invalid, exported, verdict } = standing;
  const valid: DesiredCondition = invalid
    ? { type: 'Valid', status: 'False', reason: invalid.reason, message: exported ? `${invalid.message}; the last valid version stays exported` : invalid.message, ...generation }
    : { type: 'Valid', status: 'True', reason: 'Valid', message: `exported as ${clustersetHost(standing.namespace, standing.name)}`, ...generation };
  let ready: DesiredCondition;
  let conflict: DesiredCondition;
  if (!exported) {
    ready = { type: 'Ready', status: 'False', reason: 'NotExported', message: invalid?.message ?? 'not exported', ...generation };
    conflict = { type: 'Conflict', status: 'Unknown', reason: 'NotExported', message: 'not exported', ...generation };
  } else if (!verdict) {
    ready = { type: 'Ready', status: 'Unknown', reason: 'Pending', message: 'waiting for the federation controller to accept the export', ...generation };
    conflict = { type: 'Conflict', status: 'Unknown', reason: 'Pending', message: 'waiting for the federation controller', ...generation };
  } else if (verdict.accepted) {
    ready = { type: 'Ready', status: 'True', reason: 'Exported', message: 'accepted by the federation', ...generation };
    conflict = { type: 'Conflict', status: 'False', reason: 'NoConflict', message: 'no conflict with other clusters', ...generation };
  } else if (isPortConflict(verdict.reason)) {
    ready = { type: 'Ready', status: 'False', reason: 'Conflict', message: verdict.reason, ...generation };
    conflict = { type: 'Conflict', status: 'True', reason: 'PortConflict', message: verdict.reason, ...generation };
  } else {
    ready = { type: 'Ready', status: 'False', reason: 'Rejected', message: verdict.reason || 'rejected by the federation controller', ...generation };
    conflict = { type: 'Conflict', status: 'False', reason: 'NoConflict', message: 'rejected for another reason (see Ready)', ...generation };
  }
  return [valid, ready, conflict];
}

function rfc3339(now: Date): string {
  return now.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

function parseConditions(value: unknown): Array<Record<string, unknown>> {
  if (!Array.isArray(value)) return [];
  return value.filter((c): c is Record<string, unknown> => c !== null && typeof c === 'object' && typeof (c as { type?: unknown }).type === 'string');
}

/**
 * The status conditions to write: other controllers' conditions kept, ours replaced by `desired`.
 * `lastTransitionTime` moves only when a condition's status changes (metav1.Condition semantics);
 * `changed` is false when nothing but ordering would differ, so an unchanged export is not
 * rewritten (and our own watch does not bring us back in a loop).
 */
export function mergeConditions(existing: unknown, desired: readonly DesiredCondition[], now: Date): { conditions: ExportCondition[]; changed: boolean } {
  const current = parseConditions(existing);
  let changed = false;
  const ours = desired.map((want): ExportCondition => {
    const have = current.filter((c) => c.type === want.type);
    if (have.length !== 1) changed = true;
    const found = have[0];
    const sameStatus = found?.status === want.status && typeof found.lastTransitionTime === 'string' && found.lastTransitionTime !== '';
    if (!found || found.status !== want.status || found.reason !== want.reason || found.message !== want.message || found.observedGeneration !== want.observedGeneration || !sameStatus) changed = true;
    return { ...want, lastTransitionTime: sameStatus ? (found.lastTransitionTime as string) : rfc3339(now) };
  });
  const foreign = current.filter((c) => !OWN_CONDITION_TYPES.includes(c.type as string)) as unknown as ExportCondition[];
  return { conditions: [...foreign, ...ours], changed };
}
