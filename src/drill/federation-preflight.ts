import { get } from 'node:http';
import { errorMessage } from '../core/errors.js';
import type { StatusResponse } from '../proto/gen/fedgate.js';
import { runLoad, type LoadTarget } from './load-generator.js';
import { PreflightFailure, type PreflightCheck } from './preflight.js';

export interface FederationPreflightInput {
  controller: string;
  /** One Status call; every check after the first reads the answer of the first. */
  status: () => Promise<StatusResponse>;
  from: string;
  fail: string;
  serviceKey: string;
  /** `name.namespace`, as the operator typed it. */
  service: string;
  target: LoadTarget;
  /** The --from gateway's admin listener, when known: its health checks must see --fail alive. */
  fromAdmin?: string;
}

function httpJson(url: string, timeoutMs: number): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const request = get(url, { timeout: timeoutMs }, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (body += chunk));
      response.on('end', () => {
        try {
          resolve(JSON.parse(body));
        } catch (error) {
          reject(error instanceof Error ? error : new Error(String(error)));
        }
      });
    });
    request.on('timeout', () => request.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    request.on('error', reject);
  });
}

/**
 * The checks every drill makes before it sends traffic or changes anything: the controller
 * answers and can write, both clusters are members, active and connected, the failing cluster
 * exports the service and is not already failed, and the target answers for the service.
 */
export function federationPreflight(input: FederationPreflightInput): PreflightCheck[] {
  let status: StatusResponse | undefined;
  const current = (): StatusResponse => {
    if (!status) throw new PreflightFailure('no status from the controller');
    return status;
  };
  const cluster = (name: string, role: string): PreflightCheck => ({
    check: `cluster ${name}`,
    run: async () => {
      const found = current().clusters.find((c) => c.info?.name === name);
      if (!found?.info) {
        const names = current().clusters.map((c) => c.info?.name ?? '').filter(Boolean);
        throw new PreflightFailure(`${role} ${name} is not a member of federation ${current().federation} (members: ${names.join(', ') || 'none'})`);
      }
      if (found.info.state !== 'active') throw new PreflightFailure(`${role} ${name} is ${found.info.state}${found.info.stateReason ? ` (${found.info.stateReason})` : ''}, not active: a drill starts from a healthy federation`);
      if (!found.connected) throw new PreflightFailure(`${role} ${name}'s gateway is not connected to the controller: is it running?`);
      return `${role}: active, gateway connected`;
    },
  });
  return [
    {
      check: 'controller',
      run: async () => {
        try {
          status = await input.status();
        } catch (error) {
          throw new PreflightFailure(`the controller at ${input.controller} did not answer: ${errorMessage(error)}`);
        }
        if (!status.storeReady) throw new PreflightFailure(`the controller at ${input.controller} (replica ${status.replica}) cannot reach its store: a drill could not record or undo what it changes`);
        return `${input.controller} answers (replica ${status.replica}), store ready, catalog revision ${status.revision}`;
      },
    },
    cluster(input.from, '--from'),
    cluster(input.fail, '--fail'),
    {
      check: 'service',
      run: async () => {
        const service = current().services.find((s) => `${s.namespace}/${s.name}` === input.serviceKey);
        if (!service) throw new PreflightFailure(`no cluster exports ${input.serviceKey} (--service ${input.service})`);
        if (!service.clusters.includes(input.fail)) throw new PreflightFailure(`${input.fail} does not export ${input.serviceKey} (exported by ${service.clusters.join(', ')}): failing it shows nothing`);
        const blackholed = current().clusters.find((c) => c.info?.name === input.fail)?.info?.blackholedServices ?? [];
        if (blackholed.includes(input.serviceKey)) throw new PreflightFailure(`${input.serviceKey} is already blackholed at ${input.fail}; lift it first: fedgate cluster unblackhole ${input.fail} --service ${input.serviceKey}`);
        return `exported by ${service.clusters.join(', ')}`;
      },
    },
    {
      check: 'target',
      run: async () => {
        const probe = await runLoad(input.target, { rps: 50, durationMs: 200, timeoutMs: 3000 });
        const ok = probe.filter((s) => s.ok);
        const by: Record<string, number> = {};
        for (const s of ok) by[s.servedBy ?? 'unknown'] = (by[s.servedBy ?? 'unknown'] ?? 0) + 1;
        const servedBy = Object.entries(by).map(([c, n]) => `${c} ${n}`).join(', ');
        if (ok.length === 0) {
          const causes = [...new Set(probe.map((s) => s.error ?? `status ${s.status}`))].slice(0, 2).join('; ');
          throw new PreflightFailure(`--target ${input.target.address} did not answer for ${input.service}: ${probe.length} of ${probe.length} probe requests failed (${causes}); is it the ${input.from} gateway's outbound listener?`);
        }
        const note = (by[input.fail] ?? 0) === 0 ? ` — none by ${input.fail}: the drill will likely be INCONCLUSIVE` : '';
        return `${ok.length} of ${probe.length} probe requests through ${input.target.address} answered (${servedBy})${note}`;
      },
    },
    ...(input.fromAdmin
      ? [
          {
            check: `${input.from} gateway health`,
            run: async () => {
              let view: { health?: Record<string, { alive?: boolean; lastError?: string }> };
              try {
                view = (await httpJson(`http://${input.fromAdmin}/config`, 2000)) as typeof view;
              } catch (error) {
                throw new PreflightFailure(`the ${input.from} gateway's admin endpoint ${input.fromAdmin} did not answer (${errorMessage(error)}): give the right --from-admin, or leave it out (no detection time then)`);
              }
              const peer = view.health?.[input.fail];
              if (peer && peer.alive === false) throw new PreflightFailure(`${input.from}'s health checks already see ${input.fail} down (${peer.lastError ?? 'no reason'}): a drill starts from a healthy federation`);
              return `${input.fromAdmin}: ${input.fail} ${peer ? 'healthy' : 'not checked yet'}`;
            },
          },
        ]
      : []),
  ];
}

/**
 * After the drill: the restored cluster is back in the federation's status — active, its gateway
 * connected, every connected instance on the latest catalog and policy revisions. Status lags the
 * traffic by a Sync round trip, so this waits up to `waitMs` for it.
 */
export function restoredCheck(status: () => Promise<StatusResponse>, cluster: string, waitMs = 10_000): PreflightCheck {
  return {
    check: `cluster ${cluster} after the restore`,
    run: async () => {
      const deadline = Date.now() + waitMs;
      let problem = '';
      for (;;) {
        try {
          const current = await status();
          const found = current.clusters.find((c) => c.info?.name === cluster);
          const problems: string[] = [];
          if (!found?.info) problems.push('not a member any more');
          else {
            if (found.info.state !== 'active') problems.push(`${found.info.state}${found.info.stateReason ? ` (${found.info.stateReason})` : ''}`);
            if (!found.connected) problems.push('gateway not connected');
            if (found.appliedRevision < current.revision) problems.push(`catalog ${current.revision - found.appliedRevision} revisions behind`);
            if (found.appliedPolicyRevision < current.policyRevision) problems.push(`policies ${current.policyRevision - found.appliedPolicyRevision} revisions behind`);
          }
          if (problems.length === 0) return `active, gateway connected, catalog ${current.revision} and policies ${current.policyRevision} applied`;
          problem = problems.join(', ');
        } catch (error) {
          problem = `no status from the controller: ${errorMessage(error)}`;
        }
        if (Date.now() > deadline) throw new PreflightFailure(`${waitMs / 1000}s after the drill, status shows ${cluster}: ${problem}`);
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
    },
  };
}
