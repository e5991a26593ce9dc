import { jest } from '@jest/globals';
import { gatewayDefaultsShape, type GatewayDefaults } from '../../config/federation-config.js';
import { createSilentLogger } from '../../core/logger.js';
import type { ClusterRecord } from '../../model/catalog.js';
import { NO_AUTHORIZATION } from '../../policy/authorization.js';
import { compilePolicySet } from '../../policy/compile.js';
import { PolicyIndex } from '../../policy/resolve.js';
import type { CatalogData } from '../control/catalog-replica.js';
import { ControlViewPublisher, logBlackholeChanges, type ControlView } from './control-view.js';

const defaults = gatewayDefaultsShape.defaultFactory?.() as GatewayDefaults;
const local = { cluster: 'us-east', region: 'us-east-1', zone: 'a', trustDomain: 'us-east.acme.internal', labels: {} };

function catalog(blackholed: string[] = []): CatalogData {
  const self: ClusterRecord = { name: 'us-east', region: 'us-east-1', zone: 'a', trustDomain: 'us-east.acme.internal', gatewayAddresses: [], labels: {}, state: 'active', stateReason: '', stateChangedBy: '', stateChangedAt: 0, joinedAt: 0, blackholed };
  return { epoch: 'e', revision: 1, policyRevision: 0, clusters: new Map([['us-east', self]]), services: new Map(), bundles: new Map(), policies: new Map() };
}

function publisher(): ControlViewPublisher {
  return new ControlViewPublisher(local, { federation: 'acme', defaults, localExports: { exports: new Map(), source: 'test' }, catalog: catalog() });
}

function policies(...documents: Array<Record<string, unknown>>): PolicyIndex {
  const result = compilePolicySet(documents.map((document, i) => ({ document, source: `p${i}.yaml` })));
  expect(result.issues).toEqual([]);
  return new PolicyIndex(result.set);
}

describe('ControlViewPublisher', () => {
  it('starts at version 1 with no unhealthy peers, ejections or policies', () => {
    const view = publisher().current;
    expect(view.version).toBe(1);
    expect(view.local).toBe(local);
    expect(view.federation).toBe('acme');
    expect(view.unhealthy.size).toBe(0);
    expect(view.ejections.size).toBe(0);
    expect(view.policies).toBe(PolicyIndex.EMPTY);
    expect(view.localExports.source).toBe('test');
    expect(view.authorization('shop', 'payments')).toBe(NO_AUTHORIZATION);
  });

  it('publishes a new view, in order, to every watcher when an input changes; nothing when none did', () => {
    const p = publisher();
    const seen: Array<[number, number]> = [];
    const stop = p.watch((view, previous) => seen.push([view.version, previous.version]));
    const first = p.current;
    expect(p.update({ unhealthy: first.unhealthy, catalog: undefined })).toBe(first);
    const second = p.update({ unhealthy: new Set(['us-west']) });
    expect(second.version).toBe(2);
    expect(second.unhealthy).toEqual(new Set(['us-west']));
    // The old view is a value: it did not change.
    expect(first.unhealthy.size).toBe(0);
    p.update({ ejections: new Map([['shop/payments', new Set(['eu-west'])]]) });
    stop();
    p.update({ unhealthy: new Set() });
    expect(seen).toEqual([
      [2, 1],
      [3, 2],
    ]);
    expect(p.current.isEjected('shop/payments', 'eu-west')).toBe(true);
    expect(p.current.isEjected('shop/payments', 'us-west')).toBe(false);
    expect(p.current.isEjected('shop/orders', 'eu-west')).toBe(false);
  });

  it('resolves a service’s policy and authorization once per view, from the view’s policies and defaults', () => {
    const p = publisher();
    const before = p.current.servicePolicy('shop', 'payments');
    expect(p.current.servicePolicy('shop', 'payments')).toBe(before);
    expect(before.timeoutMs).toBe(defaults.timeout);
    const view = p.update({
      policies: policies(
        { apiVersion: 'fedgate.io/v1alpha1', kind: 'TrafficPolicy', metadata: { name: 'payments', namespace: 'shop' }, spec: { service: 'payments', timeout: '2s' } },
        { apiVersion: 'fedgate.io/v1alpha1', kind: 'AuthorizationPolicy', metadata: { name: 'payments', namespace: 'shop' }, spec: { service: 'payments', action: 'DENY', rules: [{}] } },
      ),
    });
    expect(view.servicePolicy('shop', 'payments').timeoutMs).toBe(2000);
    expect(view.servicePolicy('shop', 'payments').timeoutExplicit).toBe(true);
    const rules = view.authorization('shop', 'payments');
    expect(rules).not.toBe(NO_AUTHORIZATION);
    expect(view.authorization('shop', 'payments')).toBe(rules);
    expect(p.current.defaults).toBe(defaults);
  });

  it('takes this cluster’s blackholes from the catalog, and logs each one turned on or off', () => {
    const p = publisher();
    const log = createSilentLogger();
    const warn = jest.spyOn(log, 'warn');
    p.watch((view: ControlView, previous: ControlView) => logBlackholeChanges(log, view, previous));
    p.update({ catalog: catalog(['shop/payments']) });
    expect(p.current.blackholes).toEqual(new Set(['shop/payments']));
    p.update({ catalog: catalog(['shop/orders']) });
    expect(warn.mock.calls).toEqual([
      [{ service: 'shop/payments' }, 'blackhole on: no longer answering for this service (drill)'],
      [{ service: 'shop/orders' }, 'blackhole on: no longer answering for this service (drill)'],
      [{ service: 'shop/payments' }, 'blackhole off: answering for this service again'],
    ]);
  });
});
