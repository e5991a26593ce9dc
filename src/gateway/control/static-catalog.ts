import { errorMessage } from '../../core/errors.js';
import type { Logger } from '../../core/logger.js';
import type { FederationDirectory } from '../../config/load.js';
import type { BundleRecord, ClusterRecord, ExportRecord, PolicyRecord } from '../../model/catalog.js';
import { mergeExports, viewForConsumer, type ClustersetServiceView } from '../../model/clusterset.js';
import { PkiDirectory } from '../../pki/pki-directory.js';
import type { CatalogData } from './catalog-replica.js';

/**
 * A catalog read straight from federation-config, for gateways that run without a controller:
 * every cluster file's exports, every cluster's bundle from its CA directory, and the policies.
 */
export function staticCatalog(directory: FederationDirectory, policies: readonly PolicyRecord[], localCluster: string, log: Logger): CatalogData {
  const clusters = new Map<string, ClusterRecord>();
  const exports: ExportRecord[] = [];
  const bundles = new Map<string, BundleRecord>();
  for (const cluster of directory.clusters) {
    const name = cluster.metadata.name;
    clusters.set(name, {
      name,
      region: cluster.spec.region,
      zone: cluster.spec.zone,
      trustDomain: cluster.spec.trustDomain,
      gatewayAddresses: [...(cluster.spec.gateway.advertise ?? [cluster.spec.gateway.inbound])],
      labels: { ...cluster.metadata.labels },
      state: 'active',
      stateReason: 'static federation',
      stateChangedBy: 'federation-config',
      stateChangedAt: 0,
      joinedAt: 0,
    });
    for (const e of cluster.spec.exports) {
      exports.push({
        cluster: name,
        namespace: e.namespace,
        name: e.service,
        ports: e.ports.map((p) => ({ name: p.name, port: p.port, protocol: p.protocol })),
        readyEndpoints: e.endpoints.filter((ep) => ep.ready).length,
        totalEndpoints: e.endpoints.length,
        consumers: [...e.consumers],
        createdAt: 0,
      });
    }
    try {
      const pki = new PkiDirectory(cluster.pkiDir, { trustDomain: cluster.spec.trustDomain });
      if (pki.exists()) {
        const bundle = pki.bundle();
        bundles.set(bundle.trustDomain, { trustDomain: bundle.trustDomain, sequence: bundle.sequence, spiffeJson: JSON.stringify(bundle.toSpiffeJson()) });
      } else {
        log.warn({ member: name, pkiDir: cluster.pkiDir }, 'no CA for this cluster in federation-config; its gateway will not be trusted');
      }
    } catch (error) {
      log.error({ member: name, err: errorMessage(error) }, 'cannot read this cluster\'s bundle');
    }
  }
  const byService = new Map<string, ExportRecord[]>();
  for (const e of exports) byService.set(`${e.namespace}/${e.name}`, [...(byService.get(`${e.namespace}/${e.name}`) ?? []), e]);
  const services = new Map<string, ClustersetServiceView>();
  for (const [key, list] of byService) {
    // As the controller would: this gateway sees only the exports meant for its cluster.
    const merged = mergeExports(list);
    const view = merged ? viewForConsumer(merged, new Map(list.map((e) => [e.cluster, e])), localCluster) : undefined;
    if (view) services.set(key, view);
  }
  return {
    epoch: 'static',
    revision: 1,
    policyRevision: policies.reduce((max, p) => Math.max(max, p.revision), 0),
    clusters,
    services,
    bundles,
    policies: new Map(policies.map((p) => [p.key, p])),
  };
}
