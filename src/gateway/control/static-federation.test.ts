import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { loadFederationDirectory } from '../../config/load.js';
import { ConfigError } from '../../core/errors.js';
import { createSilentLogger } from '../../core/logger.js';
import { loadStaticFederation } from './static-federation.js';

/** The repository's own federation-config: the example every static gateway is started from. */
const EXAMPLE = resolve('federation-config');

describe('loadStaticFederation', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'fedgate-static-'));
    cpSync(EXAMPLE, dir, { recursive: true });
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('reads the settings, a catalog of every cluster and the policy set of a federation without a controller', () => {
    const directory = loadFederationDirectory(dir);
    const cluster = directory.clusters[0];
    if (!cluster) throw new Error('the example has clusters');
    const loaded = loadStaticFederation(directory, cluster, createSilentLogger());
    expect(loaded.settings.federation).toBe(directory.federation.metadata.name);
    expect(loaded.settings.defaults).toBe(directory.federation.spec.defaults);
    expect([...loaded.catalog.clusters.keys()].sort()).toEqual(directory.clusters.map((c) => c.metadata.name).sort());
    expect(loaded.records.length).toBeGreaterThan(0);
    expect(loaded.records.every((r) => r.revision === 1)).toBe(true);
    expect(loaded.revision).toBe(1);
    expect(loaded.index.set.policies.length).toBe(loaded.records.length);
  });

  it('stops with every problem when a policy is invalid', () => {
    writeFileSync(join(dir, 'policies', 'zz-broken.yaml'), 'apiVersion: fedgate.io/v1alpha1\nkind: TrafficPolicy\nmetadata:\n  name: broken\n  namespace: shop\nspec:\n  timeout: soon\n');
    const directory = loadFederationDirectory(dir);
    const cluster = directory.clusters[0];
    if (!cluster) throw new Error('the example has clusters');
    expect(() => loadStaticFederation(directory, cluster, createSilentLogger())).toThrow(ConfigError);
    expect(() => loadStaticFederation(directory, cluster, createSilentLogger())).toThrow(/zz-broken\.yaml:\d+: spec\.timeout: /);
  });

  it('stops when a gateway that refuses fault injection is given a FaultPolicy', () => {
    writeFileSync(join(dir, 'policies', 'zz-chaos.yaml'), 'apiVersion: fedgate.io/v1alpha1\nkind: FaultPolicy\nmetadata:\n  name: chaos\n  namespace: shop\nspec:\n  service: payments\n  faults:\n    - abort:\n        httpStatus: 503\n        percentage: 1\n');
    const directory = loadFederationDirectory(dir);
    const cluster = directory.clusters[0];
    if (!cluster) throw new Error('the example has clusters');
    // As a cluster file with spec.gateway.policies.allowFaultInjection: false reads.
    const refusing = { ...cluster, spec: { ...cluster.spec, gateway: { ...cluster.spec.gateway, policies: { ...cluster.spec.gateway.policies, allowFaultInjection: false } } } };
    expect(() => loadStaticFederation(directory, cluster, createSilentLogger())).not.toThrow();
    expect(() => loadStaticFederation(directory, refusing, createSilentLogger())).toThrow(/FaultPolicy\/shop\/chaos injects faults on/);
  });
});
