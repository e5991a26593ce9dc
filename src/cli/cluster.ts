import type { Command } from 'commander';
import { withAdmin, withAdminTarget, type AdminTargetOptions } from './admin-target.js';
import type { CliIo } from './io.js';
import { outputOption, printResult } from './output.js';

export function registerClusterCommand(program: Command, io: CliIo): void {
  const cluster = program.command('cluster').description('federation members: drain, undrain, remove, blackhole, unblackhole');
  const simple = (name: 'drain' | 'undrain' | 'remove', description: string): void => {
    withAdminTarget(cluster.command(`${name} <cluster>`).description(description).option('--reason <text>', 'why (recorded in the audit log)', '').addOption(outputOption())).action(
      async (target: string, options: AdminTargetOptions & { reason: string; output: string }) => {
        const response = await withAdmin(options, (admin) => {
          const request = { cluster: target, reason: options.reason };
          if (name === 'drain') return admin.call.drainCluster(request);
          if (name === 'undrain') return admin.call.undrainCluster(request);
          return admin.call.removeCluster(request);
        });
        printResult(io, options.output, { cluster: target, action: name, revision: response.revision, message: response.message }, () => io.out(response.message));
      },
    );
  };
  simple('drain', 'stop sending new requests to a cluster; in-flight requests finish (reversible with undrain)');
  simple('undrain', 'let a drained cluster take traffic again');
  simple('remove', 'remove a cluster from the federation; its bundle leaves every gateway');

  // What a blackhole drill does, by hand: for game days, or to lift a blackhole a drill left behind.
  for (const enabled of [true, false]) {
    withAdminTarget(
      cluster
        .command(`${enabled ? 'blackhole' : 'unblackhole'} <cluster>`)
        .description(enabled ? "make a cluster's gateway stop answering for one service (audited; undo with unblackhole)" : "let a cluster's gateway answer for a blackholed service again")
        .requiredOption('--service <namespace/name>', 'the clusterset service')
        .option('--reason <text>', 'why (recorded in the audit log)', '')
        .addOption(outputOption()),
    ).action(async (target: string, options: AdminTargetOptions & { service: string; reason: string; output: string }) => {
      const response = await withAdmin(options, (admin) => admin.call.blackholeService({ cluster: target, service: options.service, enabled, reason: options.reason || (enabled ? 'blackholed by operator' : 'blackhole lifted by operator') }));
      printResult(io, options.output, { cluster: target, service: options.service, blackholed: enabled, revision: response.revision, message: response.message }, () => io.out(response.message));
    });
  }
}
