import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import type { Command } from 'commander';
import { formatIssue, type InputIssue } from '../core/errors.js';
import { inspectFederationDirectory } from '../config/load.js';
import { parseYaml, readYamlFile, toYaml, type ParsedYaml } from '../config/yaml-source.js';
import { asWritten, listItems } from '../policy/envelope.js';
import type { PolicyInput } from '../policy/compile.js';
import { validatePolicySet, type PolicySetResult } from '../policy/policy-set.js';
import type { PolicyContext } from '../policy/trust-domains.js';
import { withAdmin, withAdminTarget, type AdminTargetOptions } from './admin-target.js';
import { ExitWith, UsageError } from './cli-error.js';
import type { CliIo } from './io.js';
import { outputOption, printResult } from './output.js';

/**
 * The trust domains policies are checked against here: the aliases of federation.yaml and the
 * clusters of clusters/*.yaml, read from a federation-config directory when there is one. A broken
 * file there leaves out what it would have told (never a false "matches no caller").
 */
export function localPolicyContext(dir: string | undefined): PolicyContext {
  if (!dir || !existsSync(join(dir, 'federation.yaml'))) return {};
  const report = inspectFederationDirectory(dir);
  const complete = report.failedClusters.length === 0 && report.clusters.length > 0;
  return {
    ...(report.federation ? { trustDomainAliases: report.federation.spec.trustDomainAliases } : {}),
    ...(complete ? { memberTrustDomains: report.clusters.map((c) => c.spec.trustDomain) } : {}),
  };
}

/** Files named on the command line: YAML files, and the *.yaml / *.yml files of directories (recursively, sorted). */
function policyFiles(paths: readonly string[]): string[] {
  const files: string[] = [];
  const walk = (dir: string): void => {
    for (const name of readdirSync(dir).sort()) {
      const path = join(dir, name);
      if (statSync(path).isDirectory()) walk(path);
      else if (/\.ya?ml$/.test(name)) files.push(path);
    }
  };
  for (const path of paths) {
    if (!existsSync(path)) throw new UsageError(`${path}: no such file or directory`);
    if (statSync(path).isDirectory()) walk(path);
    else files.push(path);
  }
  return files;
}

interface ReadSet {
  inputs: PolicyInput[];
  /** `file:line` where each input document starts. */
  origins: string[];
  syntax: InputIssue[];
  files: number;
}

function readPolicyFiles(paths: readonly string[]): ReadSet {
  const inputs: PolicyInput[] = [];
  const origins: string[] = [];
  const syntax: InputIssue[] = [];
  const add = (parsed: ParsedYaml): void => {
    syntax.push(...parsed.issues);
    for (const doc of parsed.documents) {
      // kubectl get … -o yaml: a List of objects as the API server holds them.
      const items = listItems(doc.value);
      if (items) {
        items.forEach((item, i) => {
          inputs.push({ document: asWritten(item), source: doc.source, lineOf: (path) => doc.lineOf(['items', i, ...path]) });
          origins.push(`${doc.source}:${doc.lineOf(['items', i]) ?? 1}`);
        });
        continue;
      }
      inputs.push({ document: asWritten(doc.value), source: doc.source, lineOf: (path) => doc.lineOf(path) });
      origins.push(`${doc.source}:${doc.lineOf([]) ?? 1}`);
    }
  };
  const files = policyFiles(paths.filter((p) => p !== '-'));
  if (paths.includes('-')) add(parseYaml('<stdin>', readFileSync(0, 'utf8')));
  for (const file of files) {
    const display = relative(process.cwd(), file) || file;
    add(readYamlFile(file, display.startsWith('..') ? file : display));
  }
  return { inputs, origins, syntax, files: files.length + (paths.includes('-') ? 1 : 0) };
}

/**
 * Validates files as a set that the controller may complete: a VirtualService subset defined only
 * by a DestinationRule stored there is a warning here (the controller has the last word).
 */
export function validateFiles(paths: readonly string[], context: PolicyContext = {}): { read: ReadSet; result: PolicySetResult; errors: InputIssue[] } {
  const read = readPolicyFiles(paths);
  const result = validatePolicySet(read.inputs, { unresolvedSubsets: 'warning', ...context });
  const errors = [...read.syntax, ...result.issues];
  if (read.inputs.length === 0 && errors.length === 0) errors.push({ path: '', message: `no policy documents in ${paths.join(', ')}` });
  return { read, result, errors };
}

function printIssues(io: CliIo, errors: readonly InputIssue[], warnings: readonly InputIssue[]): void {
  for (const e of errors) io.err(`error: ${formatIssue(e)}`);
  for (const w of warnings) io.err(`warning: ${formatIssue(w)}`);
}

export function issueJson(issue: InputIssue): Record<string, unknown> {
  return { source: issue.source, line: issue.line, path: issue.path, message: issue.message, text: formatIssue(issue) };
}

