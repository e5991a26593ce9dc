import { existsSync, readdirSync, statSync } from 'node:fs';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { ConfigError, type InputIssue } from '../core/errors.js';
import { clusterShape, type ClusterConfig } from './cluster-config.js';
import { federationShape, type FederationConfig } from './federation-config.js';
import { deepFreeze, formatPath, type FieldPath, type Shape, type ShapeIssue } from './shape.js';
import { readYamlFile, YamlDocument } from './yaml-source.js';

/** An environment variable that overrides one field of a config file. */
interface EnvOverride {
  variable: string;
  path: FieldPath;
}

/** Documented in the README's configuration reference; keep the two in step. */
export const FEDERATION_ENV: readonly EnvOverride[] = [
  { variable: 'FEDGATE_STORE_URL', path: ['spec', 'store', 'url'] },
  { variable: 'REDIS_URL', path: ['spec', 'store', 'url'] },
  { variable: 'FEDGATE_STORE_DATA_DIR', path: ['spec', 'store', 'dataDir'] },
  { variable: 'FEDGATE_CONTROLLER_LISTEN', path: ['spec', 'controller', 'listen'] },
  { variable: 'FEDGATE_CONTROLLER_JOIN_LISTEN', path: ['spec', 'controller', 'joinListen'] },
  { variable: 'FEDGATE_CONTROLLER_ADMIN', path: ['spec', 'controller', 'admin'] },
];

export const CLUSTER_ENV: readonly EnvOverride[] = [
  { variable: 'FEDGATE_CONTROLLER_ADDRESS', path: ['spec', 'controller', 'address'] },
  { variable: 'FEDGATE_TOKEN_FILE', path: ['spec', 'controller', 'tokenFile'] },
  { variable: 'FEDGATE_STATE_DIR', path: ['spec', 'gateway', 'stateDir'] },
  { variable: 'FEDGATE_GATEWAY_INBOUND', path: ['spec', 'gateway', 'inbound'] },
  { variable: 'FEDGATE_GATEWAY_OUTBOUND', path: ['spec', 'gateway', 'outbound'] },
  { variable: 'FEDGATE_GATEWAY_ADMIN', path: ['spec', 'gateway', 'admin'] },
];

export interface LoadOptions {
  /** Environment to read overrides from; `{}` disables overrides. */
  env?: NodeJS.ProcessEnv;
  /** Directory file names are shown relative to in errors (the federation-config directory). */
  displayRoot?: string;
}

function setAt(target: Record<string, unknown>, path: FieldPath, value: unknown): void {
  let node: Record<string, unknown> = target;
  for (const part of path.slice(0, -1)) {
    const next = node[part as string];
    if (next === null || typeof next !== 'object' || Array.isArray(next)) node[part as string] = {};
    node = node[part as string] as Record<string, unknown>;
  }
  node[path[path.length - 1] as string] = value;
}

function startsWith(path: FieldPath, prefix: FieldPath): boolean {
  return prefix.length <= path.length && prefix.every((part, index) => path[index] === part);
}

/**
 * Validates one document against a shape, with environment overrides applied first. Issues on an
 * overridden field name the variable instead of the file, since that is where the bad value lives.
 */
function validateDocument<T>(document: YamlDocument, shape: Shape<T>, overrides: readonly EnvOverride[], env: NodeJS.ProcessEnv): { value?: T; issues: InputIssue[] } {
  const raw = document.value;
  const applied: EnvOverride[] = [];
  if (raw !== null && typeof raw === 'object' && !Array.isArray(raw)) {
    for (const override of overrides) {
      const value = env[override.variable];
      if (value !== undefined && value !== '') {
        setAt(raw as Record<string, unknown>, override.path, value);
        applied.push(override);
      }
    }
  }
  const shapeIssues: ShapeIssue[] = [];
  const value = shape.check(raw, [], shapeIssues);
  const issues = document.locate(shapeIssues, formatPath).map((issue, index) => {
    const path = (shapeIssues[index] as ShapeIssue).path;
    const override = applied.find((o) => startsWith(path, o.path));
    return override ? { source: `env ${override.variable}`, path: issue.path, message: issue.message } : issue;
  });
  return { value: issues.some((i) => i.severity !== 'warning') ? undefined : value, issues };
}

