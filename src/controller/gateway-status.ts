import type { GatewayInstanceStatus } from '../proto/gen/fedgate.js';
import type { GatewayStatusRecord } from '../store/store.js';
import type { GatewaySession } from './sync/gateway-session.js';

/** Instances neither connected nor heard from for this long leave the status (and the store). */
export const STATUS_RETENTION_MS = 3_600_000;

/**
 * How often a replica refreshes the status and lease of a gateway whose stream it holds: three
 * times per lease TTL, so one lost write never lets a live cluster's lease expire.
 */
export function heartbeatInterval(leaseTtlMs: number): number {
  return Math.max(200, Math.floor(leaseTtlMs / 3));
}

export interface ClusterInstances {
  connected: boolean;
  lastSeenMs: number;
  appliedRevision: number;
  appliedPolicyRevision: number;
  lastNack: string;
  lastNackRevision: number;
  replica: string;
  instances: GatewayInstanceStatus[];
}

/**
 * What a stored instance record is worth. A record saved as connected is only believed while the
 * replica that holds the stream is alive and keeps refreshing it: a replica that died (or one
 * whose records were loaded from a persistent store after a restart) leaves `connected: true`
 * behind, which is `stale`. This replica's own records never count: its live sessions say exactly
 * which instances it holds.
 */
export function instanceState(
  record: { connected: boolean; lastSeen: number; replica: string },
  view: { now: number; leaseTtlMs: number; replicaId: string; liveReplicas: ReadonlySet<string> },
): 'connected' | 'stale' | 'disconnected' {
  if (!record.connected) return 'disconnected';
  if (record.replica === view.replicaId || !view.liveReplicas.has(record.replica)) return 'stale';
  return view.now - record.lastSeen > view.leaseTtlMs ? 'stale' : 'connected';
}

/**
 * Sums up one cluster over its gateway instances. Live sessions on this replica win over stored
 * records (which can be up to one heartbeat old); records of other replicas fill in the rest,
 * believed as connected only while they are fresh (see `instanceState`).
 * A cluster has applied a revision only when every connected instance has, so the lowest applied
 * revision among connected instances is reported, and any connected instance's refusal is shown
 * (policy refusals first, since they persist until a later set is applied).
 */
export function summarizeCluster(
  cluster: string,
  records: readonly GatewayStatusRecord[],
  sessions: ReadonlyMap<string, GatewaySession> | undefined,
  replicaId: string,
  now: number,
  leaseTtlMs: number,
  liveReplicas: ReadonlySet<string>,
): ClusterInstances {
  const byInstance = new Map<string, GatewayInstanceStatus>();
  for (const record of records) {
    if (record.cluster !== cluster) continue;
    const state = instanceState(record, { now, leaseTtlMs, replicaId, liveReplicas });
    byInstance.set(record.instance, {
      instance: record.instance,
      connected: state === 'connected',
      state,
      lastSeenMs: record.lastSeen,
      appliedRevision: record.appliedRevision,
      appliedPolicyRevision: record.appliedPolicyRevision,
      lastNack: record.lastNack,
      lastNackRevision: record.lastNackRevision,
      replica: record.replica,
      version: record.version,
    });
  }
  for (const session of sessions?.values() ?? []) {
    if (session.isClosed) continue;
    byInstance.set(session.instance, {
      instance: session.instance,
      connected: true,
      state: 'connected',
      lastSeenMs: session.lastSeen,
      appliedRevision: session.ackedRevision,
      appliedPolicyRevision: session.ackedPolicyRevision,
      lastNack: session.lastNack,
      lastNackRevision: session.lastNackRevision,
      replica: replicaId,
      version: session.version,
    });
  }
  const instances = [...byInstance.values()]
    .filter((i) => i.connected || now - i.lastSeenMs <= STATUS_RETENTION_MS)
    .sort((a, b) => a.instance.localeCompare(b.instance));
  const connected = instances.filter((i) => i.connected);
  const latest = [...instances].sort((a, b) => b.lastSeenMs - a.lastSeenMs)[0];
  // With none connected the cluster is described by the instance heard from last.
  const considered = connected.length > 0 ? connected : latest ? [latest] : [];
  const refusals = considered.filter((i) => i.lastNack !== '');
  const refusal = refusals.find((i) => i.lastNack.startsWith('policy:')) ?? refusals[0];
  return {
    connected: connected.length > 0,
    lastSeenMs: latest?.lastSeenMs ?? 0,
    appliedRevision: considered.length > 0 ? Math.min(...considered.map((i) => i.appliedRevision)) : 0,
    appliedPolicyRevision: considered.length > 0 ? Math.min(...considered.map((i) => i.appliedPolicyRevision)) : 0,
    lastNack: refusal?.lastNack ?? '',
    lastNackRevision: refusal?.lastNackRevision ?? 0,
    replica: latest?.replica ?? '',
    instances,
  };
}
