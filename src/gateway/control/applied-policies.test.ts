import { jest } from '@jest/globals';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from '../../admin/metrics.js';
import { gatewayDefaultsShape, type GatewayDefaults } from '../../config/federation-config.js';
import { createSilentLogger } from '../../core/logger.js';
import type { PolicyRecord } from '../../model/catalog.js';
import { GatewayMetrics } from '../request/request-metrics.js';
import { AppliedPolicies, applyPolicySet } from './applied-policies.js';
import type { CatalogData } from './catalog-replica.js';

const gatewayDefaults = gatewayDefaultsShape.defaultFactory?.() as GatewayDefaults;

function record(kind: string, name: string, spec: Record<string, unknown>, revision: number): PolicyRecord {
  return { key: `${kind}/shop/${name}`, kind, namespace: 'shop', name, document: { apiVersion: 'fedgate.io/v1alpha1', kind, metadata: { name, namespace: 'shop' }, spec }, revision };
}

const timeout2s = record('TrafficPolicy', 'payments', { service: 'payments', timeout: '2s' }, 3);
const chaos = record('FaultPolicy', 'chaos', { service: 'payments', faults: [{ abort: { httpStatus: 503, percentage: 5 } }] }, 4);
const invalid = record('TrafficPolicy', 'broken', { service: 'payments', timeout: 'soon' }, 5);

function set(...records: PolicyRecord[]): Map<string, PolicyRecord> {
  return new Map(records.map((r) => [r.key, r]));
}

function catalog(policies: Map<string, PolicyRecord>, policyRevision: number): CatalogData {
  return { epoch: 'e', revision: policyRevision, policyRevision, clusters: new Map(), services: new Map(), bundles: new Map(), policies };
}

describe('AppliedPolicies', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'fedgate-policies-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  function applied(allowFaultInjection = false, log = createSilentLogger()): AppliedPolicies {
    return new AppliedPolicies({ stateDir: dir, limits: { cluster: 'us-east', allowFaultInjection }, log });
  }

  const timeoutOf = (p: AppliedPolicies): number | undefined => p.index.servicePolicy(gatewayDefaults, 'shop', 'payments', { cluster: 'us-east', region: 'r' }).timeoutMs;

  it('applies a set, counts it once, and reports it in sync', async () => {
    const p = applied();
    const metrics = new GatewayMetrics(new Registry());
    applyPolicySet(p, catalog(set(timeout2s), 3), metrics);
    applyPolicySet(p, catalog(set(timeout2s), 3), metrics);
    expect(p.appliedRevision).toBe(3);
    expect(timeoutOf(p)).toBe(2000);
    expect(p.describe()).toEqual({ appliedRevision: 3, latestRevision: 3, inSync: true, documents: [{ key: 'TrafficPolicy/shop/payments', revision: 3 }] });
    expect((await metrics.policyApplies.get()).values).toEqual([{ value: 1, labels: { result: 'applied' } }]);
  });

  it('refuses a set it cannot apply whole, keeping the last good one in force, with every reason', () => {
    const p = applied(false);
    p.update(set(timeout2s), 3);
    expect(p.update(set(timeout2s, chaos), 4)).toBe('rejected');
    expect(p.appliedRevision).toBe(3);
    expect(p.latestRevision).toBe(4);
    expect(p.nack?.revision).toBe(4);
    expect(p.nack?.reason).toContain('FaultPolicy/shop/chaos injects faults on us-east, whose gateway refuses fault injection');
    expect(timeoutOf(p)).toBe(2000);
    expect(p.update(set(timeout2s, invalid), 5)).toBe('rejected');
    expect(p.nack?.reason).toMatch(/TrafficPolicy\/shop\/broken@5: spec\.timeout: /);
    expect(p.describe()).toMatchObject({ appliedRevision: 3, latestRevision: 5, inSync: false, nack: { revision: 5 } });
    // The same refused set again is not worked on twice.
    const same = set(timeout2s, invalid);
    p.update(same, 6);
    expect(p.update(same, 6)).toBe('unchanged');
  });

  it('a gateway that allows fault injection applies the same set', () => {
    const p = applied(true);
    expect(p.update(set(timeout2s, chaos), 4)).toBe('applied');
    expect(p.index.servicePolicy(gatewayDefaults, 'shop', 'payments', { cluster: 'us-east', region: 'r' }).faults).toHaveLength(1);
  });

  it('a restarted gateway starts from the last good set; a damaged file is reported and ignored', () => {
    applied().update(set(timeout2s), 3);
    const restarted = applied();
    restarted.loadPersisted();
    expect(restarted.appliedRevision).toBe(3);
    expect(timeoutOf(restarted)).toBe(2000);

    writeFileSync(join(dir, 'policies.json'), '{"version":2}');
    const log = createSilentLogger();
    const error = jest.spyOn(log, 'error');
    const damaged = applied(false, log);
    damaged.loadPersisted();
    expect(damaged.appliedRevision).toBe(0);
    expect(error).toHaveBeenCalledWith({ file: join(dir, 'policies.json'), err: 'not a policies file of this version' }, 'persisted policy set unusable; starting without policies until the controller sends a set');
  });

  it('recompiles the newest set when the trust-domain aliases change', () => {
    const p = applied();
    expect(p.setContext({ trustDomainAliases: [] })).toBe('unchanged'); // nothing received yet
    p.update(set(timeout2s), 3);
    expect(p.setContext({ trustDomainAliases: [] })).toBe('unchanged');
    expect(p.setContext({ trustDomainAliases: [{ alias: 'mesh.local', trustDomains: ['us-east.acme.internal'] }] })).toBe('applied');
    expect(p.appliedRevision).toBe(3);
  });

  it('takes a static federation’s set as given', () => {
    const p = new AppliedPolicies({ limits: { cluster: 'us-east', allowFaultInjection: false }, log: createSilentLogger() });
    const other = applied();
    other.update(set(timeout2s), 3);
    p.useStatic(other.index, [timeout2s], 1);
    expect(p.describe()).toEqual({ appliedRevision: 1, latestRevision: 1, inSync: true, documents: [{ key: 'TrafficPolicy/shop/payments', revision: 3 }] });
  });
});
