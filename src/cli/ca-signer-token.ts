import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Command } from 'commander';
import { writeFileAtomicSync } from '../core/atomic-file.js';
import { parseDuration } from '../core/duration.js';
import { BootstrapTokens } from '../pki/signer/bootstrap-tokens.js';
import { UsageError } from './cli-error.js';
import type { CliIo } from './io.js';

/** `fedgate ca signer-token create`: a one-time credential for a gateway's first certificate on a plain host. */
export function registerCaSignerTokenCommand(ca: Command, io: CliIo): void {
  ca.command('signer-token')
    .description('one-time tokens for "fedgate ca serve --bootstrap-tokens" (plain hosts without Kubernetes ServiceAccounts)')
    .command('create')
    .description("create a single-use token the gateway spends on its first certificate (it renews with that certificate afterwards)")
    .requiredOption('--tokens <dir>', "the signer's --bootstrap-tokens directory")
    .option('--ttl <duration>', 'lifetime', '1h')
    .option('--out <file>', 'write the token to a file (mode 0600) instead of printing it')
    .action((options: { tokens: string; ttl: string; out?: string }) => {
      let ttlMs: number;
      try {
        ttlMs = parseDuration(options.ttl);
      } catch (error) {
        throw new UsageError(`--ttl: ${(error as Error).message}`);
      }
      const created = new BootstrapTokens(options.tokens).create(ttlMs);
      const expires = created.expiresAt.toISOString();
      if (options.out) {
        mkdirSync(dirname(options.out), { recursive: true });
        writeFileAtomicSync(options.out, `${created.token}\n`, { mode: 0o600 });
        io.out(`signer bootstrap token ${created.id} written to ${options.out} (expires ${expires}, single use)`);
      } else {
        io.out(created.token);
        io.err(`signer bootstrap token ${created.id}, expires ${expires}, single use`);
      }
    });
}
