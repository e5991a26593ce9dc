/**
 * deploy/monitoring with the Prometheus operator: the ServiceMonitor and PodMonitor scrape the
 * admin ports of the pods the overlays run, under the job names the alert rules select, and the
 * operator objects are checked against the operator's CRDs (prometheus-operator.ts) with teeth.
 * (That every object validates and the kustomization renders is in manifests.test.ts.)
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { renderKustomization, type KubeObject } from './kustomize-render.js';
import { MONITORING_MODELS, monitoringFieldProblems, PROMETHEUS_OPERATOR_CRDS } from './prometheus-operator.js';

const DEPLOY = join(process.cwd(), 'deploy');

interface Relabeling {
  action?: string;
  sourceLabels?: string[];
  regex?: string;
  targetLabel?: string;
  replacement?: string;
}
interface Endpoint {
  port: string;
  path?: string;
  relabelings?: Relabeling[];
}
interface Monitor extends KubeObject {
  spec: { selector: { matchLabels: Record<string, string> }; endpoints?: Endpoint[]; podMetricsEndpoints?: Endpoint[] };
}
interface Workload extends KubeObject {
  spec: { template: { metadata: { labels: Record<string, string>; annotations?: Record<string, string> }; spec: { containers: Array<{ name: string; ports?: Array<{ name?: string; containerPort: number }> }> } } };
}
interface ServiceObject extends KubeObject {
  spec: { selector: Record<string, string>; ports: Array<{ name: string; port: number; targetPort: string | number }> };
}

const monitoring = (): KubeObject[] => renderKustomization(join(DEPLOY, 'monitoring'), DEPLOY);
const find = <T extends KubeObject>(objects: KubeObject[], kind: string, name: string): T => {
  const found = objects.find((o) => o.kind === kind && o.metadata.name === name);
  if (!found) throw new Error(`no ${kind} ${name}`);
  return found as T;
};
const matches = (selector: Record<string, string>, labels: Record<string, string>): boolean => Object.entries(selector).every(([k, v]) => labels[k] === v);
const jobOf = (endpoint: Endpoint): string | undefined => endpoint.relabelings?.find((r) => r.targetLabel === 'job' && (r.action ?? 'replace') === 'replace')?.replacement;

/** The job names the alert rules select on (`up{job="…"}`). */
function ruleJobs(): Set<string> {
  const rule = parse(readFileSync(join(DEPLOY, 'monitoring', 'fedgate-alerts.yaml'), 'utf8')) as { spec: { groups: Array<{ rules: Array<{ expr: string }> }> } };
  const jobs = new Set<string>();
  for (const { expr } of rule.spec.groups.flatMap((g) => g.rules)) for (const m of expr.matchAll(/job="([^"]+)"/g)) jobs.add(m[1] as string);
  return jobs;
}

