/**
 * Renders the kustomizations under deploy/ without kubectl, so the manifests are checked offline
 * as they will be applied, overlays' patches included. It implements the subset of kustomize
 * (v5) that deploy/ uses, and refuses everything else, so a kustomization that starts using a
 * feature this does not know fails the tests instead of being checked half-way:
 *
 * - `resources`: YAML files (several documents each) and directories holding a
 *   kustomization.yaml, rendered recursively. Paths are relative to the kustomization.
 * - `patches`: `- path: FILE`, a strategic-merge patch that names its target by apiVersion, kind,
 *   metadata.name (and metadata.namespace when given). Merge rules: maps merge key by key; a
 *   `null` value deletes the key; `$patch: replace` in a map replaces the whole map; lists whose
 *   items all have a `name` (containers, volumes, env, volumeMounts) merge item by item on it;
 *   every other list is replaced. A patch that matches nothing is an error, as in kustomize.
 * - `images`: `name` with `newName` and/or `newTag`, applied to containers and init containers
 *   of workloads (Deployment, StatefulSet, DaemonSet, Job).
 * - `namespace`: set on every namespaced object.
 *
 * Order at each level: resources, then patches, then images, then namespace. While deploy/ was
 * written, the output was compared with `kubectl kustomize` (kustomize v5.5) for every
 * kustomization: the same objects, except that kustomize moves patched list items first.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { parseAllDocuments } from 'yaml';

export type KubeObject = Record<string, unknown> & {
  apiVersion: string;
  kind: string;
  metadata: Record<string, unknown> & { name: string; namespace?: string };
};

interface Kustomization {
  apiVersion?: string;
  kind?: string;
  namespace?: string;
  resources?: string[];
  patches?: Array<{ path: string }>;
  images?: Array<{ name: string; newName?: string; newTag?: string }>;
}

const KNOWN_KEYS = new Set(['apiVersion', 'kind', 'namespace', 'resources', 'patches', 'images']);

/** Kinds that have no namespace. */
const CLUSTER_SCOPED = new Set(['Namespace', 'ClusterRole', 'ClusterRoleBinding', 'CustomResourceDefinition', 'PersistentVolume', 'StorageClass', 'PriorityClass']);

export function isNamespaced(kind: string): boolean {
  return !CLUSTER_SCOPED.has(kind);
}

