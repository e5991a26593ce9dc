/**
 * deploy/ checked offline, without kubectl or a cluster:
 * - every YAML document under deploy/ (except deploy/compose/, which is fedgate config) parses,
 *   and every Kubernetes object validates against the Kubernetes OpenAPI schema
 *   (kubernetes-models) and has no field the API does not define;
 * - every kustomization references only files that exist, every YAML file is used by one, and
 *   each renders (test/deploy/kustomize-render.ts) into objects that validate in turn;
 * - what the deployment promises: the controller's replicas, probes and PDB, the gateway's
 *   LoadBalancer on 15443 and its exact RBAC, the cluster CA key only in the signer's pod, the
 *   controller's admin port inside the cluster, NetworkPolicies that allow the flows the
 *   architecture needs and refuse the others, non-root read-only containers with resource
 *   requests, config that fedgate's own loader accepts, Services that select real pods and
 *   ports, and a Grafana dashboard over fedgate's metrics.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { parse } from 'yaml';
import { Deployment, StatefulSet } from 'kubernetes-models/apps/v1';
import { CustomResourceDefinition } from 'kubernetes-models/apiextensions.k8s.io/v1';
import { Job } from 'kubernetes-models/batch/v1';
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import { NATIVE_KINDS } from '../../src/policy/kinds.js';
import { ClusterRole, ClusterRoleBinding, Role, RoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1';
import { ConfigMap, Namespace, Service, ServiceAccount } from 'kubernetes-models/v1';
import { clusterFromObject, federationFromObject } from '../../src/config/load.js';
import { isNamespaced, readKustomization, readYamlDocuments, referencedPaths, renderKustomization, type KubeObject } from './kustomize-render.js';
import { unknownFields } from './unknown-fields.js';
import { isMonitoringKind, monitoringFieldProblems, MONITORING_MODELS } from './prometheus-operator.js';
import { flowAllowed, policyTypes, selects, type Endpoint, type NetworkPolicyObject, type PodEndpoint, type Protocol } from './network-policy.js';

const ROOT = process.cwd();
const DEPLOY = join(ROOT, 'deploy');
const NAMESPACE = 'fedgate-system';
const CLUSTERS = ['us-east', 'us-west', 'eu-west'] as const;

type Model = new (data: never) => { validate(): void };

/** The kinds deploy/ may contain; anything else fails, so nothing goes unvalidated. */
const MODELS: Record<string, Model> = {
  'v1/Namespace': Namespace,
  'v1/ServiceAccount': ServiceAccount,
  'v1/ConfigMap': ConfigMap,
  'v1/Service': Service,
  'apps/v1/Deployment': Deployment,
  'apps/v1/StatefulSet': StatefulSet,
  'batch/v1/Job': Job,
  'policy/v1/PodDisruptionBudget': PodDisruptionBudget,
  'rbac.authorization.k8s.io/v1/ClusterRole': ClusterRole,
  'rbac.authorization.k8s.io/v1/ClusterRoleBinding': ClusterRoleBinding,
  'rbac.authorization.k8s.io/v1/Role': Role,
  'rbac.authorization.k8s.io/v1/RoleBinding': RoleBinding,
  'apiextensions.k8s.io/v1/CustomResourceDefinition': CustomResourceDefinition,
  ...MONITORING_MODELS,
  'networking.k8s.io/v1/NetworkPolicy': NetworkPolicy,
};

// ---- shapes used by the assertions (only what is read) ----

interface Probe {
  httpGet?: { path: string; port: number | string };
  exec?: { command: string[] };
}
interface Container {
  name: string;
  ports?: Array<{ name?: string; containerPort: number; protocol?: string }>;
  image: string;
  args?: string[];
  command?: string[];
  env?: Array<{ name: string; value?: string; valueFrom?: { configMapKeyRef?: { name: string; key: string } } }>;
  startupProbe?: Probe;
  livenessProbe?: Probe;
  readinessProbe?: Probe;
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  securityContext?: { runAsNonRoot?: boolean; runAsUser?: number; allowPrivilegeEscalation?: boolean; readOnlyRootFilesystem?: boolean; capabilities?: { drop?: string[] } };
  volumeMounts?: Array<{ name: string; mountPath: string; readOnly?: boolean }>;
}
interface Volume {
  name: string;
  configMap?: { name: string; items?: Array<{ key: string; path: string }> };
  secret?: { secretName: string; optional?: boolean; defaultMode?: number };
  emptyDir?: Record<string, unknown>;
  projected?: { defaultMode?: number; sources: Array<{ serviceAccountToken?: { audience?: string; expirationSeconds?: number; path: string } }> };
}
interface PodSpec {
  serviceAccountName?: string;
  securityContext?: { runAsNonRoot?: boolean; runAsUser?: number; seccompProfile?: { type: string } };
  initContainers?: Container[];
  containers: Container[];
  volumes?: Volume[];
}
interface Workload extends KubeObject {
  spec: {
    replicas?: number;
    selector?: { matchLabels: Record<string, string> };
    serviceName?: string;
    volumeClaimTemplates?: Array<{ metadata: { name: string } }>;
    template: { metadata: { labels: Record<string, string> }; spec: PodSpec };
  };
}
interface ServiceObject extends KubeObject {
  spec: { type?: string; clusterIP?: string; selector: Record<string, string>; ports: Array<{ name: string; port: number; targetPort: number | string }> };
}
interface PolicyRule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
  resourceNames?: string[];
}

// ---- helpers ----

function walkFiles(dir: string): string[] {
  return readdirSync(dir)
    .sort()
    .flatMap((name) => {
      const path = join(dir, name);
      return statSync(path).isDirectory() ? walkFiles(path) : [path];
    });
}

const ALL_FILES = walkFiles(DEPLOY);
/**
 * Kubernetes manifests: deploy/compose holds fedgate's own config for docker-compose, and
 * deploy/monitoring/{rules,tests} Prometheus's rules and promtool's tests (alert-rules.test.ts).
 */
const NOT_MANIFESTS = ['compose', 'monitoring/rules', 'monitoring/tests'].map((d) => join(DEPLOY, d) + '/');
const YAML_FILES = ALL_FILES.filter((f) => /\.ya?ml$/.test(f) && !NOT_MANIFESTS.some((d) => f.startsWith(d)));
const KUSTOMIZATION_DIRS = YAML_FILES.filter((f) => f.endsWith('/kustomization.yaml')).map((f) => resolve(f, '..'));
const PATCH_FILES = new Set(KUSTOMIZATION_DIRS.flatMap((dir) => referencedPaths(dir).filter((r) => r.role === 'patch').map((r) => r.path)));
const RESOURCE_FILES = YAML_FILES.filter((f) => !f.endsWith('/kustomization.yaml') && !PATCH_FILES.has(f));
const rel = (path: string): string => relative(ROOT, path);

function validationProblems(object: KubeObject): string[] {
  const model = MODELS[`${object.apiVersion}/${object.kind}`];
  if (!model) return [`${object.apiVersion} ${object.kind}: not a kind deploy/ is expected to hold (add it to MODELS in this test)`];
  const problems: string[] = [];
  try {
    new model(structuredClone(object) as never).validate();
  } catch (error) {
    problems.push((error as Error).message);
  }
  return [...problems, ...(isMonitoringKind(object) ? monitoringFieldProblems(object) : unknownFields(object))];
}

const rendered = new Map<string, KubeObject[]>();
function render(dir: string): KubeObject[] {
  const key = resolve(DEPLOY, dir);
  let objects = rendered.get(key);
  if (!objects) {
    objects = renderKustomization(key, DEPLOY);
    rendered.set(key, objects);
  }
  return objects;
}

