import type { Command } from 'commander';
import { formatIssue, type InputIssue } from '../core/errors.js';
import { inspectFederationDirectory } from '../config/load.js';
import { validatePolicySet } from '../policy/policy-set.js';
import { ExitWith } from './cli-error.js';
import type { CliIo } from './io.js';
import { outputOption, printResult } from './output.js';
import { issueJson } from './policy.js';

function byFile(a: InputIssue, b: InputIssue): number {
  return (a.source ?? '').localeCompare(b.source ?? '') || (a.line ?? 0) - (b.line ?? 0);
}

export function registerConfigCommand(program: Command, io: CliIo): void {
  const config = program.command('config').description('federation-config files');
  config
    .command('validate')
    .description('validate federation.yaml, clusters/*.yaml and policies/*.yaml; every error with file:line: path; exit code 1 on errors')
    .argument('[dir]', 'federation-config directory', 'federation-config')
    .addOption(outputOption())
    .action((dir: string, options: { output: string }) => {
      const report = inspectFederationDirectory(dir);
      // The policies are a set of their own: a broken cluster file must not hide their problems.
      // Trust domains are checked against the members only when every cluster file could be read.
      const complete = report.failedClusters.length === 0;
      const policies = validatePolicySet(
        report.policyDocuments.map((doc) => ({ document: doc.value, source: doc.source, lineOf: (path) => doc.lineOf(path) })),
        {
          ...(report.federation ? { trustDomainAliases: report.federation.spec.trustDomainAliases } : {}),
          ...(complete ? { memberTrustDomains: report.clusters.map((c) => c.spec.trustDomain) } : {}),
        },
      );
      const all = [...report.issues, ...policies.issues, ...policies.warnings];
      const errors = all.filter((i) => i.severity !== 'warning').sort(byFile);
      const warnings = all.filter((i) => i.severity === 'warning').sort(byFile);
      const summary = {
        valid: errors.length === 0,
        directory: dir,
        federation: report.federation?.metadata.name,
        clusters: report.clusters.map((c) => c.metadata.name),
        invalidClusters: report.failedClusters,
        policyDocuments: report.policyDocuments.length,
        errors: errors.map(issueJson),
        warnings: warnings.map(issueJson),
      };
      printResult(io, options.output, summary, () => {
        for (const e of errors) io.err(`error: ${formatIssue(e)}`);
        for (const w of warnings) io.err(`warning: ${formatIssue(w)}`);
        const clusters = `${report.clusters.length + report.failedClusters.length} clusters (${[...report.clusters.map((c) => c.metadata.name), ...report.failedClusters].sort().join(', ')})`;
        const federation = report.federation ? `federation "${report.federation.metadata.name}"` : 'no valid federation.yaml';
        io.out(`${dir}: ${federation}, ${clusters}, ${report.policyDocuments.length} policy documents: ${errors.length === 0 ? `valid${warnings.length > 0 ? ` (${warnings.length} warnings)` : ''}` : `${errors.length} errors, ${warnings.length} warnings`}`);
      });
      if (errors.length > 0) throw new ExitWith(1);
    });
}
