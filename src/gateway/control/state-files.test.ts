import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createSilentLogger } from '../../core/logger.js';
import { ErrorCodes } from '../../core/errors.js';
import type { ClusterRecord, ExportRecord, PolicyRecord } from '../../model/catalog.js';
import { mergeExports } from '../../model/clusterset.js';
import { bundleToProto, clusterToProto, policyToProto, serviceToProto } from '../../proto/convert.js';
import { AppliedPolicies } from './applied-policies.js';
import { CatalogReplica } from './catalog-replica.js';
import { controllerAddressesOf, membershipFile, MembershipFile, readMembership, StateFileError, writeMembership, type FederationMembership } from './membership.js';

const log = createSilentLogger();

const membership: FederationMembership = {
  cluster: 'us-east',
  federation: 'acme',
  apiAddress: '127.0.0.1:15012',
  controllerAddresses: ['127.0.0.1:25012', '127.0.0.1:15012'],
  controllerSpiffeId: 'spiffe://acme.internal/fedgate/controller',
  controllerCaPem: '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n',
  joinedAt: 1_700_000_000_000,
};

function cluster(name: string): ClusterRecord {
  return { name, region: 'r', zone: 'z', trustDomain: `${name}.acme.internal`, gatewayAddresses: ['127.0.0.1:1'], labels: { tier: 'a' }, state: 'active', stateReason: 'joined', stateChangedBy: 't', stateChangedAt: 1, joinedAt: 1 };
}

describe('gateway state files are read back by the schema that wrote them', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'fedgate-state-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('membership.json: round trip, announced replicas first, no temporary file left', () => {
    writeMembership(dir, membership);
    expect(readMembership(dir)).toEqual(membership);
    expect(readdirSync(dir)).toEqual(['membership.json']);
    expect(controllerAddressesOf(membership)).toEqual(['127.0.0.1:25012', '127.0.0.1:15012']);
    expect(controllerAddressesOf({ ...membership, controllerAddresses: undefined })).toEqual(['127.0.0.1:15012']);
  });

  it('membership.json: an empty or torn file is one error naming the file and the way back, never "not joined"', () => {
    const file = membershipFile(dir);
    for (const content of ['', '{"cluster":"us-east","federation":', '{"cluster":"us-east"}']) {
      writeFileSync(file, content);
      let caught: unknown;
      try {
        readMembership(dir, 'us-east');
      } catch (error) {
        caught = error;
      }
      expect(caught).toBeInstanceOf(StateFileError);
      expect((caught as StateFileError).code).toBe(ErrorCodes.STATE_FILE_INVALID);
      expect((caught as Error).message).toMatch(new RegExp(`^${file}: .*fedgate token create --cluster us-east.*fedgate join --rejoin`));
    }
    rmSync(file);
    expect(readMembership(dir)).toBeUndefined();
  });

  it('membership.json: a running gateway sees a re-join written by another process', () => {
    const watched = new MembershipFile(dir, 'us-east');
    writeMembership(dir, membership);
    expect(watched.current()?.apiAddress).toBe('127.0.0.1:15012');
    writeMembership(dir, { ...membership, apiAddress: '127.0.0.1:35012', joinedAt: membership.joinedAt + 1 });
    expect(watched.current()?.apiAddress).toBe('127.0.0.1:35012');
  });

  it('catalog.json: what a replica persisted is what the next start serves', () => {
    const exportRecord: ExportRecord = { cluster: 'us-east', namespace: 'default', name: 'payments', ports: [{ name: 'http', port: 8080, protocol: 'http' }], readyEndpoints: 2, totalEndpoints: 3, consumers: [], createdAt: 5 };
    const policy: PolicyRecord = {
      key: 'TrafficPolicy/default/payments',
      kind: 'TrafficPolicy',
      namespace: 'default',
      name: 'payments',
      document: { apiVersion: 'fedgate.io/v1alpha1', kind: 'TrafficPolicy', metadata: { name: 'payments', namespace: 'default' }, spec: { timeout: '2s' } },
      revision: 4,
    };
    const first = new CatalogReplica({ stateDir: dir, log });
    const result = first.apply({
      epoch: 'e1',
      revision: 7,
      baseRevision: 0,
      snapshot: true,
      clusters: [clusterToProto(cluster('us-east')), clusterToProto(cluster('eu-west'))],
      removedClusters: [],
      services: [serviceToProto(mergeExports([exportRecord])!)],
      removedServices: [],
      bundles: [bundleToProto({ trustDomain: 'us-east.acme.internal', sequence: 3, spiffeJson: '{"keys":[]}' })],
      removedBundles: [],
      policies: [policyToProto(policy)],
      removedPolicies: [],
      policyRevision: 4,
    });
    expect(result).toMatchObject({ status: 'applied' });
    first.persistNow();
    const second = new CatalogReplica({ stateDir: dir, log });
    expect(second.loadPersisted()).toBe(true);
    expect(second.data).toEqual(first.data);
    expect(readdirSync(dir).sort()).toEqual(['catalog.json']);
  });

  it('policies.json: the last applied set is back after a restart, at its revision', () => {
    const limits = { cluster: 'us-east', allowFaultInjection: true };
    const applied = new AppliedPolicies({ stateDir: dir, limits, log });
    expect(applied.update(new Map(), 3)).not.toBe('refused');
    const restarted = new AppliedPolicies({ stateDir: dir, limits, log });
    restarted.loadPersisted();
    expect(restarted.appliedRevision).toBe(applied.appliedRevision);
    expect(readdirSync(dir).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });
});
