import type { ExportVerdict } from '../proto/gen/fedgate.js';
import type { AppliedPolicies } from './control/applied-policies.js';
import type { HealthChecker } from './registry/health-checker.js';
import type { OutlierRegistry } from './registry/outlier-registry.js';
import type { ControlView } from './view/control-view.js';

/** What /config shows of a gateway, beside its control view. */
export interface GatewayFacts {
  cluster: string;
  instance: string;
  mode: 'static' | 'joined';
  federation: string | undefined;
  controllerConnected: boolean;
  controlProblem: string | undefined;
  controllers: string[];
  identity: string;
  certificate: { source: string; serial: string; notAfter: string };
  ports: { inbound: number; outbound: number; admin: number; tcp: number[] };
  verdicts: readonly ExportVerdict[];
}

/** The gateway as /config prints it: what is applied, and the state of its health checks and ejections. */
export function describeGateway(view: ControlView, facts: GatewayFacts, parts: { policies: AppliedPolicies; health: HealthChecker; outliers: OutlierRegistry }): unknown {
  const data = view.catalog;
  return {
    cluster: facts.cluster,
    instance: facts.instance,
    federation: facts.federation,
    mode: facts.mode,
    controllerConnected: facts.controllerConnected,
    ...(facts.controlProblem ? { controlProblem: facts.controlProblem } : {}),
    controllers: facts.controllers,
    identity: facts.identity,
    certificate: facts.certificate,
    ports: facts.ports,
    catalog: {
      epoch: data.epoch,
      revision: data.revision,
      policyRevision: data.policyRevision,
      clusters: [...data.clusters.values()].map((c) => ({ name: c.name, region: c.region, zone: c.zone, state: c.state, addresses: c.gatewayAddresses })),
      services: [...data.services.values()].map((s) => ({
        service: `${s.namespace}/${s.name}`,
        ports: s.ports,
        exporters: s.exporters.map((e) => ({ cluster: e.cluster, ready: e.readyEndpoints, total: e.totalEndpoints })),
        conflicts: s.conflicts,
      })),
      bundles: [...data.bundles.values()].map((b) => ({ trustDomain: b.trustDomain, sequence: b.sequence })),
    },
    policies: parts.policies.describe(),
    localExports: [...view.localExports.exports.values()].map((e) => ({
      service: `${e.namespace}/${e.name}`,
      ports: e.ports,
      ready: e.endpoints.filter((ep) => ep.ready).length,
      total: e.endpoints.length,
      consumers: e.consumers,
    })),
    verdicts: facts.verdicts,
    health: parts.health.snapshot(),
    ejections: parts.outliers.describe(),
    blackholed: [...view.blackholes],
    defaults: view.defaults,
  };
}