function isMap(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** Every document of a YAML file, parsed; a syntax error names the file. */
export function readYamlDocuments(file: string): unknown[] {
  const documents = parseAllDocuments(readFileSync(file, 'utf8'));
  const list = Array.isArray(documents) ? documents : [documents];
  const values: unknown[] = [];
  for (const document of list) {
    if (document.errors.length > 0) throw new Error(`${file}: ${document.errors.map((e) => e.message).join('; ')}`);
    const value: unknown = document.toJS();
    if (value !== null && value !== undefined) values.push(value);
  }
  return values;
}

function asKubeObject(value: unknown, file: string): KubeObject {
  if (!isMap(value) || typeof value.apiVersion !== 'string' || typeof value.kind !== 'string' || !isMap(value.metadata) || typeof value.metadata.name !== 'string') {
    throw new Error(`${file}: a document without apiVersion, kind and metadata.name`);
  }
  return value as KubeObject;
}

export function kustomizationFile(dir: string): string {
  return join(dir, 'kustomization.yaml');
}

/** Reads one kustomization.yaml and checks that it uses only what this renderer implements. */
export function readKustomization(dir: string): Kustomization {
  const file = kustomizationFile(dir);
  const [value] = readYamlDocuments(file);
  if (!isMap(value)) throw new Error(`${file}: not a mapping`);
  const unknown = Object.keys(value).filter((key) => !KNOWN_KEYS.has(key));
  if (unknown.length > 0) throw new Error(`${file}: ${unknown.join(', ')} not supported by the test renderer (see test/deploy/kustomize-render.ts)`);
  if (value.apiVersion !== 'kustomize.config.k8s.io/v1beta1' || value.kind !== 'Kustomization') {
    throw new Error(`${file}: expected apiVersion kustomize.config.k8s.io/v1beta1, kind Kustomization`);
  }
  const kustomization = value as Kustomization;
  for (const patch of kustomization.patches ?? []) {
    if (!isMap(patch) || typeof patch.path !== 'string' || Object.keys(patch).length !== 1) {
      throw new Error(`${file}: only "- path: FILE" patches are supported`);
    }
  }
  return kustomization;
}

/** The files and directories a kustomization names, resolved; used to check that they exist. */
export function referencedPaths(dir: string): Array<{ entry: string; path: string; role: 'resource' | 'patch' }> {
  const kustomization = readKustomization(dir);
  return [
    ...(kustomization.resources ?? []).map((entry) => ({ entry, path: resolve(dir, entry), role: 'resource' as const })),
    ...(kustomization.patches ?? []).map((patch) => ({ entry: patch.path, path: resolve(dir, patch.path), role: 'patch' as const })),
  ];
}

function strategicMerge(target: unknown, patch: unknown): unknown {
  if (isMap(patch)) {
    if (patch.$patch === 'replace') {
      const { $patch: _directive, ...rest } = patch;
      return structuredClone(rest);
    }
    if (patch.$patch !== undefined) throw new Error(`$patch: ${String(patch.$patch)} not supported by the test renderer`);
    const merged: Record<string, unknown> = isMap(target) ? { ...target } : {};
    for (const [key, value] of Object.entries(patch)) {
      if (value === null) delete merged[key];
      else merged[key] = strategicMerge(merged[key], value);
    }
    return merged;
  }
  if (Array.isArray(patch)) {
    const byName = (list: unknown[]): boolean => list.length > 0 && list.every((item) => isMap(item) && typeof item.name === 'string');
    if (Array.isArray(target) && byName(patch) && (target.length === 0 || byName(target))) {
      const merged = target.map((item) => structuredClone(item) as Record<string, unknown>);
      for (const item of patch as Array<Record<string, unknown>>) {
        const index = merged.findIndex((existing) => existing.name === item.name);
        if (index >= 0) merged[index] = strategicMerge(merged[index], item) as Record<string, unknown>;
        else merged.push(structuredClone(item));
      }
      return merged;
    }
    return structuredClone(patch);
  }
  return patch;
}

function podSpecOf(object: KubeObject): Record<string, unknown> | undefined {
  const spec = object.spec;
  if (!isMap(spec)) return undefined;
  if (object.kind === 'Pod') return spec;
  const template = spec.template;
  if (isMap(template) && isMap(template.spec)) return template.spec;
  return undefined;
}

function setImages(object: KubeObject, images: NonNullable<Kustomization['images']>): void {
  const pod = podSpecOf(object);
  if (!pod) return;
  for (const list of [pod.initContainers, pod.containers]) {
    if (!Array.isArray(list)) continue;
    for (const container of list as Array<Record<string, unknown>>) {
      const image = String(container.image ?? '');
      const match = /^([^@:]+(?::\d+\/[^@:]+)?)(?::([^@]+))?(@.+)?$/.exec(image);
      if (!match) continue;
      const [, name, tag] = match;
      const rule = images.find((i) => i.name === name);
      if (!rule) continue;
      container.image = `${rule.newName ?? name}:${rule.newTag ?? tag ?? 'latest'}`;
    }
  }
}

/** Renders the kustomization in `dir` into the list of objects `kubectl apply -k dir` would send. */
export function renderKustomization(dir: string, root = dir): KubeObject[] {
  const kustomization = readKustomization(dir);
  const objects: KubeObject[] = [];
  for (const entry of kustomization.resources ?? []) {
    const path = resolve(dir, entry);
    if (!existsSync(path)) throw new Error(`${relative(root, kustomizationFile(dir))}: resource ${entry} does not exist`);
    if (statSync(path).isDirectory()) objects.push(...renderKustomization(path, root));
    else objects.push(...readYamlDocuments(path).map((value) => asKubeObject(value, path)));
  }
  for (const { path: entry } of kustomization.patches ?? []) {
    const path = resolve(dir, entry);
    for (const value of readYamlDocuments(path)) {
      const patch = asKubeObject(value, path);
      const matches = objects.filter(
        (o) =>
          o.apiVersion === patch.apiVersion &&
          o.kind === patch.kind &&
          o.metadata.name === patch.metadata.name &&
          (patch.metadata.namespace === undefined || o.metadata.namespace === undefined || o.metadata.namespace === patch.metadata.namespace),
      );
      if (matches.length !== 1) throw new Error(`${path}: patch matches ${matches.length} objects (${patch.kind} ${patch.metadata.name}), expected 1`);
      const index = objects.indexOf(matches[0] as KubeObject);
      objects[index] = strategicMerge(objects[index], patch) as KubeObject;
    }
  }
  for (const object of objects) {
    if (kustomization.images) setImages(object, kustomization.images);
    if (kustomization.namespace && isNamespaced(object.kind)) object.metadata.namespace = kustomization.namespace;
  }
  const seen = new Set<string>();
  for (const object of objects) {
    const id = `${object.apiVersion}/${object.kind}/${object.metadata.namespace ?? ''}/${object.metadata.name}`;
    if (seen.has(id)) throw new Error(`${relative(root, dir) || '.'}: ${id} defined twice`);
    seen.add(id);
  }
  return objects;
}

/** Every directory under `root` that holds a kustomization.yaml. */
export function kustomizationDirs(files: readonly string[]): string[] {
  return files.filter((f) => f.endsWith('/kustomization.yaml')).map((f) => dirname(f));
}