function find<T extends KubeObject>(objects: KubeObject[], kind: string, name: string): T {
  const found = objects.find((o) => o.kind === kind && o.metadata.name === name);
  if (!found) throw new Error(`no ${kind} ${name} among ${objects.map((o) => `${o.kind}/${o.metadata.name}`).join(', ')}`);
  return found as T;
}

function workloads(objects: KubeObject[]): Workload[] {
  return objects.filter((o): o is Workload => ['Deployment', 'StatefulSet', 'Job'].includes(o.kind));
}

function allContainers(pod: PodSpec): Container[] {
  return [...(pod.initContainers ?? []), ...pod.containers];
}

function matches(selector: Record<string, string>, labels: Record<string, string>): boolean {
  return Object.entries(selector).every(([key, value]) => labels[key] === value);
}

function container(workload: Workload, name: string): Container {
  const found = allContainers(workload.spec.template.spec).find((c) => c.name === name);
  if (!found) throw new Error(`${workload.metadata.name} has no container ${name}`);
  return found;
}

function mountOf(workload: Workload, containerName: string, volumeName: string): string {
  const mount = container(workload, containerName).volumeMounts?.find((m) => m.name === volumeName);
  if (!mount) throw new Error(`${containerName} of ${workload.metadata.name} does not mount ${volumeName}`);
  return mount.mountPath;
}

function volume(workload: Workload, name: string): Volume {
  const found = workload.spec.template.spec.volumes?.find((v) => v.name === name);
  if (!found) throw new Error(`${workload.metadata.name} has no volume ${name}`);
  return found;
}

function rules(object: KubeObject): PolicyRule[] {
  return (object as unknown as { rules: PolicyRule[] }).rules;
}

/** Rules as a set of "group/resource verb" strings, so that the grouping of rules does not matter. */
function grants(list: PolicyRule[]): string[] {
  return list
    .flatMap((r) => r.apiGroups.flatMap((g) => r.resources.flatMap((res) => r.verbs.map((v) => `${g || 'core'}/${res} ${v}${r.resourceNames ? ` [${r.resourceNames.join(',')}]` : ''}`))))
    .sort();
}

function configData(objects: KubeObject[], name: string): Record<string, string> {
  return (find(objects, 'ConfigMap', name) as unknown as { data: Record<string, string> }).data;
}

// ---- the files ----

describe('deploy/ files', () => {
  it('has the layout deploy/README.md describes', () => {
    const dirs = KUSTOMIZATION_DIRS.map((d) => relative(DEPLOY, d)).sort();
    expect(dirs).toEqual(
      ['base/controller', 'base/gateway', 'base/namespace', 'base/redis', 'base/signer', 'crds', 'join', 'monitoring', 'overlays/controller', 'overlays/controller-external-redis', 'overlays/eu-west', 'overlays/us-east', 'overlays/us-west'].sort(),
    );
    expect(ALL_FILES.map(rel)).toEqual(expect.arrayContaining(['deploy/README.md', 'deploy/grafana/fedgate-dashboard.json']));
  });

  it.each(KUSTOMIZATION_DIRS.map((d) => [rel(d), d]))('%s/kustomization.yaml references only files that exist', (_name, dir) => {
    const references = referencedPaths(dir);
    expect(references.length).toBeGreaterThan(0);
    const missing = references.filter((r) => {
      try {
        const stat = statSync(r.path);
        return r.role === 'patch' ? !stat.isFile() : stat.isDirectory() ? !statSync(join(r.path, 'kustomization.yaml')).isFile() : false;
      } catch {
        return true;
      }
    });
    expect(missing.map((r) => `${r.role} ${r.entry}`)).toEqual([]);
  });

  it('uses every YAML file in exactly one kustomization', () => {
    const uses = new Map<string, string[]>();
    for (const dir of KUSTOMIZATION_DIRS) {
      for (const reference of referencedPaths(dir)) {
        if (statSync(reference.path).isDirectory()) continue;
        uses.set(reference.path, [...(uses.get(reference.path) ?? []), rel(dir)]);
      }
    }
    const files = YAML_FILES.filter((f) => !f.endsWith('/kustomization.yaml'));
    expect(files.filter((f) => !uses.has(f)).map(rel)).toEqual([]);
    expect(files.filter((f) => (uses.get(f) ?? []).length > 1).map(rel)).toEqual([]);
  });

  it.each(RESOURCE_FILES.map((f) => [rel(f), f]))('%s: every document is a valid Kubernetes object', (_name, file) => {
    const documents = readYamlDocuments(file) as KubeObject[];
    expect(documents.length).toBeGreaterThan(0);
    for (const document of documents) {
      expect({ object: `${document.kind}/${document.metadata?.name}`, problems: validationProblems(document) }).toEqual({ object: `${document.kind}/${document.metadata?.name}`, problems: [] });
    }
  });

  it.each([...PATCH_FILES].map((f) => [rel(f), f]))('%s: a patch naming one object, with known fields only', (_name, file) => {
    const documents = readYamlDocuments(file) as KubeObject[];
    expect(documents).toHaveLength(1);
    const [patch] = documents as [KubeObject];
    expect(typeof patch.metadata.name).toBe('string');
    expect(unknownFields(patch)).toEqual([]);
  });

  it('rejects an unknown field and an invalid value (the checks have teeth)', () => {
    const bad = {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'x' },
      spec: { selector: { matchLabels: { a: 'b' } }, template: { metadata: { labels: { a: 'b' } }, spec: { containers: [{ name: 'c', image: 'i', readinesProbe: {}, ports: [{ containerPort: 'http' }] }] } } },
    } as unknown as KubeObject;
    const problems = validationProblems(bad);
    expect(problems).toEqual(expect.arrayContaining([expect.stringContaining('containerPort'), 'spec.template.spec.containers[0].readinesProbe: not a field of Container']));
  });
});

// ---- rendered kustomizations ----

describe.each(KUSTOMIZATION_DIRS.map((d) => [relative(DEPLOY, d)]))('kustomize build deploy/%s', (dir) => {
  it('renders into valid objects, namespaced ones in fedgate-system', () => {
    const objects = render(dir);
    expect(objects.length).toBeGreaterThan(0);
    for (const object of objects) {
      const id = `${object.kind}/${object.metadata.name}`;
      expect({ id, problems: validationProblems(object) }).toEqual({ id, problems: [] });
      if (isNamespaced(object.kind)) expect({ id, namespace: object.metadata.namespace }).toEqual({ id, namespace: NAMESPACE });
      else expect({ id, namespace: object.metadata.namespace }).toEqual({ id, namespace: undefined });
    }
  });

});

/** Kustomizations with pods: all but the CRDs, the namespace and the monitoring objects. */
const WORKLOAD_DIRS = KUSTOMIZATION_DIRS.map((d) => relative(DEPLOY, d)).filter((d) => d !== 'crds' && d !== 'base/namespace' && d !== 'monitoring');

/**
 * ConfigMaps a kustomization uses without defining: the join Job and the signer run against the
 * gateway's cluster file, which the cluster's overlay (here: us-east) defines.
 */
function configMapsFor(dir: string): KubeObject[] {
  const own = render(dir).filter((o) => o.kind === 'ConfigMap');
  return dir === 'join' || dir === 'base/signer' ? [...own, ...render('overlays/us-east').filter((o) => o.kind === 'ConfigMap' && o.metadata.name === 'fedgate-gateway-config')] : own;
}

