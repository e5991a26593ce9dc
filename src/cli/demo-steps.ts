/**
 * Steps that the loopback demo and the lab demo share: both apply the example policies and wait
 * for the federation between drills.
 */
import { ErrorCodes, FedgateError } from '../core/errors.js';
import type { AdminConnection } from './controller-api.js';
import type { CliIo } from './io.js';
import { validateFiles } from './policy.js';
import { renderStatus, statusView } from './status.js';

/** Polls until `check` holds; the demo waits on conditions, never on fixed sleeps. */
export async function eventually(check: () => Promise<boolean>, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline) throw new FedgateError(ErrorCodes.UNAVAILABLE, `timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Applies the example policies through the controller and waits until every gateway holds them and the catalog. */
export async function applyExamplePolicies(connection: AdminConnection, policiesDir: string, io: CliIo, elapsed: () => string): Promise<void> {
  const { read, result, errors } = validateFiles([policiesDir]);
  if (errors.length > 0) throw new FedgateError(ErrorCodes.POLICY_INVALID, `the example policies do not validate: ${errors.map((e) => e.message).join('; ')}`);
  const applied = await connection.call.putPolicies({
    policies: read.inputs.map((input) => ({ key: '', kind: '', namespace: '', name: '', json: JSON.stringify(input.document), revision: 0 })),
    sources: read.origins,
  });
  io.out(`[${elapsed()}] example policies applied: ${read.inputs.length} documents, policy revision ${applied.revision}${result.warnings.length > 0 ? ` (${result.warnings.length} warnings)` : ''}`);
  await eventually(async () => {
    const status = await connection.call.status({});
    const view = statusView(status);
    const everywhere = (service: string, count: number): boolean => view.services.find((s) => s.service === service)?.clusters.length === count;
    return view.clusters.every((c) => c.connected && c.policies.behind === 0 && c.catalog.behind === 0) && everywhere('default/payments', 2) && everywhere('default/greeter', 2);
  }, 'every gateway to hold the catalog and the policies');
  io.out(`[${elapsed()}] federation converged:`);
  io.out('');
  for (const line of renderStatus(statusView(await connection.call.status({})))) io.out(`  ${line}`);
  io.out('');
}

/** The next drill starts from a converged federation again. */
export async function waitActive(connection: AdminConnection): Promise<void> {
  await eventually(async () => statusView(await connection.call.status({})).clusters.every((c) => c.connected && c.state === 'active'), 'every cluster active and connected after the drill');
}
