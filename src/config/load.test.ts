import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError } from '../core/errors.js';
import { formatIssue } from '../core/errors.js';
import { inspectFederationDirectory, loadClusterFile, loadFederationDirectory, loadFederationFile } from './load.js';

const GOOD_CLUSTER = `apiVersion: fedgate.io/v1alpha1
kind: Cluster
metadata:
  name: us-east
spec:
  region: us-east-1
  zone: us-east-1a
  trustDomain: us-east.acme.internal
  exports:
    - service: payments
      ports:
        - { name: http, port: 8080, protocol: http }
      endpoints: [10.0.0.1]
`;

const GOOD_FEDERATION = `apiVersion: fedgate.io/v1alpha1
kind: Federation
metadata:
  name: acme
spec:
  trustDomain: acme.internal
`;

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'fedgate-config-'));
  mkdirSync(join(dir, 'clusters'));
  mkdirSync(join(dir, 'policies'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

function messagesOf(load: () => unknown): string[] {
  try {
    load();
  } catch (error) {
    if (error instanceof ConfigError) return error.message.split('\n');
    throw error;
  }
  throw new Error('expected a ConfigError');
}

function clusterErrors(text: string, name = 'us-east'): string[] {
  writeFileSync(join(dir, 'clusters', `${name}.yaml`), text);
  return messagesOf(() => loadClusterFile(join(dir, 'clusters', `${name}.yaml`), { displayRoot: dir, env: {} }));
}

function federationErrors(text: string): string[] {
  writeFileSync(join(dir, 'federation.yaml'), text);
  return messagesOf(() => loadFederationFile(join(dir, 'federation.yaml'), { displayRoot: dir, env: {} }));
}

describe('cluster files: every error with file, line and field path', () => {
  it.each<[string, string, string[]]>([
    ['missing region', GOOD_CLUSTER.replace('  region: us-east-1\n', ''), ['clusters/us-east.yaml:5: spec.region: required']],
    ['unknown field with hint', GOOD_CLUSTER.replace('  zone: us-east-1a', '  zone: us-east-1a\n  regoin: x'), ['clusters/us-east.yaml:8: spec.regoin: unknown field (did you mean "region"?)']],
    ['upper-case trust domain', GOOD_CLUSTER.replace('us-east.acme.internal', 'US-East.acme'), ['clusters/us-east.yaml:8: spec.trustDomain: trust domain must be lower case']],
    ['wrong apiVersion', GOOD_CLUSTER.replace('fedgate.io/v1alpha1', 'fedgate.io/v2'), ['clusters/us-east.yaml:1: apiVersion: must be "fedgate.io/v1alpha1", got "fedgate.io/v2"']],
    ['wrong kind', GOOD_CLUSTER.replace('kind: Cluster', 'kind: Federation'), ['clusters/us-east.yaml:2: kind: must be "Cluster", got "Federation"']],
    ['name not a DNS label', GOOD_CLUSTER.replace('name: us-east', 'name: US_East'), [
      'clusters/us-east.yaml:4: metadata.name: must be a DNS label: lower-case letters, digits and "-", at most 63 characters, starting and ending with a letter or digit',
    ]],
    ['name differs from file', GOOD_CLUSTER.replace('name: us-east', 'name: us-west'), ['clusters/us-east.yaml:4: metadata.name: must match the file name "us-east"']],
    ['port out of range', GOOD_CLUSTER.replace('port: 8080', 'port: 70000'), ['clusters/us-east.yaml:12: spec.exports[0].ports[0].port: must be an integer between 1 and 65535, got 70000']],
    ['bad protocol', GOOD_CLUSTER.replace('protocol: http }', 'protocol: udp }'), ['clusters/us-east.yaml:12: spec.exports[0].ports[0].protocol: must be one of http, http2, grpc, tcp, got "udp"']],
    ['empty ports', GOOD_CLUSTER.replace('      ports:\n        - { name: http, port: 8080, protocol: http }\n', '      ports: []\n'), ['clusters/us-east.yaml:11: spec.exports[0].ports: must not be empty']],
    ['duplicate port name', GOOD_CLUSTER.replace('        - { name: http, port: 8080, protocol: http }', '        - { name: http, port: 8080, protocol: http }\n        - { name: http, port: 8081, protocol: http }'), [
      'clusters/us-east.yaml:13: spec.exports[0].ports[1]: port name used twice (same as [0])',
    ]],
    ['service exported twice', `${GOOD_CLUSTER}    - service: payments\n      ports:\n        - { name: http, port: 8080, protocol: http }\n`, [
      'clusters/us-east.yaml:14: spec.exports[1]: service exported twice (same as [0])',
    ]],
    ['duration given as a number', GOOD_CLUSTER.replace('  exports:', '  gateway:\n    certificateTtl: 3600\n  exports:'), [
      'clusters/us-east.yaml:10: spec.gateway.certificateTtl: must be a duration such as "500ms" or "30s", got the number 3600',
    ]],
    ['duration too short', GOOD_CLUSTER.replace('  exports:', '  gateway:\n    certificateTtl: 5s\n  exports:'), ['clusters/us-east.yaml:10: spec.gateway.certificateTtl: must be at least 60000ms, got 5s']],
    ['bad address', GOOD_CLUSTER.replace('  exports:', '  gateway:\n    inbound: localhost\n  exports:'), [
      'clusters/us-east.yaml:10: spec.gateway.inbound: "localhost" is not an address of the form host:port (IPv6 as [::1]:port)',
    ]],
    ['signer source without a signer', GOOD_CLUSTER.replace('  exports:', '  gateway:\n    certificateSource: signer\n  exports:'), [
      'clusters/us-east.yaml:10: spec.gateway.certificateSource: is "signer", so spec.gateway.signer (address, caFile) is required',
    ]],
    ['unknown certificate source', GOOD_CLUSTER.replace('  exports:', '  gateway:\n    certificateSource: vault\n  exports:'), [
      'clusters/us-east.yaml:10: spec.gateway.certificateSource: must be one of local, signer, got "vault"',
    ]],
    ['signer without caFile', GOOD_CLUSTER.replace('  exports:', '  gateway:\n    certificateSource: signer\n    signer: { address: "fedgate-signer:15016" }\n  exports:'), [
      'clusters/us-east.yaml:11: spec.gateway.signer.caFile: required',
    ]],
    ['discovery mode unknown', GOOD_CLUSTER.replace('  exports:', '  discovery:\n    mode: consul\n  exports:'), [
      'clusters/us-east.yaml:10: spec.discovery.mode: must be one of file, kubernetes, got "consul"',
    ]],
    ['consumer is itself', GOOD_CLUSTER.replace('      endpoints: [10.0.0.1]', '      endpoints: [10.0.0.1]\n      consumers: [us-east]'), [
      'clusters/us-east.yaml:14: spec.exports[0].consumers: lists its own cluster "us-east"; local callers are always allowed',
    ]],
    ['endpoint ready not boolean', GOOD_CLUSTER.replace('[10.0.0.1]', '[{ address: 10.0.0.1, ready: "yes" }]'), ['clusters/us-east.yaml:13: spec.exports[0].endpoints[0].ready: must be true or false, got a string']],
    ['spec is a list', 'apiVersion: fedgate.io/v1alpha1\nkind: Cluster\nmetadata:\n  name: us-east\nspec:\n  - region\n', ['clusters/us-east.yaml:5: spec: must be a mapping, got a list']],
    ['YAML syntax error', 'apiVersion: fedgate.io/v1alpha1\nkind: Cluster\nmetadata:\n  name: [us-east\n', ['clusters/us-east.yaml:4: YAML: "[" opened here is never closed with "]"']],
    ['duplicate key', GOOD_CLUSTER.replace('  zone: us-east-1a', '  zone: us-east-1a\n  zone: us-east-1b'), ['clusters/us-east.yaml:8: YAML: Map keys must be unique']],
    ['empty file', '', ['clusters/us-east.yaml:1: file is empty']],
    [
      // Accepted once, it crashed the gateway at its first HTTP/2 connection.
      'HTTP/2 write queue above its hard limit',
      GOOD_CLUSTER.replace('  exports:', '  gateway:\n    limits:\n      http2:\n        writeQueueBytes: 8388608\n  exports:'),
      ['clusters/us-east.yaml:11: spec.gateway.limits.http2: writeQueueHardLimitBytes (4194304) must be at least writeQueueBytes (8388608)'],
    ],
  ])('%s', (_name, text, expected) => {
    expect(clusterErrors(text)).toEqual(expected);
  });

  it('reports every error of a file at once', () => {
    const text = GOOD_CLUSTER.replace('  region: us-east-1\n', '').replace('port: 8080', 'port: 0').replace('protocol: http }', 'protocol: udp }');
    expect(clusterErrors(text)).toEqual([
      'clusters/us-east.yaml:5: spec.region: required',
      'clusters/us-east.yaml:11: spec.exports[0].ports[0].port: must be an integer between 1 and 65535, got 0',
      'clusters/us-east.yaml:11: spec.exports[0].ports[0].protocol: must be one of http, http2, grpc, tcp, got "udp"',
    ]);
  });

  it('applies defaults, resolves paths against the file and freezes the result', () => {
    writeFileSync(join(dir, 'clusters', 'us-east.yaml'), GOOD_CLUSTER);
    const cluster = loadClusterFile(join(dir, 'clusters', 'us-east.yaml'), { env: {} });
    expect(cluster.spec.gateway.inbound).toBe('0.0.0.0:15443');
    expect(cluster.spec.gateway.advertise).toEqual(['0.0.0.0:15443']);
    expect(cluster.spec.discovery.mode).toBe('file');
    expect(cluster.spec.exports[0]?.namespace).toBe('default');
    expect(cluster.spec.exports[0]?.endpoints).toEqual([{ address: '10.0.0.1', ready: true }]);
    expect(cluster.pkiDir).toBe(join(dir, 'pki', 'us-east'));
    expect(cluster.stateDir).toBe(join(dir, 'state', 'us-east'));
    expect(Object.isFrozen(cluster.spec.exports[0]?.ports)).toBe(true);
    expect(() => {
      (cluster.spec as { region: string }).region = 'x';
    }).toThrow(TypeError);
  });

  it('selects the certificate source: local by default, the signer with its paths resolved against the file', () => {
    writeFileSync(join(dir, 'clusters', 'us-east.yaml'), GOOD_CLUSTER);
    expect(loadClusterFile(join(dir, 'clusters', 'us-east.yaml'), { env: {} }).spec.gateway).toMatchObject({ certificateSource: 'local', signer: undefined });
    writeFileSync(
      join(dir, 'clusters', 'us-east.yaml'),
      GOOD_CLUSTER.replace('  exports:', '  gateway:\n    certificateSource: signer\n    signer:\n      address: fedgate-signer.fedgate-system.svc:15016\n      caFile: ../trust/ca.crt\n      tokenFile: /var/run/secrets/fedgate/signer/token\n  exports:'),
    );
    expect(loadClusterFile(join(dir, 'clusters', 'us-east.yaml'), { env: {} }).spec.gateway).toMatchObject({
      certificateSource: 'signer',
      signer: { address: 'fedgate-signer.fedgate-system.svc:15016', caFile: join(dir, 'trust', 'ca.crt'), tokenFile: '/var/run/secrets/fedgate/signer/token' },
    });
  });

  it('takes overrides from the environment and names the variable when one is bad', () => {
    writeFileSync(join(dir, 'clusters', 'us-east.yaml'), GOOD_CLUSTER);
    const file = join(dir, 'clusters', 'us-east.yaml');
    expect(loadClusterFile(file, { env: { FEDGATE_GATEWAY_OUTBOUND: '127.0.0.1:9999' } }).spec.gateway.outbound).toBe('127.0.0.1:9999');
    expect(messagesOf(() => loadClusterFile(file, { env: { FEDGATE_GATEWAY_OUTBOUND: 'nope' } }))).toEqual([
      'env FEDGATE_GATEWAY_OUTBOUND: spec.gateway.outbound: "nope" is not an address of the form host:port (IPv6 as [::1]:port)',
    ]);
  });
});

describe('federation files', () => {
  it.each<[string, string, string[]]>([
    ['missing trust domain', GOOD_FEDERATION.replace('  trustDomain: acme.internal\n', '  controller: {}\n'), ['federation.yaml:5: spec.trustDomain: required']],
    ['bad key prefix', `${GOOD_FEDERATION}  store:\n    keyPrefix: "a b"\n`, ['federation.yaml:8: spec.store.keyPrefix: must use only letters, digits and _ . : -']],
    ['overprovisioning below 1', `${GOOD_FEDERATION}  defaults:\n    failover:\n      overprovisioningFactor: 0.5\n`, [
      'federation.yaml:9: spec.defaults.failover.overprovisioningFactor: must be a number between 1 and 10, got 0.5',
    ]],
    ['unknown section', `${GOOD_FEDERATION}  storage: {}\n`, ['federation.yaml:7: spec.storage: unknown field (did you mean "store"?)']],
  ])('%s', (_name, text, expected) => {
    expect(federationErrors(text)).toEqual(expected);
  });

  it('REDIS_URL selects the Redis store', () => {
    writeFileSync(join(dir, 'federation.yaml'), GOOD_FEDERATION);
    const federation = loadFederationFile(join(dir, 'federation.yaml'), { env: { REDIS_URL: 'redis://127.0.0.1:6379/0' } });
    expect(federation.spec.store.url).toBe('redis://127.0.0.1:6379/0');
    expect(federation.spec.controller.listen).toBe('0.0.0.0:15012');
    expect(federation.controllerPkiDir).toBe(join(dir, 'pki', 'controller'));
  });

  it('puts the embedded store in state/controller beside the file, or where spec.store.dataDir (or FEDGATE_STORE_DATA_DIR) says', () => {
    writeFileSync(join(dir, 'federation.yaml'), GOOD_FEDERATION);
    expect(loadFederationFile(join(dir, 'federation.yaml'), { env: {} }).storeDataDir).toBe(join(dir, 'state', 'controller'));
    writeFileSync(join(dir, 'federation.yaml'), `${GOOD_FEDERATION}  store:\n    dataDir: ../var/fedgate\n`);
    expect(loadFederationFile(join(dir, 'federation.yaml'), { env: {} }).storeDataDir).toBe(join(dir, '..', 'var', 'fedgate'));
    expect(loadFederationFile(join(dir, 'federation.yaml'), { env: { FEDGATE_STORE_DATA_DIR: '/srv/fedgate' } }).storeDataDir).toBe('/srv/fedgate');
    expect(federationErrors(`${GOOD_FEDERATION}  store:\n    dataDir: ""\n`)).toEqual(['federation.yaml:8: spec.store.dataDir: must not be empty']);
  });
});

describe('federation directory', () => {
  it('collects the errors of every file and the cross-file ones', () => {
    writeFileSync(join(dir, 'federation.yaml'), GOOD_FEDERATION.replace('acme.internal', 'Acme'));
    writeFileSync(join(dir, 'clusters', 'us-east.yaml'), GOOD_CLUSTER.replace('      endpoints: [10.0.0.1]', '      endpoints: [10.0.0.1]\n      consumers: [mars]'));
    writeFileSync(join(dir, 'clusters', 'us-west.yaml'), GOOD_CLUSTER.replace('name: us-east', 'name: us-west'));
    writeFileSync(join(dir, 'policies', 'bad.yaml'), 'kind: [\n');
    expect(messagesOf(() => loadFederationDirectory(dir, { env: {} }))).toEqual([
      'federation.yaml:6: spec.trustDomain: trust domain must be lower case',
      'policies/bad.yaml:1: YAML: "[" opened here is never closed with "]"',
      'clusters/us-east.yaml:14: spec.exports[0].consumers[0]: no cluster named "mars" in clusters/',
      'clusters/us-west.yaml:8: spec.trustDomain: "us-east.acme.internal" is already the trust domain of cluster us-east; each cluster owns its own',
    ]);
  });

  it('loads the example federation-config of the repository', () => {
    const loaded = loadFederationDirectory(join(process.cwd(), 'federation-config'), { env: {} });
    expect(loaded.federation.metadata.name).toBe('acme');
    expect(loaded.clusters.map((c) => c.metadata.name)).toEqual(['eu-west', 'us-east', 'us-west']);
  });
});

describe('spec.trustDomainAliases', () => {
  it('defaults to cluster.local standing for every member', () => {
    writeFileSync(join(dir, 'federation.yaml'), GOOD_FEDERATION);
    expect(loadFederationFile(join(dir, 'federation.yaml'), { env: {} }).spec.trustDomainAliases).toEqual([{ alias: 'cluster.local' }]);
  });

  it('takes plain names (every member) and { alias, trustDomains } (those members)', () => {
    writeFileSync(join(dir, 'federation.yaml'), `${GOOD_FEDERATION}  trustDomainAliases:\n    - cluster.local\n    - { alias: legacy.acme, trustDomains: [us-east.acme.internal] }\n`);
    expect(loadFederationFile(join(dir, 'federation.yaml'), { env: {} }).spec.trustDomainAliases).toEqual([{ alias: 'cluster.local' }, { alias: 'legacy.acme', trustDomains: ['us-east.acme.internal'] }]);
  });

  it.each<[string, string, string[]]>([
    ['the federation\'s own trust domain', '  trustDomainAliases: [acme.internal]\n', ['federation.yaml:7: spec.trustDomainAliases[0]: "acme.internal" is the federation\'s own trust domain (the controller\'s and operators\' identities), not a caller\'s']],
    ['an alias listed twice', '  trustDomainAliases: [cluster.local, cluster.local]\n', ['federation.yaml:7: spec.trustDomainAliases[1]: alias listed twice (same as [0])']],
    ['not a trust domain', '  trustDomainAliases: [Cluster.Local]\n', ['federation.yaml:7: spec.trustDomainAliases[0]: trust domain must be lower case']],
    ['an empty target list', '  trustDomainAliases: [{ alias: x.y, trustDomains: [] }]\n', ['federation.yaml:7: spec.trustDomainAliases[0].trustDomains: must not be empty']],
  ])('refuses %s', (_name, extra, expected) => {
    expect(federationErrors(`${GOOD_FEDERATION}${extra}`)).toEqual(expected);
  });

  it('warns about an alias that is a member\'s trust domain, and a target that is no member\'s', () => {
    writeFileSync(join(dir, 'federation.yaml'), `${GOOD_FEDERATION}  trustDomainAliases:\n    - us-east.acme.internal\n    - { alias: legacy.acme, trustDomains: [us-east.acme.internal, mars.acme.internal] }\n`);
    writeFileSync(join(dir, 'clusters', 'us-east.yaml'), GOOD_CLUSTER);
    const report = inspectFederationDirectory(dir, { env: {} });
    expect(report.issues.map((i) => `${i.severity}: ${formatIssue(i)}`)).toEqual([
      'warning: federation.yaml:8: spec.trustDomainAliases[0]: "us-east.acme.internal" is the trust domain of cluster us-east: policies naming it mean that cluster only, not the alias',
      'warning: federation.yaml:9: spec.trustDomainAliases[1].trustDomains[1]: "mars.acme.internal" is no cluster\'s trust domain in clusters/',
    ]);
  });
});

describe('inspectFederationDirectory: what a broken file does not hide', () => {
  it('a consumer naming a cluster whose own file is broken is not reported as "no cluster named"', () => {
    writeFileSync(join(dir, 'federation.yaml'), GOOD_FEDERATION);
    writeFileSync(join(dir, 'clusters', 'us-east.yaml'), GOOD_CLUSTER.replace('      endpoints: [10.0.0.1]', '      endpoints: [10.0.0.1]\n      consumers: [us-west, mars]'));
    writeFileSync(join(dir, 'clusters', 'us-west.yaml'), GOOD_CLUSTER.replace('name: us-east', 'name: us-west').replace('  region: us-east-1\n', ''));
    const report = inspectFederationDirectory(dir, { env: {} });
    expect(report.failedClusters).toEqual(['us-west']);
    expect(report.clusters.map((c) => c.metadata.name)).toEqual(['us-east']);
    expect(report.issues.map(formatIssue)).toEqual([
      'clusters/us-west.yaml:5: spec.region: required',
      'clusters/us-east.yaml:14: spec.exports[0].consumers[1]: no cluster named "mars" in clusters/',
    ]);
  });

  it('reads policies/ even when federation.yaml and a cluster file are broken', () => {
    writeFileSync(join(dir, 'federation.yaml'), GOOD_FEDERATION.replace('acme.internal', 'Acme'));
    writeFileSync(join(dir, 'clusters', 'us-east.yaml'), 'kind: [\n');
    writeFileSync(join(dir, 'policies', 'ok.yaml'), 'apiVersion: fedgate.io/v1alpha1\nkind: TrafficPolicy\nmetadata: {name: x}\nspec: {timeout: 1s}\n');
    const report = inspectFederationDirectory(dir, { env: {} });
    expect(report.federation).toBeUndefined();
    expect(report.policyDocuments.map((d) => d.value)).toEqual([{ apiVersion: 'fedgate.io/v1alpha1', kind: 'TrafficPolicy', metadata: { name: 'x' }, spec: { timeout: '1s' } }]);
  });
});