describe('deploy/monitoring (Prometheus operator)', () => {
  it('holds a PrometheusRule, a ServiceMonitor for the controller and a PodMonitor for the gateways', () => {
    expect(monitoring().map((o) => `${o.kind}/${o.metadata.name}`).sort()).toEqual(['PodMonitor/fedgate-gateway', 'PrometheusRule/fedgate', 'ServiceMonitor/fedgate-controller']);
    expect(PROMETHEUS_OPERATOR_CRDS.join()).toMatch(/prometheus-operator\/releases\/download\/v0\.\d+\.\d+\//);
  });

  it('scrapes the controller through Service fedgate-controller\'s admin port, as job fedgate-controller', () => {
    const controller = renderKustomization(join(DEPLOY, 'overlays', 'controller'), DEPLOY);
    const monitor = find<Monitor>(monitoring(), 'ServiceMonitor', 'fedgate-controller');
    const services = controller.filter((o): o is ServiceObject => o.kind === 'Service' && matches(monitor.spec.selector.matchLabels, o.metadata.labels as Record<string, string>));
    // Both the in-cluster and the public Service match the labels; the keep rule leaves one.
    expect(services.map((s) => s.metadata.name).sort()).toEqual(['fedgate-controller', 'fedgate-controller-public']);
    const [endpoint] = monitor.spec.endpoints ?? [];
    expect(endpoint?.relabelings?.[0]).toEqual({ action: 'keep', sourceLabels: ['__meta_kubernetes_service_name'], regex: 'fedgate-controller' });
    const service = find<ServiceObject>(controller, 'Service', 'fedgate-controller');
    const port = service.spec.ports.find((p) => p.name === endpoint?.port);
    const deployment = find<Workload>(controller, 'Deployment', 'fedgate-controller');
    const annotations = deployment.spec.template.metadata.annotations ?? {};
    expect(port?.port).toBe(Number(annotations['prometheus.io/port']));
    expect(endpoint?.path).toBe(annotations['prometheus.io/path']);
    expect(jobOf(endpoint as Endpoint)).toBe('fedgate-controller');
    expect(endpoint?.relabelings).toContainEqual({ action: 'labeldrop', regex: 'service' });
  });

  it('scrapes every gateway pod\'s admin port, as job fedgate-gateway, in each cluster overlay', () => {
    const monitor = find<Monitor>(monitoring(), 'PodMonitor', 'fedgate-gateway');
    const [endpoint] = monitor.spec.podMetricsEndpoints ?? [];
    for (const cluster of ['us-east', 'us-west', 'eu-west']) {
      const deployment = find<Workload>(renderKustomization(join(DEPLOY, 'overlays', cluster), DEPLOY), 'Deployment', 'fedgate-gateway');
      expect(matches(monitor.spec.selector.matchLabels, deployment.spec.template.metadata.labels)).toBe(true);
      const port = deployment.spec.template.spec.containers.flatMap((c) => c.ports ?? []).find((p) => p.name === endpoint?.port);
      const annotations = deployment.spec.template.metadata.annotations ?? {};
      expect({ cluster, port: port?.containerPort, path: endpoint?.path }).toEqual({ cluster, port: Number(annotations['prometheus.io/port']), path: annotations['prometheus.io/path'] });
    }
    expect(jobOf(endpoint as Endpoint)).toBe('fedgate-gateway');
  });

  it('names exactly the jobs the alert rules select', () => {
    const monitors = monitoring().filter((o): o is Monitor => o.kind === 'ServiceMonitor' || o.kind === 'PodMonitor');
    const jobs = new Set(monitors.flatMap((m) => [...(m.spec.endpoints ?? []), ...(m.spec.podMetricsEndpoints ?? [])]).map(jobOf));
    expect([...jobs].sort()).toEqual([...ruleJobs()].sort());
  });

  it('finds unknown fields and invalid values in operator objects (the checks have teeth)', () => {
    const monitor = find<Monitor>(monitoring(), 'PodMonitor', 'fedgate-gateway');
    const misspelt = structuredClone(monitor) as unknown as { spec: { podMetricsEndpoints: Array<Record<string, unknown>> } };
    const endpoint = misspelt.spec.podMetricsEndpoints[0] as Record<string, unknown>;
    endpoint.relabellings = endpoint.relabelings;
    delete endpoint.relabelings;
    expect(monitoringFieldProblems(misspelt as unknown as KubeObject)).toEqual([expect.stringMatching(/^spec\.podMetricsEndpoints\[0\]\.relabellings: .*'"relabellings"' does not exist/)]);

    const rule = find(monitoring(), 'PrometheusRule', 'fedgate') as unknown as { spec: { groups: Array<{ rules: Array<Record<string, unknown>> }> } };
    const wrong = structuredClone(rule);
    (wrong.spec.groups[0]?.rules[0] as Record<string, unknown>).for = 120;
    expect(monitoringFieldProblems(wrong as unknown as KubeObject)).toEqual([expect.stringMatching(/^spec\.groups\[0\]\.rules\[0\]\.for: Type 'number' is not assignable to type 'string'/)]);

    // The CRD models reject what the types cannot express (here: the relabeling action enum).
    const badAction = structuredClone(monitor) as unknown as { spec: { podMetricsEndpoints: Array<{ relabelings: Array<Record<string, unknown>> }> } };
    (badAction.spec.podMetricsEndpoints[0]?.relabelings[0] as Record<string, unknown>).action = 'rename';
    expect(() => new MONITORING_MODELS['monitoring.coreos.com/v1/PodMonitor'](badAction as never).validate()).toThrow(/action/);
  });
});