function singleDocument(file: string, display: string): { document?: YamlDocument; issues: InputIssue[] } {
  const parsed = readYamlFile(file, display);
  if (parsed.issues.length > 0) return { issues: parsed.issues };
  if (parsed.documents.length === 0) return { issues: [{ source: display, line: 1, path: '', message: 'file is empty' }] };
  if (parsed.documents.length > 1) {
    return { issues: [{ source: display, path: '', message: `expected one document, found ${parsed.documents.length}` }] };
  }
  return { document: parsed.documents[0] as YamlDocument, issues: [] };
}

function display(file: string, root: string | undefined): string {
  return root ? relative(root, file) : file;
}

/** Loads `federation.yaml`: parsed, overridden from the environment, validated with defaults, frozen. */
export function loadFederationFile(file: string, options: LoadOptions = {}): FederationConfig {
  return loadFederationDocument(file, options).config;
}

function loadFederationDocument(file: string, options: LoadOptions): { config: FederationConfig; document: YamlDocument } {
  const absolute = resolve(file);
  const shown = display(absolute, options.displayRoot);
  const { document, issues } = singleDocument(absolute, shown);
  if (!document) throw new ConfigError(issues);
  const result = validateDocument(document, federationShape, FEDERATION_ENV, options.env ?? process.env);
  const problems = [...result.issues];
  if (result.value) problems.push(...federationFileChecks(result.value, document));
  if (!result.value || problems.some((p) => p.severity !== 'warning')) throw new ConfigError(problems);
  return { config: deepFreeze(finishFederation(result.value, absolute)), document };
}

function federationFileChecks(value: NonNullable<ReturnType<typeof federationShape.check>>, document: YamlDocument): InputIssue[] {
  const issues: InputIssue[] = [];
  value.spec.trustDomainAliases.forEach((entry, index) => {
    if (entry.alias === value.spec.trustDomain) {
      const path: FieldPath = ['spec', 'trustDomainAliases', index];
      issues.push({ source: document.source, line: document.lineOf(path), path: formatPath(path), message: `"${entry.alias}" is the federation's own trust domain (the controller's and operators' identities), not a caller's` });
    }
  });
  return issues;
}

/** Validates a federation config given as an object (embedded defaults, tests). */
export function federationFromObject(value: unknown, source = '<embedded federation>', baseDir = process.cwd()): FederationConfig {
  const document = YamlDocument.fromValue(source, structuredClone(value));
  const result = validateDocument(document, federationShape, [], {});
  const problems = [...result.issues];
  if (result.value) problems.push(...federationFileChecks(result.value, document));
  if (!result.value || problems.some((p) => p.severity !== 'warning')) throw new ConfigError(problems);
  return deepFreeze(finishFederation(result.value, join(baseDir, 'federation.yaml'), true));
}

function finishFederation(value: NonNullable<ReturnType<typeof federationShape.check>>, file: string, embedded = false): FederationConfig {
  const dir = dirname(file);
  return {
    ...value,
    file: embedded ? '' : file,
    controllerPkiDir: resolve(dir, value.spec.controller.pkiDir ?? 'pki/controller'),
    storeDataDir: resolve(dir, value.spec.store.dataDir ?? join('state', 'controller')),
  };
}

/** Loads one `clusters/<name>.yaml`. */
export function loadClusterFile(file: string, options: LoadOptions = {}): ClusterConfig {
  return loadClusterDocument(file, options).config;
}

function loadClusterDocument(file: string, options: LoadOptions): { config: ClusterConfig; document: YamlDocument } {
  const absolute = resolve(file);
  const shown = display(absolute, options.displayRoot);
  const { document, issues } = singleDocument(absolute, shown);
  if (!document) throw new ConfigError(issues);
  const result = validateDocument(document, clusterShape, CLUSTER_ENV, options.env ?? process.env);
  const problems = [...result.issues];
  if (result.value) problems.push(...clusterFileChecks(result.value, document, absolute));
  if (!result.value || problems.some((p) => p.severity !== 'warning')) throw new ConfigError(problems);
  return { config: deepFreeze(finishCluster(result.value, absolute)), document };
}

/** Validates a cluster config given as an object; `file` anchors relative paths. */
export function clusterFromObject(value: unknown, file: string, source = '<embedded cluster>'): ClusterConfig {
  const document = YamlDocument.fromValue(source, structuredClone(value));
  const result = validateDocument(document, clusterShape, [], {});
  const problems = [...result.issues];
  if (result.value) problems.push(...clusterFileChecks(result.value, document, undefined));
  if (!result.value || problems.some((p) => p.severity !== 'warning')) throw new ConfigError(problems);
  return deepFreeze(finishCluster(result.value, resolve(file)));
}

