import { gatewayDefaultsShape, type GatewayDefaults } from '../../config/federation-config.js';
import { createSilentLogger } from '../../core/logger.js';
import type { ClusterRecord } from '../../model/catalog.js';
import type { ServicePolicy } from '../../policy/service-policy.js';
import type { CatalogData } from '../control/catalog-replica.js';
import type { GatewayIdentity } from '../gateway-identity.js';
import { ControlViewPublisher, type ControlView } from '../view/control-view.js';
import { PoolRegistry } from './pool-registry.js';

const defaults = gatewayDefaultsShape.defaultFactory?.() as GatewayDefaults;

function record(name: string, over: Partial<ClusterRecord> = {}): ClusterRecord {
  return { name, region: name, zone: 'a', trustDomain: `${name}.acme.internal`, gatewayAddresses: [`127.0.0.1:1`], labels: {}, state: 'active', stateReason: '', stateChangedBy: '', stateChangedAt: 0, joinedAt: 0, ...over };
}

function catalog(...clusters: ClusterRecord[]): CatalogData {
  return { epoch: 'e', revision: 1, policyRevision: 0, clusters: new Map(clusters.map((c) => [c.name, c])), services: new Map(), bundles: new Map(), policies: new Map() };
}

/**
 * Pools are made, shared, resized and closed here without dialling: nothing below connects
 * before a request acquires a stream, so the identity (read only when a connection is dialled)
 * is not needed and stands as an empty object.
 */
function setup(): { views: ControlViewPublisher; registry: PoolRegistry; view: () => ControlView } {
  const views = new ControlViewPublisher({ cluster: 'us-east', region: 'us-east', zone: 'a', trustDomain: 'us-east.acme.internal', labels: {} }, { federation: 'acme', defaults, localExports: { exports: new Map(), source: 'test' }, catalog: catalog(record('us-west'), record('eu-west')) });
  const registry = new PoolRegistry({ identity: {} as GatewayIdentity, view: () => views.current, connectTimeoutMs: 100, log: createSilentLogger() });
  return { views, registry, view: () => views.current };
}

function sized(base: ServicePolicy, pool: Partial<ServicePolicy['connectionPool']>): ServicePolicy {
  return { ...base, connectionPool: { ...base.connectionPool, ...pool } };
}

async function refusal(acquire: unknown): Promise<string> {
  try {
    await acquire;
  } catch (error) {
    return (error as Error).message;
  }
  return 'acquired';
}

describe('PoolRegistry', () => {
  it('gives one shared pool per peer cluster, none for a cluster outside the catalog', async () => {
    const { registry, view } = setup();
    const west = registry.pool(view(), 'us-west');
    expect(west?.cluster).toBe('us-west');
    expect(registry.pool(view(), 'us-west', 'shop/payments', view().servicePolicy('shop', 'payments'))).toBe(west);
    expect(registry.pool(view(), 'eu-west')).not.toBe(west);
    expect(registry.pool(view(), 'ap-south')).toBeUndefined();
    await expect(registry.ping(view(), 'ap-south', 100)).rejects.toThrow('ap-south is not in the catalog');
    registry.close('test over');
  });

  it('a service whose policy sizes its connections gets a pool of its own (a bulkhead); resized, the old one is retired', async () => {
    const { registry, view } = setup();
    const base = view().servicePolicy('shop', 'payments');
    const shared = registry.pool(view(), 'us-west');
    const own = registry.pool(view(), 'us-west', 'shop/payments', sized(base, { dedicated: true, maxConnectionsPerPeer: 2 }));
    expect(own).not.toBe(shared);
    expect(registry.pool(view(), 'us-west', 'shop/payments', sized(base, { dedicated: true, maxConnectionsPerPeer: 2 }))).toBe(own);
    const resized = registry.pool(view(), 'us-west', 'shop/payments', sized(base, { dedicated: true, maxConnectionsPerPeer: 4 }));
    expect(resized).not.toBe(own);
    expect(await refusal(own?.acquire())).toBe('cluster us-west left the federation');
    expect(registry.pool(view(), 'us-west')).toBe(shared);
    registry.close('test over');
  });

  it('closes the pools of a cluster that left, or whose trust domain changed; a later request gets a fresh pool', async () => {
    const { registry, views, view } = setup();
    const west = registry.pool(view(), 'us-west');
    const eu = registry.pool(view(), 'eu-west');
    registry.onView(views.update({ catalog: catalog(record('us-west', { state: 'left' }), record('eu-west', { trustDomain: 'other.acme.internal' })) }));
    expect(await refusal(west?.acquire())).toBe('cluster us-west left the federation');
    expect(await refusal(eu?.acquire())).toBe('cluster eu-west left the federation');
    registry.onView(views.update({ catalog: catalog(record('us-west')) }));
    const again = registry.pool(view(), 'us-west');
    expect(again).not.toBe(west);
    registry.close('test over');
    expect(await refusal(again?.acquire())).toBe('cluster us-west left the federation');
  });

  it('keeps the pool of a cluster whose addresses moved (its sessions recycle)', () => {
    const { registry, views, view } = setup();
    const west = registry.pool(view(), 'us-west');
    registry.onView(views.update({ catalog: catalog(record('us-west', { gatewayAddresses: ['127.0.0.1:2'] }), record('eu-west')) }));
    expect(registry.pool(view(), 'us-west')).toBe(west);
    registry.close('test over');
  });
});