describe.each(WORKLOAD_DIRS.map((d) => [d]))('pods of deploy/%s', (dir) => {
  it('runs every container non-root, read-only, without privileges, with resource requests', () => {
    expect(workloads(render(dir)).length).toBeGreaterThan(0);
    for (const workload of workloads(render(dir))) {
      const pod = workload.spec.template.spec;
      expect({ workload: workload.metadata.name, seccomp: pod.securityContext?.seccompProfile?.type }).toEqual({ workload: workload.metadata.name, seccomp: 'RuntimeDefault' });
      for (const c of allContainers(pod)) {
        const id = `${workload.metadata.name}/${c.name}`;
        const nonRoot = c.securityContext?.runAsNonRoot ?? pod.securityContext?.runAsNonRoot;
        const uid = c.securityContext?.runAsUser ?? pod.securityContext?.runAsUser;
        expect({ id, nonRoot, uidIsNotRoot: uid !== undefined && uid > 0 }).toEqual({ id, nonRoot: true, uidIsNotRoot: true });
        expect({ id, securityContext: c.securityContext }).toMatchObject({ id, securityContext: { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } } });
        expect({ id, cpu: typeof c.resources?.requests?.cpu, memory: typeof c.resources?.requests?.memory }).toEqual({ id, cpu: 'string', memory: 'string' });
        expect({ id, memoryLimit: typeof c.resources?.limits?.memory }).toEqual({ id, memoryLimit: 'string' });
      }
    }
  });

  it('mounts only declared volumes, probes declared ports, and references objects it defines or documents', () => {
    const objects = render(dir);
    const configMaps = configMapsFor(dir);
    // Secrets (and the cluster's public CA certificate) are created by the operator
    // (deploy/README.md); everything else must be rendered here.
    const documentedSecrets = ['fedgate-controller-ca', 'fedgate-redis', 'fedgate-cluster-ca', 'fedgate-membership', 'fedgate-join-token'];
    const documentedConfigMaps = ['fedgate-cluster-trust'];
    expect(workloads(objects).length).toBeGreaterThan(0);
    for (const workload of workloads(objects)) {
      const pod = workload.spec.template.spec;
      const volumes = new Set([...(pod.volumes ?? []).map((v) => v.name), ...(workload.spec.volumeClaimTemplates ?? []).map((t) => t.metadata.name)]);
      for (const c of allContainers(pod)) {
        for (const mount of c.volumeMounts ?? []) expect(`${c.name} mounts ${mount.name}: ${volumes.has(mount.name)}`).toBe(`${c.name} mounts ${mount.name}: true`);
        const ports = new Set((c.ports ?? []).flatMap((p) => [p.containerPort, p.name]));
        for (const probe of [c.startupProbe, c.livenessProbe, c.readinessProbe]) {
          if (probe?.httpGet) expect(`${c.name} probes ${probe.httpGet.port}: ${ports.has(probe.httpGet.port)}`).toBe(`${c.name} probes ${probe.httpGet.port}: true`);
        }
        for (const env of c.env ?? []) {
          const ref = env.valueFrom?.configMapKeyRef;
          if (ref) expect(Object.keys(configData(configMaps, ref.name))).toContain(ref.key);
        }
      }
      for (const v of pod.volumes ?? []) {
        if (v.configMap) expect([...configMaps.map((o) => o.metadata.name), ...documentedConfigMaps]).toContain(v.configMap.name);
        if (v.secret) expect(documentedSecrets).toContain(v.secret.secretName);
        // 0440 (288) or stricter: keys are readable by the pod's group only because of fsGroup.
        if (v.secret) expect(v.secret.defaultMode).toBe(288);
        if (v.projected) expect(v.projected.defaultMode).toBe(288);
      }
      if (pod.serviceAccountName) expect(objects.some((o) => o.kind === 'ServiceAccount' && o.metadata.name === pod.serviceAccountName)).toBe(true);
    }
  });

  it('has Services and PodDisruptionBudgets that select pods and ports that exist', () => {
    const objects = render(dir);
    expect(workloads(objects).length).toBeGreaterThan(0);
    const pods = workloads(objects).map((w) => ({ name: w.metadata.name, labels: w.spec.template.metadata.labels, containers: allContainers(w.spec.template.spec) }));
    for (const service of objects.filter((o): o is ServiceObject => o.kind === 'Service')) {
      const selected = pods.filter((p) => matches(service.spec.selector, p.labels));
      expect({ service: service.metadata.name, selects: selected.length > 0 }).toEqual({ service: service.metadata.name, selects: true });
      for (const port of service.spec.ports) {
        const found = selected.some((p) => p.containers.some((c) => (c.ports ?? []).some((cp) => cp.name === port.targetPort || cp.containerPort === port.targetPort)));
        expect({ service: service.metadata.name, port: port.name, targetPortExists: found }).toEqual({ service: service.metadata.name, port: port.name, targetPortExists: true });
      }
    }
    for (const pdb of objects.filter((o) => o.kind === 'PodDisruptionBudget') as Array<KubeObject & { spec: { selector: { matchLabels: Record<string, string> } } }>) {
      expect(pods.filter((p) => matches(pdb.spec.selector.matchLabels, p.labels)).length).toBeGreaterThan(0);
    }
    for (const workload of workloads(objects)) {
      if (workload.spec.selector) expect(matches(workload.spec.selector.matchLabels, workload.spec.template.metadata.labels)).toBe(true);
    }
  });
});

describe('CRDs', () => {
  const crds = (): Array<KubeObject & { spec: Record<string, unknown> & { group: string; scope: string; names: { kind: string; plural: string }; versions: Array<Record<string, unknown> & { name: string; served: boolean; storage: boolean; schema: { openAPIV3Schema: Record<string, unknown> & { properties: Record<string, Record<string, unknown>> } } }> } }> =>
    render('crds') as never;

  it('has the Multi-Cluster Services API v1alpha1 (sigs.k8s.io/mcs-api) and the five fedgate policy kinds', () => {
    const byName = new Map(crds().map((c) => [c.metadata.name, c]));
    expect([...byName.keys()].sort()).toEqual(
      ['serviceexports.multicluster.x-k8s.io', 'serviceimports.multicluster.x-k8s.io', ...NATIVE_KINDS.map((k) => `${k.toLowerCase().replace(/y$/, 'ie')}s.fedgate.io`)].sort(),
    );
    for (const crd of crds()) {
      expect(crd.metadata.name).toBe(`${crd.spec.names.plural}.${crd.spec.group}`);
      expect(crd.spec.scope).toBe('Namespaced');
      expect(crd.spec.versions.map((v) => [v.name, v.served, v.storage])).toEqual([['v1alpha1', true, true]]);
    }
    expect(crds().filter((c) => c.spec.group === 'fedgate.io').map((c) => c.spec.names.kind).sort()).toEqual([...NATIVE_KINDS].sort());
  });

  it('follows the upstream MCS schema: ServiceImport spec.type ClusterSetIP|Headless, status subresources, list-map keys', () => {
    const serviceImport = find(crds(), 'CustomResourceDefinition', 'serviceimports.multicluster.x-k8s.io') as ReturnType<typeof crds>[number];
    const version = serviceImport.spec.versions[0] as ReturnType<typeof crds>[number]['spec']['versions'][number];
    const spec = version.schema.openAPIV3Schema.properties.spec as { required: string[]; properties: Record<string, { enum?: string[]; maxItems?: number }> };
    expect(spec.required).toEqual(['ports', 'type']);
    expect(spec.properties.type?.enum).toEqual(['ClusterSetIP', 'Headless']);
    expect(spec.properties.ips?.maxItems).toBe(1);
    expect(version.subresources).toEqual({ status: {} });
    const status = version.schema.openAPIV3Schema.properties.status as { properties: { clusters: Record<string, unknown> } };
    expect(status.properties.clusters['x-kubernetes-list-map-keys']).toEqual(['cluster']);

    const serviceExport = find(crds(), 'CustomResourceDefinition', 'serviceexports.multicluster.x-k8s.io') as ReturnType<typeof crds>[number];
    const exportVersion = serviceExport.spec.versions[0] as ReturnType<typeof crds>[number]['spec']['versions'][number];
    expect(exportVersion.subresources).toEqual({ status: {} });
    expect(Object.keys(exportVersion.schema.openAPIV3Schema.properties).sort()).toEqual(['apiVersion', 'kind', 'metadata', 'status']);
  });

  it('leaves the policy spec to fedgate\'s validator: structural, open spec, typed scope fields', () => {
    for (const crd of crds().filter((c) => c.spec.group === 'fedgate.io')) {
      const schema = (crd.spec.versions[0] as ReturnType<typeof crds>[number]['spec']['versions'][number]).schema.openAPIV3Schema;
      const spec = schema.properties.spec as { type: string; 'x-kubernetes-preserve-unknown-fields': boolean; required?: string[]; properties: Record<string, { type: string; enum?: string[] }> };
      expect({ kind: crd.spec.names.kind, type: spec.type, open: spec['x-kubernetes-preserve-unknown-fields'] }).toEqual({ kind: crd.spec.names.kind, type: 'object', open: true });
      expect(spec.properties.service?.type).toBe('string');
      expect(spec.properties.clusters?.type).toBe('array');
      // What fedgate's own schema requires, the API server requires too.
      const required = crd.spec.names.kind === 'RoutePolicy' || crd.spec.names.kind === 'FaultPolicy' ? ['service'] : crd.spec.names.kind === 'AuthorizationPolicy' ? ['action'] : undefined;
      expect(spec.required).toEqual(required);
      if (crd.spec.names.kind === 'AuthorizationPolicy') expect(spec.properties.action?.enum).toEqual(['ALLOW', 'DENY']);
    }
  });
});

