import type { Command } from 'commander';
import { toYaml } from '../config/yaml-source.js';
import type { StatusResponse } from '../proto/gen/fedgate.js';
import { withAdmin, withAdminTarget, type AdminTargetOptions } from './admin-target.js';
import { UsageError } from './cli-error.js';
import type { CliIo } from './io.js';

/** The federation as `fedgate status -o json|yaml` prints it: stable field names for scripts. */
export interface FederationStatusView {
  federation: string;
  epoch: string;
  revision: number;
  policyRevision: number;
  storeReady: boolean;
  replica: string;
  policyConvergence: { latest: number; inForce: string[]; behind: string[]; refused: string[] };
  clusters: Array<{
    name: string;
    region: string;
    zone: string;
    state: string;
    stateReason: string;
    connected: boolean;
    lastSeen: string | undefined;
    catalog: { applied: number; behind: number };
    policies: { applied: number; behind: number; refused?: { revision: number; reason: string } };
    /** A catalog update the gateway refused (not a policy refusal). */
    lastRefusal?: { revision: number; reason: string };
    exports: number;
    /** Services its gateway does not answer for (a blackhole drill, or `fedgate cluster blackhole`). */
    blackholed: string[];
    /** The cluster's gateway processes (replicas), connected now or seen within the last hour. */
    instances: Array<{ instance: string; connected: boolean; state: 'connected' | 'stale' | 'disconnected'; lastSeen: string | undefined; catalog: number; policies: number; version: string; replica: string; refusal?: string }>;
  }>;
  services: Array<{ service: string; clusters: string[]; ready: number; total: number; ports: string[]; conflicts: Array<{ cluster: string; reason: string }> }>;
  audit: Array<{ at: string; actor: string; action: string; target: string; detail: string }>;
}

export function statusView(s: StatusResponse): FederationStatusView {
  const clusters = s.clusters.map((c) => {
    const info = c.info;
    const policyNack = c.lastNack.startsWith('policy:') ? { revision: c.lastNackRevision, reason: c.lastNack.slice('policy:'.length).trim() } : undefined;
    const otherNack = c.lastNack !== '' && !policyNack ? { revision: c.lastNackRevision, reason: c.lastNack } : undefined;
    return {
      name: info?.name ?? '',
      region: info?.region ?? '',
      zone: info?.zone ?? '',
      state: info?.state ?? '',
      stateReason: info?.stateReason ?? '',
      connected: c.connected,
      lastSeen: c.lastSeenMs > 0 ? new Date(c.lastSeenMs).toISOString() : undefined,
      catalog: { applied: c.appliedRevision, behind: Math.max(0, s.revision - c.appliedRevision) },
      policies: { applied: c.appliedPolicyRevision, behind: Math.max(0, s.policyRevision - c.appliedPolicyRevision), ...(policyNack ? { refused: policyNack } : {}) },
      ...(otherNack ? { lastRefusal: otherNack } : {}),
      exports: c.exports,
      blackholed: info?.blackholedServices ?? [],
      instances: c.instances.map((i) => ({
        instance: i.instance,
        connected: i.connected,
        state: i.connected ? ('connected' as const) : i.state === 'stale' ? ('stale' as const) : ('disconnected' as const),
        lastSeen: i.lastSeenMs > 0 ? new Date(i.lastSeenMs).toISOString() : undefined,
        catalog: i.appliedRevision,
        policies: i.appliedPolicyRevision,
        version: i.version,
        replica: i.replica,
        ...(i.lastNack ? { refusal: i.lastNack } : {}),
      })),
    };
  });
  const active = clusters.filter((c) => c.state !== 'left');
  return {
    federation: s.federation,
    epoch: s.epoch,
    revision: s.revision,
    policyRevision: s.policyRevision,
    storeReady: s.storeReady,
    replica: s.replica,
    policyConvergence: {
      latest: s.policyRevision,
      inForce: active.filter((c) => c.policies.behind === 0).map((c) => c.name),
      behind: active.filter((c) => c.policies.behind > 0).map((c) => c.name),
      refused: active.filter((c) => c.policies.refused).map((c) => c.name),
    },
    clusters,
    services: s.services.map((svc) => ({
      service: `${svc.namespace}/${svc.name}`,
      clusters: svc.clusters,
      ready: svc.readyEndpoints,
      total: svc.totalEndpoints,
      ports: svc.ports.map((p) => `${p.name}:${p.port}/${p.protocol}`),
      conflicts: svc.conflicts.map((c) => ({ cluster: c.cluster, reason: c.reason })),
    })),
    audit: s.audit.map((a) => ({ at: new Date(a.atMs).toISOString(), actor: a.actor, action: a.action, target: a.target, detail: a.detail })),
  };
}

function table(rows: string[][]): string[] {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? [];
  return rows.map((r) => r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i] ?? 0))).join('  ').trimEnd());
}