function clusterFileChecks(value: NonNullable<ReturnType<typeof clusterShape.check>>, document: YamlDocument, file: string | undefined): InputIssue[] {
  const issues: InputIssue[] = [];
  const at = (path: FieldPath, message: string): void => {
    issues.push({ source: document.source, line: document.lineOf(path), path: formatPath(path), message });
  };
  if (file) {
    const stem = basename(file).replace(/\.ya?ml$/, '');
    if (stem !== value.metadata.name) at(['metadata', 'name'], `must match the file name "${stem}"`);
  }
  const gateway = value.spec.gateway;
  if (gateway.certificateSource === 'signer' && !gateway.signer) at(['spec', 'gateway', 'certificateSource'], 'is "signer", so spec.gateway.signer (address, caFile) is required');
  if (gateway.certificateSource === 'local' && gateway.signer) {
    issues.push({ source: document.source, line: document.lineOf(['spec', 'gateway', 'signer']), path: 'spec.gateway.signer', message: 'ignored: spec.gateway.certificateSource is "local" (set it to "signer" to use the signer)', severity: 'warning' });
  }
  value.spec.exports.forEach((exported, index) => {
    if (exported.consumers.includes(value.metadata.name)) {
      at(['spec', 'exports', index, 'consumers'], `lists its own cluster "${value.metadata.name}"; local callers are always allowed`);
    }
    exported.ports.forEach((p, portIndex) => {
      const duplicate = exported.ports.findIndex((other) => other.port === p.port);
      if (duplicate !== portIndex) at(['spec', 'exports', index, 'ports', portIndex, 'port'], `port ${p.port} used twice (same as ports[${duplicate}])`);
    });
  });
  return issues;
}

function finishCluster(value: NonNullable<ReturnType<typeof clusterShape.check>>, file: string): ClusterConfig {
  const dir = dirname(file);
  const name = value.metadata.name;
  const spec = value.spec;
  const tokenFile = spec.controller?.tokenFile;
  return {
    ...value,
    spec: {
      ...spec,
      controller: spec.controller ? { ...spec.controller, tokenFile: tokenFile ? resolve(dir, tokenFile) : undefined } : undefined,
      gateway: {
        ...spec.gateway,
        advertise: spec.gateway.advertise ?? [spec.gateway.inbound],
        signer: spec.gateway.signer ? { ...spec.gateway.signer, caFile: resolve(dir, spec.gateway.signer.caFile), tokenFile: spec.gateway.signer.tokenFile ? resolve(dir, spec.gateway.signer.tokenFile) : undefined } : undefined,
      },
    },
    file,
    pkiDir: resolve(dir, spec.pkiDir ?? join('..', 'pki', name)),
    stateDir: resolve(dir, spec.gateway.stateDir ?? join('..', 'state', name)),
  };
}

/** A whole `federation-config/` directory. Policies are parsed here and validated by the policy module. */
export interface FederationDirectory {
  root: string;
  federation: FederationConfig;
  clusters: ClusterConfig[];
  /** Every YAML document under policies/, with positions for error messages. */
  policyDocuments: YamlDocument[];
}

function yamlFiles(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((name) => /\.ya?ml$/.test(name))
    .sort()
    .map((name) => join(dir, name))
    .filter((path) => statSync(path).isFile());
}

/**
 * Everything a federation-config directory holds that could be read, with every problem: what
 * `fedgate config validate` reports, and what tools that only need part of it (the policy
 * commands' trust domains) use even when another file is broken.
 */
export interface FederationDirectoryReport {
  root: string;
  /** Undefined when federation.yaml is missing or invalid. */
  federation: FederationConfig | undefined;
  /** The cluster files that are valid. */
  clusters: ClusterConfig[];
  /** Names of the cluster files that are not (the name a cluster file must give itself is its file name). */
  failedClusters: string[];
  policyDocuments: YamlDocument[];
  /** Errors and warnings of every file, and across files. */
  issues: InputIssue[];
}

/**
 * Loads federation.yaml, clusters/*.yaml and policies/*.yaml, reporting the problems of every file
 * at once, plus what only shows across files (two clusters with one trust domain, a consumer that
 * names no cluster).
 */
export function loadFederationDirectory(dir: string, options: LoadOptions = {}): FederationDirectory {
  const report = inspectFederationDirectory(dir, options);
  if (report.issues.some((i) => i.severity !== 'warning') || !report.federation) throw new ConfigError(report.issues);
  return { root: report.root, federation: report.federation, clusters: report.clusters, policyDocuments: report.policyDocuments };
}

