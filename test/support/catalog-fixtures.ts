import type { BundleRecord, ClusterRecord, ExportRecord } from '../../src/model/catalog.js';

export function clusterRecord(name: string, overrides: Partial<ClusterRecord> = {}): ClusterRecord {
  return {
    name,
    region: `${name}-region`,
    zone: `${name}-zone`,
    trustDomain: `${name}.acme.internal`,
    gatewayAddresses: ['127.0.0.1:15443'],
    labels: {},
    state: 'active',
    stateReason: 'joined',
    stateChangedBy: 'test',
    stateChangedAt: 1,
    joinedAt: 1,
    ...overrides,
  };
}

export function bundleRecord(trustDomain: string, sequence = 1): BundleRecord {
  return { trustDomain, sequence, spiffeJson: JSON.stringify({ keys: [], spiffe_sequence: sequence }) };
}

export function exportRecord(cluster: string, name: string, overrides: Partial<ExportRecord> = {}): ExportRecord {
  return {
    cluster,
    namespace: 'default',
    name,
    ports: [{ name: 'http', port: 8080, protocol: 'http' }],
    readyEndpoints: 2,
    totalEndpoints: 2,
    consumers: [],
    createdAt: 1000,
    ...overrides,
  };
}