function gatewayColumn(c: FederationStatusView['clusters'][number]): string {
  const live = c.instances.filter((i) => i.connected).length;
  if (c.instances.length <= 1) return c.connected ? 'connected' : 'disconnected';
  return `${live}/${c.instances.length} connected`;
}

export function renderStatus(view: FederationStatusView): string[] {
  const lines: string[] = [];
  lines.push(`federation ${view.federation}: catalog revision ${view.revision}, policy revision ${view.policyRevision}, store ${view.storeReady ? 'ready' : 'NOT READY'} (answered by ${view.replica})`);
  lines.push('');
  lines.push(
    ...table([
      ['CLUSTER', 'REGION/ZONE', 'STATE', 'GATEWAY', 'CATALOG', 'POLICIES', 'EXPORTS'],
      ...view.clusters.map((c) => [
        c.name,
        `${c.region}/${c.zone}`,
        c.state + (c.stateReason && c.state !== 'active' ? ` (${c.stateReason})` : ''),
        gatewayColumn(c),
        c.catalog.behind === 0 ? `${c.catalog.applied}` : `${c.catalog.applied} (behind ${c.catalog.behind})`,
        c.policies.refused ? `${c.policies.applied} REFUSED ${c.policies.refused.revision}` : c.policies.behind === 0 ? `${c.policies.applied} in force` : `${c.policies.applied} (behind ${c.policies.behind})`,
        String(c.exports),
      ]),
    ]),
  );
  for (const c of view.clusters) {
    if (c.policies.refused) lines.push(`  ${c.name} refused policy revision ${c.policies.refused.revision}: ${c.policies.refused.reason}`);
    if (c.lastRefusal) lines.push(`  ${c.name} refused catalog revision ${c.lastRefusal.revision}: ${c.lastRefusal.reason}`);
    if (c.blackholed.length > 0) lines.push(`  ${c.name} BLACKHOLED (its gateway does not answer): ${c.blackholed.join(', ')} — lift with "fedgate cluster unblackhole ${c.name} --service …"`);
    // Replicas that disagree are worth a line each; one instance is already the cluster's row.
    if (c.instances.length > 1) {
      for (const i of c.instances) {
        lines.push(`  ${c.name} gateway ${i.instance || '(unnamed)'}: ${i.connected ? 'connected' : i.state === 'stale' ? `stale (not heard from since ${i.lastSeen ?? '?'})` : `gone since ${i.lastSeen ?? '?'}`}, catalog ${i.catalog}, policies ${i.policies}${i.refusal ? `, refused: ${i.refusal}` : ''}`);
      }
    }
  }
  const p = view.policyConvergence;
  const total = p.inForce.length + p.behind.length;
  lines.push('');
  lines.push(
    p.behind.length === 0
      ? `policies: revision ${p.latest} in force on all ${total} clusters`
      : `policies: revision ${p.latest} in force on ${p.inForce.length} of ${total} clusters; behind: ${p.behind.join(', ')}${p.refused.length > 0 ? `; refused by ${p.refused.join(', ')}` : ''}`,
  );
  if (view.services.length > 0) {
    lines.push('');
    lines.push(
      ...table([
        ['SERVICE', 'CLUSTERS', 'READY/TOTAL', 'PORTS'],
        ...view.services.map((s) => [s.service + (s.conflicts.length > 0 ? ' (conflicts)' : ''), s.clusters.join(',') || '-', `${s.ready}/${s.total}`, s.ports.join(',')]),
      ]),
    );
    for (const s of view.services) for (const c of s.conflicts) lines.push(`  ${s.service}: export of ${c.cluster} not merged: ${c.reason}`);
  }
  if (view.audit.length > 0) {
    lines.push('');
    lines.push('recent operations:');
    for (const a of view.audit.slice(0, 10)) lines.push(`  ${a.at}  ${a.actor}  ${a.action} ${a.target}${a.detail ? ` — ${a.detail}` : ''}`);
  }
  return lines;
}

export function registerStatusCommand(program: Command, io: CliIo): void {
  withAdminTarget(
    program
      .command('status')
      .description('clusters (state, connection, applied catalog and policy revisions, refusals), services, recent operations')
      .option('-o, --output <format>', 'table, json or yaml', 'table'),
  ).action(async (options: AdminTargetOptions & { output: string }) => {
    if (!['table', 'json', 'yaml'].includes(options.output)) throw new UsageError(`-o must be table, json or yaml (got "${options.output}")`);
    const response = await withAdmin(options, (admin) => admin.call.status({}));
    const view = statusView(response);
    if (options.output === 'json') io.out(JSON.stringify(view, null, 2));
    else if (options.output === 'yaml') io.out(toYaml(view).trimEnd());
    else for (const line of renderStatus(view)) io.out(line);
  });
}
