import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Command } from 'commander';
import { writeFileAtomicSync } from '../core/atomic-file.js';
import { parseDuration } from '../core/duration.js';
import { UsageError } from './cli-error.js';
import { withAdmin, withAdminTarget, type AdminTargetOptions } from './admin-target.js';
import type { CliIo } from './io.js';
import { outputOption, printResult } from './output.js';

export function registerTokenCommand(program: Command, io: CliIo): void {
  const token = program.command('token').description('one-time join tokens');
  withAdminTarget(
    token
      .command('create')
      .description('create a single-use, expiring join token for a cluster (stored hashed by the controller)')
      .requiredOption('--cluster <name>', 'the cluster that may join with it')
      .option('--ttl <duration>', 'lifetime', '1h')
      .option('--out <file>', 'write the token to a file (mode 0600) instead of printing it')
      .addOption(outputOption()),
  ).action(async (options: AdminTargetOptions & { cluster: string; ttl: string; out?: string; output: string }) => {
    let ttlMs: number;
    try {
      ttlMs = parseDuration(options.ttl);
    } catch (error) {
      throw new UsageError(`--ttl: ${(error as Error).message}`);
    }
    const created = await withAdmin(options, (admin) => admin.call.createToken({ cluster: options.cluster, ttlMs }));
    const expires = new Date(created.expiresAtMs).toISOString();
    if (options.out) {
      mkdirSync(dirname(options.out), { recursive: true });
      // Atomic, and 0600 even over an existing file that had a wider mode.
      writeFileAtomicSync(options.out, `${created.token}\n`, { mode: 0o600 });
    }
    // With --out, the document names the file instead of carrying the token (a secret kept out of logs).
    const data = { cluster: options.cluster, expiresAt: expires, singleUse: true, ...(options.out ? { file: options.out } : { token: created.token }) };
    printResult(io, options.output, data, () => {
      if (options.out) {
        io.out(`join token for ${options.cluster} written to ${options.out} (expires ${expires}, single use)`);
      } else {
        io.out(created.token);
        io.err(`join token for ${options.cluster}, expires ${expires}, single use`);
      }
    });
  });
}
