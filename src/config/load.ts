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
  const absolute = resolve(file);
  const shown = display(absolute, options.displayRoot);
  const { document, issues } = singleDocument(absolute, shown);
  if (!document) throw new ConfigError(issues);
  const result = validateDocument(document, federationShape, FEDERATION_ENV, options.env ?? process.env);
  if (!result.value) throw new ConfigError(result.issues);
  return deepFreeze(finishFederation(result.value, absolute));
}

/** Validates a federation config given as an object (embedded defaults, tests). */
export function federationFromObject(value: unknown, source = '<embedded federation>', baseDir = process.cwd()): FederationConfig {
  const result = validateDocument(YamlDocument.fromValue(source, structuredClone(value)), federationShape, [], {});
  if (!result.value) throw new ConfigError(result.issues);
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
 * Loads federation.yaml, clusters/*.yaml and policies/*.yaml, reporting the problems of every file
 * at once, plus what only shows across files (two clusters with one trust domain, a consumer that
 * names no cluster).
 */
export function loadFederationDirectory(dir: string, options: LoadOptions = {}): FederationDirectory {
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
  const federation = collect(() => loadFederationFile(join(root, 'federation.yaml'), opts));
  const loaded: Array<{ config: ClusterConfig; document: YamlDocument }> = [];
  for (const file of yamlFiles(join(root, 'clusters'))) {
    const cluster = collect(() => loadClusterDocument(file, opts));
    if (cluster) loaded.push(cluster);
  }
  const clusters = loaded.map((c) => c.config);
  const policyDocuments: YamlDocument[] = [];
  for (const file of yamlFiles(join(root, 'policies'))) {
    const parsed = collect(() => readYamlFile(file, relative(root, file)));
    if (!parsed) continue;
    issues.push(...parsed.issues);
    policyDocuments.push(...parsed.documents);
  }
  issues.push(...crossClusterIssues(loaded));
  if (issues.some((i) => i.severity !== 'warning') || !federation) throw new ConfigError(issues);
  return { root, federation, clusters, policyDocuments };
}

function crossClusterIssues(loaded: ReadonlyArray<{ config: ClusterConfig; document: YamlDocument }>): InputIssue[] {
  const issues: InputIssue[] = [];
  const names = new Set(loaded.map((c) => c.config.metadata.name));
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
