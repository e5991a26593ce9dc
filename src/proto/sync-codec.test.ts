import type { ClustersetServiceView } from '../model/clusterset.js';
import { serviceToProto } from './convert.js';
import { SyncDown, type CatalogUpdate } from './gen/fedgate.js';
import { encodeService, serializeSyncDown } from './sync-codec.js';

function view(name: string, exporters: number): ClustersetServiceView {
  return {
    namespace: 'default',
    name,
    ports: [{ name: 'http', port: 8080, protocol: 'http' }],
    exporters: Array.from({ length: exporters }, (_, i) => ({ cluster: `c${i}`, ports: [{ name: 'http', port: 8080, protocol: 'http' }], readyEndpoints: i, totalEndpoints: 10, createdAt: 1000 + i })),
    conflicts: [{ cluster: 'x', reason: 'port clash' }],
  };
}

describe('serializeSyncDown', () => {
  const base: CatalogUpdate = {
    epoch: 'e1',
    revision: 42,
    baseRevision: 41,
    snapshot: false,
    clusters: [{ name: 'a', region: 'r', zone: 'z', trustDomain: 'a.td', gatewayAddresses: ['127.0.0.1:1'], labels: { k: 'v' }, state: 'active', stateReason: '', stateChangedBy: '', stateChangedAtMs: 5, joinedAtMs: 6 , blackholedServices: []}],
    removedClusters: ['gone'],
    services: [],
    removedServices: ['default/old'],
    bundles: [{ trustDomain: 'a.td', sequence: 3, spiffeJson: '{}' }],
    removedBundles: [],
    policies: [{ key: 'k', kind: 'TrafficPolicy', namespace: 'default', name: 'n', json: '{}', revision: 40 }],
    removedPolicies: ['p'],
    policyRevision: 40,
  };

  it('decodes exactly like the generated encoder, with pre-encoded services appended', () => {
    const views = [view('one', 3), view('two', 50)];
    const generated = SyncDown.encode({ msg: { $case: 'update', value: { ...base, services: views.map(serviceToProto) } } }).finish();
    const fast = serializeSyncDown({ msg: { $case: 'update', value: base }, encodedServices: views.map(encodeService) });
    expect(SyncDown.decode(fast)).toEqual(SyncDown.decode(generated));
  });

  it('keeps services given as objects and appends the encoded ones after them', () => {
    const fast = serializeSyncDown({ msg: { $case: 'update', value: { ...base, services: [serviceToProto(view('obj', 1))] } }, encodedServices: [encodeService(view('bytes', 2))] });
    const decoded = SyncDown.decode(fast);
    expect(decoded.msg?.$case === 'update' ? decoded.msg.value.services.map((s) => s.name) : []).toEqual(['obj', 'bytes']);
  });

  it('falls back to the generated encoder for everything else', () => {
    const message: SyncDown = { msg: { $case: 'resend', value: { reason: 'r' } } };
    expect(serializeSyncDown(message)).toEqual(Buffer.from(SyncDown.encode(message).finish()));
  });
});
