import type { Command } from 'commander';
import { ConfigError, formatIssue } from '../core/errors.js';
import { loadFederationDirectory } from '../config/load.js';
import { validatePolicySet } from '../policy/policy-set.js';
import type { CliIo } from './io.js';

export function registerConfigCommand(program: Command, io: CliIo): void {
  const config = program.command('config').description('federation-config files');
  config
    .command('validate')
    .description('validate federation.yaml, clusters/*.yaml and policies/*.yaml; every error with file:line: path')
    .argument('[dir]', 'federation-config directory', 'federation-config')
    .action((dir: string) => {
      const loaded = loadFederationDirectory(dir);
      const policies = validatePolicySet(loaded.policyDocuments.map((doc) => ({ document: doc.value, source: doc.source, lineOf: (path) => doc.lineOf(path) })));
      if (policies.issues.length > 0) throw new ConfigError([...policies.issues, ...policies.warnings]);
      for (const warning of policies.warnings) io.err(`warning: ${formatIssue(warning)}`);
      io.out(`${dir}: federation "${loaded.federation.metadata.name}", ${loaded.clusters.length} clusters (${loaded.clusters.map((c) => c.metadata.name).join(', ')}), ${loaded.policyDocuments.length} policy documents: valid`);
    });
}