/** Reads a federation-config directory without stopping at the first broken file (see FederationDirectoryReport). */
export function inspectFederationDirectory(dir: string, options: LoadOptions = {}): FederationDirectoryReport {
  const root = resolve(dir);
  const opts = { ...options, displayRoot: options.displayRoot ?? root };
  const issues: InputIssue[] = [];
  const collect = <T>(load: () => T): T | undefined => {
    try {
      return load();
    } catch (error) {
      if (error instanceof ConfigError) {
        issues.push(...error.issues);
        return undefined;
      }
      if (error instanceof Error && 'code' in error && (error as { code: string }).code.startsWith('FEDGATE_ERR_')) {
        issues.push({ path: '', message: error.message });
        return undefined;
      }
      throw error;
    }
  };
  const federation = collect(() => loadFederationDocument(join(root, 'federation.yaml'), opts));
  const loaded: Array<{ config: ClusterConfig; document: YamlDocument }> = [];
  const failedClusters: string[] = [];
  for (const file of yamlFiles(join(root, 'clusters'))) {
    const cluster = collect(() => loadClusterDocument(file, opts));
    if (cluster) loaded.push(cluster);
    else failedClusters.push(basename(file).replace(/\.ya?ml$/, ''));
  }
  const clusters = loaded.map((c) => c.config);
  const policyDocuments: YamlDocument[] = [];
  for (const file of yamlFiles(join(root, 'policies'))) {
    const parsed = collect(() => readYamlFile(file, relative(root, file)));
    if (!parsed) continue;
    issues.push(...parsed.issues);
    policyDocuments.push(...parsed.documents);
  }
  issues.push(...crossClusterIssues(loaded, failedClusters));
  if (federation) issues.push(...aliasIssues(federation, loaded, failedClusters.length > 0));
  return { root, federation: federation?.config, clusters, failedClusters, policyDocuments, issues };
}

/** Aliases against the members: a member's own trust domain, or an alias target that is no member's. */
function aliasIssues(federation: { config: FederationConfig; document: YamlDocument }, loaded: ReadonlyArray<{ config: ClusterConfig }>, incomplete: boolean): InputIssue[] {
  const issues: InputIssue[] = [];
  const owners = new Map(loaded.map((c) => [c.config.spec.trustDomain, c.config.metadata.name]));
  const { document } = federation;
  const warn = (path: FieldPath, message: string): void => {
    issues.push({ source: document.source, line: document.lineOf(path), path: formatPath(path), message, severity: 'warning' });
  };
  federation.config.spec.trustDomainAliases.forEach((entry, index) => {
    const owner = owners.get(entry.alias);
    if (owner) warn(['spec', 'trustDomainAliases', index], `"${entry.alias}" is the trust domain of cluster ${owner}: policies naming it mean that cluster only, not the alias`);
    // With a broken cluster file the members are not all known: no guessing.
    if (incomplete) return;
    entry.trustDomains?.forEach((td, k) => {
      if (!owners.has(td)) warn(['spec', 'trustDomainAliases', index, 'trustDomains', k], `"${td}" is no cluster's trust domain in clusters/`);
    });
  });
  return issues;
}

/**
 * Problems only visible across cluster files. A cluster whose own file failed still counts as a
 * name (its file is named after it), so it is not reported again as "no cluster named".
 */
function crossClusterIssues(loaded: ReadonlyArray<{ config: ClusterConfig; document: YamlDocument }>, failed: readonly string[] = []): InputIssue[] {
  const issues: InputIssue[] = [];
  const names = new Set([...loaded.map((c) => c.config.metadata.name), ...failed]);
  const byTrustDomain = new Map<string, ClusterConfig>();
  for (const { config: cluster, document } of loaded) {
    const at = (path: FieldPath, message: string): void => {
      issues.push({ source: document.source, line: document.lineOf(path), path: formatPath(path), message });
    };
    const owner = byTrustDomain.get(cluster.spec.trustDomain);
    if (owner) {
      at(['spec', 'trustDomain'], `"${cluster.spec.trustDomain}" is already the trust domain of cluster ${owner.metadata.name}; each cluster owns its own`);
    } else {
      byTrustDomain.set(cluster.spec.trustDomain, cluster);
    }
    cluster.spec.exports.forEach((exported, index) => {
      exported.consumers.forEach((consumer, consumerIndex) => {
        if (!names.has(consumer)) at(['spec', 'exports', index, 'consumers', consumerIndex], `no cluster named "${consumer}" in clusters/`);
      });
    });
  }
  return issues;
}