/**
 * The controller's warnings (the authoritative ones: it saw the stored set) in the words of the
 * local check where it found the same thing, since only the local check knows the field's line.
 */
export function appliedWarnings(fromController: readonly string[], local: readonly InputIssue[]): string[] {
  return fromController.map((text) => {
    const same = local.find((l) => text.endsWith(`${l.path ? `${l.path}: ` : ''}${l.message}`));
    return same ? formatIssue(same) : text;
  });
}

export function registerPolicyCommand(program: Command, io: CliIo): void {
  const policy = program.command('policy').description('federation-wide policies: validate, apply, list, delete');

  policy
    .command('validate')
    .description('validate policy documents (native and Istio); every error with file:line: path; exit code 1 on errors')
    .requiredOption('-f, --filename <path...>', 'YAML files or directories; - reads standard input (e.g. kubectl get … -o yaml)')
    .addOption(outputOption())
    .option('--federation-config <dir>', 'federation-config directory: trust-domain aliases and the clusters\' trust domains principals are checked against', 'federation-config')
    .action((options: { filename: string[]; output: string; federationConfig: string }) => {
      const { read, result, errors } = validateFiles(options.filename, localPolicyContext(options.federationConfig));
      const report = {
        valid: errors.length === 0,
        documents: result.policies.map((p) => p.key),
        compiled: result.set.policies.map((p) => ({ kind: p.kind, namespace: p.namespace, name: p.name, service: p.service, clusters: p.clusters, from: p.origin })),
        errors: errors.map(issueJson),
        warnings: result.warnings.map(issueJson),
      };
      printResult(io, options.output, report, () => {
        printIssues(io, errors, result.warnings);
        io.out(`${read.inputs.length} documents in ${read.files} files: ${errors.length} errors, ${result.warnings.length} warnings${errors.length === 0 ? ' — valid' : ''}`);
      });
      if (errors.length > 0) throw new ExitWith(1);
    });

  withAdminTarget(
    policy
      .command('apply')
      .description('validate documents here, then send them to the controller (validated again there with the stored set) as one new policy revision')
      .requiredOption('-f, --filename <path...>', 'YAML files or directories; - reads standard input (e.g. kubectl get … -o yaml)')
      .addOption(outputOption()),
  ).action(async (options: AdminTargetOptions & { filename: string[]; output: string }) => {
    const { read, result, errors } = validateFiles(options.filename, localPolicyContext(options.federationConfig));
    if (errors.length > 0) {
      printIssues(io, errors, result.warnings);
      io.err(`nothing applied: ${errors.length} errors`);
      throw new ExitWith(1);
    }
    const response = await withAdmin(options, (admin) =>
      admin.call.putPolicies({
        policies: read.inputs.map((input) => ({ key: '', kind: '', namespace: '', name: '', json: JSON.stringify(input.document), revision: 0 })),
        sources: read.origins,
      }),
    );
    const warnings = appliedWarnings(response.warnings, result.warnings);
    printResult(io, options.output, { revision: response.revision, documents: result.policies.map((p) => p.key), warnings }, () => {
      for (const warning of warnings) io.err(`warning: ${warning}`);
      io.out(`applied ${read.inputs.length} documents: policy revision ${response.revision}`);
      io.out('check where it is in force with "fedgate status"');
    });
  });

  withAdminTarget(policy.command('list').description('the stored policy set').addOption(outputOption().default('text', 'text; yaml prints the documents themselves'))).action(
    async (options: AdminTargetOptions & { output: string }) => {
      const output = options.output;
      const response = await withAdmin(options, (admin) => admin.call.listPolicies({}));
      if (output === 'text') {
        io.out(`policy revision ${response.revision}, ${response.policies.length} documents`);
        for (const p of response.policies) io.out(`  ${p.key}  (revision ${p.revision})`);
      } else if (output === 'json') {
        io.out(JSON.stringify({ revision: response.revision, policies: response.policies.map((p) => ({ key: p.key, revision: p.revision, document: JSON.parse(p.json) as unknown })) }, null, 2));
      } else {
        io.out(response.policies.map((p) => toYaml(JSON.parse(p.json)).trimEnd()).join('\n---\n'));
      }
    },
  );

  withAdminTarget(policy.command('delete <key>').description('delete one stored document (key as listed: Kind/namespace/name)').addOption(outputOption())).action(async (key: string, options: AdminTargetOptions & { output: string }) => {
    if (!/^[A-Za-z]+\/[a-z0-9-]+\/[a-z0-9.-]+$/.test(key)) throw new UsageError(`"${key}" is not a policy key (Kind/namespace/name, as "fedgate policy list" shows)`);
    const response = await withAdmin(options, (admin) => admin.call.deletePolicy({ key }));
    printResult(io, options.output, { key, revision: response.revision, message: response.message }, () => io.out(response.message));
  });
}