describe('controller (deploy/overlays/controller)', () => {
  const objects = (): KubeObject[] => render('overlays/controller');

  it('runs 2 replicas with probes on the admin port 15014 (/healthz, /readyz)', () => {
    const deployment = find<Workload>(objects(), 'Deployment', 'fedgate-controller');
    expect(deployment.spec.replicas).toBe(2);
    const c = container(deployment, 'controller');
    expect(c.args).toEqual(['controller', '--config', `${mountOf(deployment, 'controller', 'config')}/federation.yaml`]);
    expect(c.livenessProbe?.httpGet).toEqual({ path: '/healthz', port: 15014 });
    expect(c.readinessProbe?.httpGet).toEqual({ path: '/readyz', port: 15014 });
    expect(c.startupProbe?.httpGet).toEqual({ path: '/healthz', port: 15014 });
    expect((c.ports ?? []).map((p) => p.containerPort).sort()).toEqual([15010, 15012, 15014]);
    expect(c.image).toBe('registry.example.com/platform/fedgate:0.1.0');
  });

  it('has a PodDisruptionBudget that keeps one replica', () => {
    const pdb = find<KubeObject & { spec: { minAvailable: number; selector: { matchLabels: Record<string, string> } } }>(objects(), 'PodDisruptionBudget', 'fedgate-controller');
    expect(pdb.spec.minAvailable).toBe(1);
    expect(pdb.spec.selector.matchLabels).toEqual(find<Workload>(objects(), 'Deployment', 'fedgate-controller').spec.selector?.matchLabels);
  });

  it('exposes join and API to other clusters, and the admin port only inside the cluster', () => {
    const internal = find<ServiceObject>(objects(), 'Service', 'fedgate-controller');
    expect(internal.spec.type).toBe('ClusterIP');
    expect(internal.spec.ports.map((p) => p.port).sort()).toEqual([15010, 15012, 15014]);
    const outside = find<ServiceObject>(objects(), 'Service', 'fedgate-controller-public');
    expect(outside.spec.type).toBe('LoadBalancer');
    expect(outside.spec.ports.map((p) => p.port).sort()).toEqual([15010, 15012]);
    // No other Service reaches the admin port, in this overlay or the external-Redis one.
    for (const overlay of ['overlays/controller', 'overlays/controller-external-redis']) {
      const services = render(overlay).filter((o): o is ServiceObject => o.kind === 'Service');
      const exposing = services.filter((o) => o.spec.type !== 'ClusterIP' && o.spec.ports.some((p) => p.port === 15014 || p.targetPort === 'http-admin' || p.targetPort === 15014));
      expect(exposing.map((o) => o.metadata.name)).toEqual([]);
    }
  });

  it('has a federation.yaml fedgate accepts, advertising the public addresses, on Redis through the Sentinels', () => {
    const deployment = find<Workload>(objects(), 'Deployment', 'fedgate-controller');
    const federation = federationFromObject(parse(configData(objects(), 'fedgate-controller-config')['federation.yaml'] as string));
    const controller = federation.spec.controller;
    expect([controller.listen, controller.joinListen, controller.admin]).toEqual(['0.0.0.0:15012', '0.0.0.0:15010', '0.0.0.0:15014']);
    expect([controller.advertise, controller.advertiseJoin].every((a) => a?.startsWith('controller.acme.example:'))).toBe(true);
    // The admin port is advertised by its in-cluster Service name: nothing outside may reach it.
    expect(controller.advertiseAdmin).toBe(`fedgate-controller.${NAMESPACE}.svc:15014`);
    // The CA is copied from the secret into the writable state volume (the controller writes admin/ there).
    const state = mountOf(deployment, 'controller', 'state');
    expect(controller.pkiDir?.startsWith(`${state}/`)).toBe(true);
    expect(volume(deployment, 'state').emptyDir).toBeDefined();
    expect(container(deployment, 'copy-ca').command?.join(' ')).toContain(controller.pkiDir as string);
    expect(volume(deployment, 'controller-ca').secret?.secretName).toBe('fedgate-controller-ca');
    expect(federation.spec.store.passwordFile).toBe(`${mountOf(deployment, 'controller', 'redis')}/password`);

    const redis = find<Workload>(objects(), 'StatefulSet', 'fedgate-redis');
    const headless = find<ServiceObject>(objects(), 'Service', redis.spec.serviceName as string);
    expect(headless.spec.clusterIP).toBe('None');
    const expected = Array.from({ length: redis.spec.replicas ?? 0 }, (_, i) => `${redis.metadata.name}-${i}.${headless.metadata.name}.${NAMESPACE}.svc:26379`);
    expect(federation.spec.store.sentinels).toEqual(expected);
    expect(federation.spec.store.sentinelName).toBe('fedgate');
    expect(configData(objects(), 'fedgate-redis-scripts')['sentinel.sh']).toContain('sentinel monitor fedgate ');
  });

  it('runs Redis as three pods of Redis + Sentinel (quorum 2), persistent, with a PDB', () => {
    const redis = find<Workload>(objects(), 'StatefulSet', 'fedgate-redis');
    expect(redis.spec.replicas).toBe(3);
    expect(redis.spec.template.spec.containers.map((c) => c.name)).toEqual(['redis', 'sentinel']);
    expect(redis.spec.volumeClaimTemplates?.map((t) => t.metadata.name)).toEqual(['data']);
    expect(configData(objects(), 'fedgate-redis-scripts')['sentinel.sh']).toMatch(/sentinel monitor fedgate \S+ 6379 2/);
    expect(find(objects(), 'PodDisruptionBudget', 'fedgate-redis')).toBeDefined();
    expect(find<ServiceObject>(objects(), 'Service', 'fedgate-redis-sentinel').spec.ports.map((p) => p.port)).toEqual([26379]);
  });

  it('can use an external Redis instead (deploy/overlays/controller-external-redis)', () => {
    const external = render('overlays/controller-external-redis');
    expect(external.some((o) => o.kind === 'StatefulSet')).toBe(false);
    const federation = federationFromObject(parse(configData(external, 'fedgate-controller-config')['federation.yaml'] as string));
    expect(federation.spec.store.url).toMatch(/^rediss:\/\//);
    const deployment = find<Workload>(external, 'Deployment', 'fedgate-controller');
    const redisDir = mountOf(deployment, 'controller', 'redis');
    expect(federation.spec.store.tls?.caFile).toBe(`${redisDir}/ca.crt`);
    expect(federation.spec.store.passwordFile).toBe(`${redisDir}/password`);
    expect(volume(deployment, 'redis')).toMatchObject({ secret: { items: [{ key: 'password' }, { key: 'ca.crt' }] } });
  });
});

describe.each(CLUSTERS.map((c) => [c, c]))('gateway of %s (deploy/overlays/%s)', (cluster) => {
  const objects = (): KubeObject[] => render(`overlays/${cluster}`);

  it('has a cluster file fedgate accepts, for this cluster, in Kubernetes discovery mode', () => {
    const data = configData(objects(), 'fedgate-gateway-config');
    expect(Object.keys(data).sort()).toEqual(['cluster', `${cluster}.yaml`].sort());
    expect(data.cluster).toBe(cluster);
    const config = clusterFromObject(parse(data[`${cluster}.yaml`] as string), `/etc/fedgate/clusters/${cluster}.yaml`);
    expect(config.metadata.name).toBe(cluster);
    expect(config.spec.trustDomain).toBe(`${cluster}.acme.internal`);
    expect(config.spec.region).toMatch(new RegExp(`^${cluster}-\\d$`));
    expect(config.spec.zone.startsWith(config.spec.region)).toBe(true);
    expect(config.spec.discovery.mode).toBe('kubernetes');
    expect(config.spec.controller?.address).toBe('controller.acme.example:15010');
    expect(config.spec.gateway.advertise).toEqual([`gateway.${cluster}.acme.example:15443`]);
  });

  it('runs the gateway on its cluster file, with its certificate from the signer and the membership mounted, never the CA key', () => {
    const objectsList = objects();
    const deployment = find<Workload>(objectsList, 'Deployment', 'fedgate-gateway');
    const gateway = container(deployment, 'gateway');
    const configDir = mountOf(deployment, 'gateway', 'config');
    expect(gateway.args).toEqual(['gateway', '--config', `${configDir}/$(FEDGATE_CLUSTER).yaml`]);
    expect(gateway.env?.find((e) => e.name === 'FEDGATE_CLUSTER')?.valueFrom?.configMapKeyRef).toEqual({ name: 'fedgate-gateway-config', key: 'cluster' });
    expect(gateway.image).toBe('registry.example.com/platform/fedgate:0.1.0');

    const config = clusterFromObject(parse(configData(objectsList, 'fedgate-gateway-config')[`${cluster}.yaml`] as string), `${configDir}/${cluster}.yaml`);
    expect(config.spec.gateway.certificateSource).toBe('signer');
    const signerSettings = config.spec.gateway.signer;
    // The signer's Service, in this namespace, on its port.
    const signerService = find<ServiceObject>(objectsList, 'Service', 'fedgate-signer');
    expect(signerSettings?.address).toBe(`${signerService.metadata.name}.${NAMESPACE}.svc:${signerService.spec.ports[0]?.port}`);
    // The public CA certificate from the documented ConfigMap, nothing else of it.
    expect(signerSettings?.caFile).toBe(`${mountOf(deployment, 'gateway', 'cluster-trust')}/ca.crt`);
    expect(volume(deployment, 'cluster-trust').configMap).toEqual({ name: 'fedgate-cluster-trust', items: [{ key: 'ca.crt', path: 'ca.crt' }] });
    // A ServiceAccount token bound to the signer's audience, the one the signer checks for.
    const projected = volume(deployment, 'signer-token').projected?.sources[0]?.serviceAccountToken;
    expect(signerSettings?.tokenFile).toBe(`${mountOf(deployment, 'gateway', 'signer-token')}/${projected?.path}`);
    const signerArgs = container(find<Workload>(objectsList, 'Deployment', 'fedgate-signer'), 'signer').args ?? [];
    expect(projected?.audience).toBe(signerArgs[signerArgs.indexOf('--kubernetes-audience') + 1]);
    expect(projected?.expirationSeconds).toBeLessThanOrEqual(3600);
    // No volume of the gateway comes from a secret but the membership (no key material).
    expect((deployment.spec.template.spec.volumes ?? []).filter((v) => v.secret).map((v) => v.secret?.secretName)).toEqual(['fedgate-membership']);

    const state = mountOf(deployment, 'gateway', 'state');
    expect(config.stateDir.startsWith(`${state}/`)).toBe(true);
    expect(volume(deployment, 'state').emptyDir).toBeDefined();
    // The membership written by the join Job is restored into the state directory.
    expect(volume(deployment, 'membership').secret).toMatchObject({ secretName: 'fedgate-membership' });
    expect(volume(deployment, 'membership').secret?.optional).toBeUndefined();
    expect(container(deployment, 'restore-membership').command?.join(' ')).toContain(`${config.stateDir}/membership.json`);
  });

  it('runs the signer: the only pod with the CA secret, issuing this cluster\'s gateway identity to the gateway\'s ServiceAccount only', () => {
    const objectsList = objects();
    const signer = find<Workload>(objectsList, 'Deployment', 'fedgate-signer');
    const c = container(signer, 'signer');
    const args = c.args ?? [];
    const flag = (name: string): string | undefined => (args.includes(name) ? args[args.indexOf(name) + 1] : undefined);
    expect(args.slice(0, 2)).toEqual(['ca', 'serve']);
    expect(flag('--ca')).toBe(mountOf(signer, 'signer', 'cluster-ca'));
    expect(volume(signer, 'cluster-ca').secret).toMatchObject({ secretName: 'fedgate-cluster-ca', defaultMode: 288 });
    expect(flag('--cluster')).toBe('$(FEDGATE_CLUSTER)');
    expect(c.env?.find((e) => e.name === 'FEDGATE_CLUSTER')?.valueFrom?.configMapKeyRef).toEqual({ name: 'fedgate-gateway-config', key: 'cluster' });
    const gateway = find<Workload>(objectsList, 'Deployment', 'fedgate-gateway');
    expect(flag('--kubernetes-service-account')).toBe(`${NAMESPACE}:${gateway.spec.template.spec.serviceAccountName}`);
    expect(args).toContain('--no-renewal');
    expect(flag('--max-ttl')).toBe('1h');
    expect((c.ports ?? []).map((p) => p.containerPort).sort()).toEqual([15016, 15017]);
    expect(c.readinessProbe?.httpGet).toEqual({ path: '/readyz', port: 15017 });
    expect(signer.spec.template.spec.serviceAccountName).toBe('fedgate-signer');
    expect(find<ServiceObject>(objectsList, 'Service', 'fedgate-signer').spec.type).toBe('ClusterIP');
    expect(find(objectsList, 'PodDisruptionBudget', 'fedgate-signer')).toBeDefined();

    // Exactly TokenReview, bound to the signer's account.
    expect(grants(rules(find(objectsList, 'ClusterRole', 'fedgate-signer')))).toEqual(['authentication.k8s.io/tokenreviews create']);
    const binding = find<KubeObject & { roleRef: { name: string }; subjects: Array<{ kind: string; name: string; namespace: string }> }>(objectsList, 'ClusterRoleBinding', 'fedgate-signer');
    expect(binding.roleRef.name).toBe('fedgate-signer');
    expect(binding.subjects).toEqual([{ kind: 'ServiceAccount', name: 'fedgate-signer', namespace: NAMESPACE }]);
  });

  it('probes /healthz and /readyz on the admin port 15021 and asks for resources', () => {
    const deployment = find<Workload>(objects(), 'Deployment', 'fedgate-gateway');
    const gateway = container(deployment, 'gateway');
    expect(gateway.livenessProbe?.httpGet).toEqual({ path: '/healthz', port: 15021 });
    expect(gateway.readinessProbe?.httpGet).toEqual({ path: '/readyz', port: 15021 });
    expect((gateway.ports ?? []).map((p) => p.containerPort).sort()).toEqual([15001, 15021, 15443]);
    expect(gateway.resources?.requests).toEqual({ cpu: '250m', memory: '256Mi' });
    expect(find(objects(), 'PodDisruptionBudget', 'fedgate-gateway')).toBeDefined();
  });

  it('exposes 15443 to other clusters through a LoadBalancer and 15001 in the cluster', () => {
    const inbound = find<ServiceObject>(objects(), 'Service', 'fedgate-gateway');
    expect(inbound.spec.type).toBe('LoadBalancer');
    expect(inbound.spec.ports.map((p) => [p.port, p.targetPort])).toEqual([[15443, 'tls-inbound']]);
    const outbound = find<ServiceObject>(objects(), 'Service', 'fedgate-gateway-outbound');
    expect(outbound.spec.type).toBe('ClusterIP');
    expect(outbound.spec.ports.map((p) => p.port)).toEqual([15001, 15021]);
  });

  it('may do exactly what Kubernetes discovery needs (RBAC)', () => {
    const role = find(objects(), 'ClusterRole', 'fedgate-gateway');
    expect(grants(rules(role))).toEqual(
      grants([
        { apiGroups: [''], resources: ['services'], verbs: ['get', 'list', 'watch'] },
        { apiGroups: ['discovery.k8s.io'], resources: ['endpointslices'], verbs: ['get', 'list', 'watch'] },
        { apiGroups: ['multicluster.x-k8s.io'], resources: ['serviceexports'], verbs: ['get', 'list', 'watch'] },
        { apiGroups: ['multicluster.x-k8s.io'], resources: ['serviceexports/status'], verbs: ['update', 'patch'] },
        { apiGroups: ['multicluster.x-k8s.io'], resources: ['serviceimports'], verbs: ['get', 'list', 'watch', 'create', 'update', 'patch', 'delete'] },
        // src/discovery/kubernetes/service-import-reconciler.ts writes ServiceImport status through
        // the status subresource (the CRD has one), which needs its own grant.
        { apiGroups: ['multicluster.x-k8s.io'], resources: ['serviceimports/status'], verbs: ['update', 'patch'] },
      ]),
    );
    const binding = find<KubeObject & { roleRef: { kind: string; name: string }; subjects: Array<{ kind: string; name: string; namespace: string }> }>(objects(), 'ClusterRoleBinding', 'fedgate-gateway');
    expect(binding.roleRef).toMatchObject({ kind: 'ClusterRole', name: 'fedgate-gateway' });
    const deployment = find<Workload>(objects(), 'Deployment', 'fedgate-gateway');
    expect(binding.subjects).toEqual([{ kind: 'ServiceAccount', name: deployment.spec.template.spec.serviceAccountName, namespace: NAMESPACE }]);
  });

  it('installs the CRDs and the namespace with the restricted Pod Security Standard', () => {
    expect(objects().filter((o) => o.kind === 'CustomResourceDefinition')).toHaveLength(2 + NATIVE_KINDS.length);
    const namespace = find(objects(), 'Namespace', NAMESPACE);
    expect(namespace.metadata.labels).toMatchObject({ 'pod-security.kubernetes.io/enforce': 'restricted' });
  });
});

describe('clusters together', () => {
  it('have distinct names, trust domains and advertised addresses', () => {
    const configs = CLUSTERS.map((cluster) => parse(configData(render(`overlays/${cluster}`), 'fedgate-gateway-config')[`${cluster}.yaml`] as string) as { metadata: { name: string }; spec: { trustDomain: string; gateway: { advertise: string[] } } });
    for (const field of [(c: (typeof configs)[number]) => c.metadata.name, (c: (typeof configs)[number]) => c.spec.trustDomain, (c: (typeof configs)[number]) => c.spec.gateway.advertise.join()]) {
      expect(new Set(configs.map(field)).size).toBe(CLUSTERS.length);
    }
  });
});

describe('join Job (deploy/join)', () => {
  const objects = (): KubeObject[] => render('join');

  it('joins with the token, the controller CA and the cluster\'s public CA certificate, then writes only the membership secret', () => {
    const job = find<Workload>(objects(), 'Job', 'fedgate-join');
    const joiner = container(job, 'join');
    const tokenDir = mountOf(job, 'join', 'join-token');
    expect(joiner.args).toEqual(['join', '--config', `${mountOf(job, 'join', 'config')}/$(FEDGATE_CLUSTER).yaml`, '--token-file', `${tokenDir}/token`, '--controller-ca', `${tokenDir}/controller-ca.crt`]);
    expect(volume(job, 'join-token').secret?.secretName).toBe('fedgate-join-token');
    expect(volume(job, 'cluster-trust').configMap).toEqual({ name: 'fedgate-cluster-trust', items: [{ key: 'ca.crt', path: 'ca.crt' }] });
    // The Job runs against the gateway's ConfigMap: the same paths as the gateway.
    const gateway = find<Workload>(render('overlays/us-east'), 'Deployment', 'fedgate-gateway');
    expect(mountOf(job, 'join', 'cluster-trust')).toBe(mountOf(gateway, 'gateway', 'cluster-trust'));
    expect(mountOf(job, 'join', 'state')).toBe(mountOf(gateway, 'gateway', 'state'));
    expect(tokenDir).toBe('/etc/fedgate/join');
    expect(volume(job, 'config').configMap?.name).toBe('fedgate-gateway-config');

    expect(grants(rules(find(objects(), 'Role', 'fedgate-join')))).toEqual(['core/secrets create', 'core/secrets get [fedgate-membership]', 'core/secrets update [fedgate-membership]']);
    const script = configData(objects(), 'fedgate-join-script')['store-membership.mjs'] as string;
    expect(script).toContain("name: 'fedgate-membership'");
    expect(script).toContain('/var/lib/fedgate/state/membership.json');
    expect(readKustomization(join(DEPLOY, 'join')).namespace).toBe(NAMESPACE);
  });
});

// ---- who holds the cluster CA key ----

describe('the cluster CA key (issue 28: it leaves the gateway)', () => {
  const everything = (): Array<{ dir: string; objects: KubeObject[] }> => KUSTOMIZATION_DIRS.map((d) => relative(DEPLOY, d)).map((dir) => ({ dir, objects: render(dir) }));

  it('is mounted by the signer and by no other workload anywhere in deploy/', () => {
    const mounting = new Set<string>();
    for (const { objects } of everything()) {
      for (const workload of workloads(objects)) {
        if ((workload.spec.template.spec.volumes ?? []).some((v) => v.secret?.secretName === 'fedgate-cluster-ca')) mounting.add(workload.metadata.name);
      }
    }
    expect([...mounting]).toEqual(['fedgate-signer']);
  });

  it('is readable through the API by no fedgate ServiceAccount: the only secret any role may read is the membership', () => {
    const secretReads: string[] = [];
    for (const { dir, objects } of everything()) {
      for (const role of objects.filter((o) => o.kind === 'Role' || o.kind === 'ClusterRole')) {
        for (const rule of rules(role)) {
          if (!rule.apiGroups.includes('') || !(rule.resources.includes('secrets') || rule.resources.includes('*'))) continue;
          if (rule.verbs.some((v) => ['get', 'list', 'watch', '*'].includes(v))) secretReads.push(`${dir} ${role.metadata.name}: ${rule.resourceNames?.join(',') ?? 'every secret'}`);
        }
      }
    }
    expect(secretReads).toEqual(['join fedgate-join: fedgate-membership']);
  });
});

// ---- NetworkPolicies ----

/** Every pod a cluster of this example runs, as NetworkPolicy sees it, plus pods and addresses around it. */
function podsOf(objects: KubeObject[]): PodEndpoint[] {
  const namespace = objects.find((o) => o.kind === 'Namespace' && o.metadata.name === NAMESPACE);
  const namespaceLabels = { ...((namespace?.metadata.labels as Record<string, string> | undefined) ?? {}), 'kubernetes.io/metadata.name': NAMESPACE };
  return workloads(objects).map((w) => ({
    kind: 'pod',
    name: w.metadata.name,
    namespace: NAMESPACE,
    namespaceLabels,
    labels: w.spec.template.metadata.labels,
    ports: allContainers(w.spec.template.spec).flatMap((c) => c.ports ?? []),
  }));
}

const otherPod = (name: string, namespace: string, labels: Record<string, string>, ports: PodEndpoint['ports'] = []): PodEndpoint => ({ kind: 'pod', name, namespace, namespaceLabels: { 'kubernetes.io/metadata.name': namespace }, labels, ports });
const AROUND: Record<string, Endpoint> = {
  'a workload': otherPod('web', 'shop', { app: 'web' }, [{ containerPort: 8080 }]),
  prometheus: otherPod('prometheus', 'monitoring', { app: 'prometheus' }),
  'kube-dns': otherPod('coredns', 'kube-system', { 'k8s-app': 'kube-dns' }, [{ containerPort: 53, protocol: 'UDP' }, { containerPort: 53 }]),
  'a pod of fedgate-system': otherPod('fedgate-join', NAMESPACE, { 'app.kubernetes.io/component': 'join' }),
  'the internet': { kind: 'external', name: 'internet', ip: '203.0.113.10' },
  'the API server': { kind: 'external', name: 'apiserver', ip: '10.0.0.1' },
  'a remote gateway': { kind: 'external', name: 'remote-gateway', ip: '198.51.100.20' },
  'an external Redis': { kind: 'external', name: 'redis', ip: '192.0.2.30' },
};

describe('NetworkPolicies', () => {
  // us-east runs the control plane next to its gateway in this example: one network for both.
  const cluster = (): KubeObject[] => [...render('overlays/us-east'), ...render('overlays/controller')];
  const policies = (objects: KubeObject[]): NetworkPolicyObject[] => objects.filter((o) => o.kind === 'NetworkPolicy') as unknown as NetworkPolicyObject[];

  it.each(['overlays/us-east', 'overlays/us-west', 'overlays/eu-west', 'overlays/controller', 'overlays/controller-external-redis'])('%s: every pod is under exactly one policy, isolated both ways', (dir) => {
    const objects = render(dir);
    for (const pod of podsOf(objects)) {
      const selecting = policies(objects).filter((p) => selects(p, pod));
      expect({ pod: pod.name, policies: selecting.map((p) => p.metadata.name) }).toEqual({ pod: pod.name, policies: [expect.any(String)] });
      expect({ pod: pod.name, types: policyTypes(selecting[0] as NetworkPolicyObject).sort() }).toEqual({ pod: pod.name, types: ['Egress', 'Ingress'] });
    }
  });

  // [from, to, port, protocol, allowed]: the flows the architecture needs, and neighbours it must refuse.
  const FLOWS: Array<[string, string, number, Protocol, boolean]> = [
    ['fedgate-gateway', 'fedgate-signer', 15016, 'TCP', true],
    ['a workload', 'fedgate-signer', 15016, 'TCP', false],
    ['a pod of fedgate-system', 'fedgate-signer', 15016, 'TCP', false],
    ['fedgate-controller', 'fedgate-signer', 15016, 'TCP', false],
    ['prometheus', 'fedgate-signer', 15017, 'TCP', true],
    ['a workload', 'fedgate-signer', 15017, 'TCP', false],
    ['fedgate-signer', 'the API server', 443, 'TCP', true],
    ['fedgate-signer', 'kube-dns', 53, 'UDP', true],
    ['fedgate-signer', 'the internet', 15443, 'TCP', false],
    ['fedgate-signer', 'a workload', 8080, 'TCP', false],
    ['fedgate-signer', 'fedgate-gateway', 15021, 'TCP', false],
    ['the internet', 'fedgate-gateway', 15443, 'TCP', true],
    ['the internet', 'fedgate-gateway', 15001, 'TCP', false],
    ['the internet', 'fedgate-gateway', 15021, 'TCP', false],
    ['a workload', 'fedgate-gateway', 15001, 'TCP', true],
    ['a workload', 'fedgate-gateway', 15021, 'TCP', false],
    ['prometheus', 'fedgate-gateway', 15021, 'TCP', true],
    ['fedgate-gateway', 'a workload', 8080, 'TCP', true],
    ['fedgate-gateway', 'a remote gateway', 15443, 'TCP', true],
    ['fedgate-gateway', 'a remote gateway', 15012, 'TCP', true],
    ['fedgate-gateway', 'the internet', 22, 'TCP', false],
    ['fedgate-gateway', 'the API server', 443, 'TCP', true],
    ['fedgate-gateway', 'kube-dns', 53, 'UDP', true],
    ['fedgate-gateway', 'fedgate-controller', 15012, 'TCP', true],
    ['fedgate-gateway', 'fedgate-redis', 6379, 'TCP', false],
    ['the internet', 'fedgate-controller', 15010, 'TCP', true],
    ['the internet', 'fedgate-controller', 15012, 'TCP', true],
    ['the internet', 'fedgate-controller', 15014, 'TCP', false],
    ['a workload', 'fedgate-controller', 15014, 'TCP', false],
    ['prometheus', 'fedgate-controller', 15014, 'TCP', true],
    ['a pod of fedgate-system', 'fedgate-controller', 15014, 'TCP', true],
    ['fedgate-controller', 'fedgate-redis', 6379, 'TCP', true],
    ['fedgate-controller', 'fedgate-redis', 26379, 'TCP', true],
    ['fedgate-controller', 'the internet', 443, 'TCP', false],
    ['fedgate-controller', 'fedgate-gateway', 15443, 'TCP', false],
    ['fedgate-redis', 'fedgate-redis', 26379, 'TCP', true],
    ['a workload', 'fedgate-redis', 6379, 'TCP', false],
    ['fedgate-redis', 'the internet', 443, 'TCP', false],
  ];

  it.each(FLOWS)('%s → %s:%d/%s allowed: %s', (from, to, port, protocol, allowed) => {
    const objects = cluster();
    const endpoints = new Map<string, Endpoint>([...podsOf(objects).map((p): [string, Endpoint] => [p.name, p]), ...Object.entries(AROUND)]);
    const source = endpoints.get(from);
    const destination = endpoints.get(to);
    if (!source || !destination) throw new Error(`unknown endpoint ${source ? to : from}`);
    expect(flowAllowed(policies(objects), source, destination, port, protocol)).toBe(allowed);
  });

  it('lets the controller reach an external Redis (and only Redis ports) in controller-external-redis', () => {
    const objects = render('overlays/controller-external-redis');
    const controller = podsOf(objects).find((p) => p.name === 'fedgate-controller') as PodEndpoint;
    const redis = AROUND['an external Redis'] as Endpoint;
    expect(flowAllowed(policies(objects), controller, redis, 6380)).toBe(true);
    expect(flowAllowed(policies(objects), controller, redis, 443)).toBe(false);
  });

  it('has teeth: without the policies every flow above is allowed', () => {
    const objects = cluster();
    const endpoints = new Map<string, Endpoint>([...podsOf(objects).map((p): [string, Endpoint] => [p.name, p]), ...Object.entries(AROUND)]);
    for (const [from, to, port, protocol] of FLOWS) expect(flowAllowed([], endpoints.get(from) as Endpoint, endpoints.get(to) as Endpoint, port, protocol)).toBe(true);
  });
});

// ---- Grafana ----

describe('Grafana dashboard (deploy/grafana/fedgate-dashboard.json)', () => {
  interface Panel {
    id: number;
    type: string;
    title: string;
    gridPos: { h: number; w: number; x: number; y: number };
    datasource?: { uid: string };
    targets?: Array<{ expr: string }>;
  }
  const dashboard = (): { uid: string; title: string; panels: Panel[]; templating: { list: Array<{ name: string }> } } =>
    JSON.parse(readFileSync(join(DEPLOY, 'grafana', 'fedgate-dashboard.json'), 'utf8'));
  const exprs = (): string[] => dashboard().panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr));

  const METRICS = [
    'fedgate_requests_total',
    'fedgate_request_duration_seconds',
    'fedgate_upstream_healthy',
    'fedgate_failovers_total',
    'fedgate_failover_seconds',
    'fedgate_retries_total',
    'fedgate_overflow_total',
    'fedgate_tcp_connections_total',
    'fedgate_controller_gateway_sessions',
    'fedgate_controller_catalog_revision',
    'fedgate_controller_store_up',
    'fedgate_controller_leader',
    'fedgate_controller_change_apply_seconds',
    'fedgate_drill_runs_total',
    'fedgate_drill_last_failover_seconds',
    'fedgate_policy_revision',
    'fedgate_policy_applies_total',
    'fedgate_authz_decisions_total',
    'fedgate_fault_injections_total',
    'fedgate_certificate_expiry_timestamp_seconds',
  ];

  it('references every fedgate metric, and only metrics fedgate exports', () => {
    const used = new Set(exprs().flatMap((e) => e.match(/\bfedgate_[a-z0-9_]+/g) ?? []));
    const base = (name: string): string => name.replace(/_(bucket|sum|count)$/, '');
    for (const metric of METRICS) expect([...used].some((u) => base(u) === metric)).toBe(true);
    // Node process metrics of prom-client's collectDefaultMetrics, with the fedgate_ prefix.
    const processMetric = /^fedgate_(process|nodejs)_/;
    expect([...used].filter((u) => !METRICS.includes(base(u)) && !processMetric.test(u))).toEqual([]);
  });

  it('shows rate by destination cluster, errors by code, p50/p99 from the histogram, health, failovers, controller and drills', () => {
    const all = exprs();
    const has = (pattern: RegExp): boolean => all.some((e) => pattern.test(e));
    expect(has(/sum by \(destination_cluster\) \(rate\(fedgate_requests_total\{/)).toBe(true);
    expect(has(/sum by \(code\) \(rate\(fedgate_requests_total\{[^}]*code!~/)).toBe(true);
    expect(has(/histogram_quantile\(0\.5, sum by \(le, destination_cluster\) \(rate\(fedgate_request_duration_seconds_bucket/)).toBe(true);
    expect(has(/histogram_quantile\(0\.99, sum by \(le, destination_cluster\) \(rate\(fedgate_request_duration_seconds_bucket/)).toBe(true);
    expect(has(/histogram_quantile\(0\.99, sum by \(le, destination_cluster\) \(increase\(fedgate_failover_seconds_bucket/)).toBe(true);
    expect(has(/fedgate_drill_runs_total/) && has(/by \(service, mode, outcome\)/)).toBe(true);
  });

  it('shows policy convergence, authorization decisions and injected faults', () => {
    const all = exprs();
    const has = (pattern: RegExp): boolean => all.some((e) => pattern.test(e));
    // Revision in force per cluster against the newest received, gateways behind, refusals (NACKs).
    expect(has(/min by \(cluster\) \(fedgate_policy_revision\{state="applied"/)).toBe(true);
    expect(has(/max\(fedgate_policy_revision\{state="latest"\}\)/)).toBe(true);
    expect(has(/fedgate_policy_revision\{state="latest"\} > ignoring\(state\) fedgate_policy_revision\{state="applied"\}/)).toBe(true);
    expect(has(/sum by \(cluster, result\) \(increase\(fedgate_policy_applies_total/)).toBe(true);
    // Allow/deny by serving cluster, denials by policy, refusals by calling → serving cluster.
    expect(has(/sum by \(cluster, decision\) \(rate\(fedgate_authz_decisions_total/)).toBe(true);
    expect(has(/sum by \(cluster, service, policy\) \(rate\(fedgate_authz_decisions_total\{decision="deny"/)).toBe(true);
    expect(has(/sum by \(source_cluster, destination_cluster\) \(rate\(fedgate_requests_total\{direction="inbound", code=~"403\|grpc-7"/)).toBe(true);
    // Delays and aborts by service.
    expect(has(/sum by \(cluster, service, fault\) \(rate\(fedgate_fault_injections_total/)).toBe(true);
    const titles = dashboard().panels.filter((p) => p.type === 'row').map((p) => p.title);
    expect(titles).toEqual(expect.arrayContaining(['Policy convergence', 'Authorization (at the serving gateway)', 'Faults (FaultPolicy)', 'Certificates']));
  });

  it('is a well-formed dashboard: unique panel ids, no overlapping panels, a Prometheus data source variable', () => {
    const { uid, title, panels, templating } = dashboard();
    expect(uid).toBe('fedgate-overview');
    expect(title.length).toBeGreaterThan(0);
    expect(new Set(panels.map((p) => p.id)).size).toBe(panels.length);
    expect(templating.list.map((v) => v.name)).toEqual(expect.arrayContaining(['datasource', 'source_cluster', 'service']));
    const cells = new Set<string>();
    for (const panel of panels) {
      expect(panel.gridPos.x + panel.gridPos.w).toBeLessThanOrEqual(24);
      if (panel.type !== 'row') expect(panel.datasource?.uid).toBe('${datasource}');
      for (let x = panel.gridPos.x; x < panel.gridPos.x + panel.gridPos.w; x++) {
        for (let y = panel.gridPos.y; y < panel.gridPos.y + panel.gridPos.h; y++) {
          const cell = `${x},${y}`;
          expect(`${panel.title} at ${cell}: ${cells.has(cell) ? 'overlaps' : 'free'}`).toBe(`${panel.title} at ${cell}: free`);
          cells.add(cell);
        }
      }
    }
    // Balanced parentheses and braces in every query (a cheap guard against broken PromQL).
    for (const expr of exprs()) {
      for (const [open, close] of [['(', ')'], ['{', '}'], ['[', ']']] as const) {
        expect(`${expr}: ${expr.split(open).length - expr.split(close).length}`).toBe(`${expr}: 0`);
      }
    }
  });
});
