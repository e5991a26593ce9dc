import { join } from 'node:path';
import { ConfigError } from '../../core/errors.js';
import type { Logger } from '../../core/logger.js';
import type { ClusterConfig } from '../../config/cluster-config.js';
import type { FederationDirectory } from '../../config/load.js';
import type { PolicyRecord } from '../../model/catalog.js';
import { gatewayPolicyProblems, validatePolicySet } from '../../policy/policy-set.js';
import { PolicyIndex } from '../../policy/resolve.js';
import type { CatalogData } from './catalog-replica.js';
import type { FederationSettings } from './settings-file.js';
import { staticCatalog } from './static-catalog.js';

/** A federation without a controller, as one gateway reads it from federation-config. */
export interface StaticFederation {
  settings: FederationSettings;
  catalog: CatalogData;
  index: PolicyIndex;
  records: PolicyRecord[];
  revision: number;
}

/**
 * Reads a static federation for one gateway. Its policies are configuration: a set this gateway
 * cannot apply stops it at start, with every problem, rather than running without them.
 */
export function loadStaticFederation(directory: FederationDirectory, cluster: ClusterConfig, log: Logger): StaticFederation {
  const validated = validatePolicySet(directory.policyDocuments.map((doc) => ({ document: doc.value, source: doc.source, lineOf: (path) => doc.lineOf(path) })));
  if (validated.issues.length > 0) throw new ConfigError(validated.issues);
  const index = new PolicyIndex(validated.set);
  const problems = gatewayPolicyProblems(index, { cluster: cluster.metadata.name, allowFaultInjection: cluster.spec.gateway.policies.allowFaultInjection });
  if (problems.length > 0) throw new ConfigError(problems.map((message) => ({ source: join(directory.root, 'policies'), path: '', message })));
  const records: PolicyRecord[] = validated.policies.map((p) => ({ ...p, revision: 1 }));
  const revision = records.length > 0 ? 1 : 0;
  return {
    settings: { federation: directory.federation.metadata.name, defaults: directory.federation.spec.defaults },
    catalog: staticCatalog(directory, records, cluster.metadata.name, log),
    index,
    records,
    revision,
  };
}
