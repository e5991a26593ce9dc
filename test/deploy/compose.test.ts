/**
 * docker-compose.yml, checked by Debian's docker-compose (v1.29, `docker-compose config`, which
 * validates the file against the compose schema and resolves anchors, merges and paths) and then
 * against fedgate's own config loader: the services a federation needs are there, each gateway
 * runs a cluster file that loads, and the names in the config are the names on the compose
 * network. docker-compose must be installed (tools/setup.sh installs it); without it this fails.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { loadFederationDirectory } from '../../src/config/load.js';

const ROOT = process.cwd();
const CONFIG_DIR = join(ROOT, 'deploy', 'compose', 'federation-config');
const CLUSTERS = ['us-east', 'us-west', 'eu-west'];

interface ComposeService {
  image?: string;
  build?: { context: string };
  command?: string[];
  entrypoint?: string[];
  environment?: Record<string, string>;
  volumes?: string[];
  ports?: Array<{ published: number; target: number }>;
  depends_on?: Record<string, { condition: string }>;
  user?: string;
  read_only?: boolean;
  healthcheck?: { test: string[] };
}

interface Compose {
  services: Record<string, ComposeService>;
  volumes: Record<string, unknown>;
}

function dockerCompose(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile('docker-compose', args, { cwd: ROOT, env: { ...process.env, COMPOSE_INTERACTIVE_NO_CLI: '1' }, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
      if (error && (error as NodeJS.ErrnoException).code === 'ENOENT') {
        reject(new Error("docker-compose is not installed: this test needs Debian's docker-compose (apt-get install -y docker-compose; tools/setup.sh does it)"));
        return;
      }
      resolve({ code: error ? Number((error as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

let compose: Compose;

beforeAll(async () => {
  const result = await dockerCompose(['-f', 'docker-compose.yml', 'config']);
  if (result.code !== 0) throw new Error(`docker-compose config exited with ${result.code}:\n${result.stderr}`);
  compose = parse(result.stdout) as Compose;
});

/** Volume entries as docker-compose config prints them: "source:target:mode". */
function mounts(service: ComposeService): Array<{ source: string; target: string; mode: string }> {
  return (service.volumes ?? []).map((entry) => {
    const [source, target, mode] = entry.split(':');
    return { source: source as string, target: target as string, mode: mode ?? 'rw' };
  });
}

function mountedConfigPath(service: ComposeService, containerPath: string): string {
  const mount = mounts(service).find((m) => containerPath.startsWith(`${m.target}/`));
  if (!mount) throw new Error(`${containerPath} is on no volume of the service`);
  return join(mount.source, containerPath.slice(mount.target.length));
}

describe('docker-compose.yml', () => {
  it('is accepted by docker-compose config, with Redis, the controller, three gateways and sample services', async () => {
    const result = await dockerCompose(['-f', 'docker-compose.yml', 'config', '--services']);
    expect({ code: result.code, stderr: result.code === 0 ? '' : result.stderr }).toEqual({ code: 0, stderr: '' });
    const services = result.stdout.trim().split('\n').sort();
    expect(services).toEqual(['controller', 'gateway-eu-west', 'gateway-us-east', 'gateway-us-west', 'inventory-eu-west', 'payments-us-east', 'payments-us-west', 'redis', 'tokens'].sort());
    expect(Object.keys(compose.services).sort()).toEqual(services);
  });

  it('builds fedgate from the repository Dockerfile and runs it read-only as a non-root user', () => {
    for (const [name, service] of Object.entries(compose.services)) {
      if (name === 'redis') continue;
      expect({ name, image: service.image, build: service.build?.context, user: service.user, readOnly: service.read_only }).toEqual({ name, image: 'fedgate:dev', build: ROOT, user: '1000:1000', readOnly: true });
    }
    expect(existsSync(join(ROOT, 'Dockerfile'))).toBe(true);
  });

  it('runs the controller on Redis, ready before tokens are made, and gateways after the tokens', () => {
    const controller = compose.services.controller as ComposeService;
    expect(controller.command).toEqual(['controller', '--config', '/etc/fedgate/federation.yaml']);
    expect(controller.environment?.FEDGATE_STORE_URL).toBe('redis://redis:6379/0');
    expect(controller.depends_on).toEqual({ redis: { condition: 'service_healthy' } });
    expect(controller.healthcheck?.test.join(' ')).toContain('http://127.0.0.1:15014/readyz');
    expect(compose.services.tokens?.depends_on).toEqual({ controller: { condition: 'service_healthy' } });
    for (const cluster of CLUSTERS) {
      expect(compose.services[`gateway-${cluster}`]?.depends_on).toEqual({ tokens: { condition: 'service_completed_successfully' } });
    }
  });

  it('mounts a federation config that fedgate loads, with a cluster file per gateway', () => {
    const directory = loadFederationDirectory(CONFIG_DIR, { env: {} });
    expect(directory.clusters.map((c) => c.metadata.name).sort()).toEqual([...CLUSTERS].sort());
    const controller = compose.services.controller as ComposeService;
    expect(mountedConfigPath(controller, '/etc/fedgate/federation.yaml')).toBe(join(CONFIG_DIR, 'federation.yaml'));
    for (const cluster of CLUSTERS) {
      const gateway = compose.services[`gateway-${cluster}`] as ComposeService;
      expect(gateway.command).toEqual(['gateway', '--config', `/etc/fedgate/clusters/${cluster}.yaml`]);
      expect(mountedConfigPath(gateway, `/etc/fedgate/clusters/${cluster}.yaml`)).toBe(join(CONFIG_DIR, 'clusters', `${cluster}.yaml`));
      expect(gateway.environment?.FEDGATE_CLUSTER).toBe(cluster);
    }
  });

  it('uses the compose network names in the config: controller, gateways and exported backends exist as services', () => {
    const directory = loadFederationDirectory(CONFIG_DIR, { env: {} });
    const host = (address: string): string => address.slice(0, address.lastIndexOf(':'));
    const controller = directory.federation.spec.controller;
    for (const address of [controller.advertise, controller.advertiseJoin, controller.advertiseAdmin]) {
      expect(host(address as string)).toBe('controller');
    }
    expect(directory.federation.spec.store.url).toBe((compose.services.controller as ComposeService).environment?.FEDGATE_STORE_URL);
    const tokens = (compose.services.tokens as ComposeService).command?.join(' ') ?? '';
    expect(tokens).toContain(`--controller ${host(controller.advertise as string)}:15012`);
    for (const cluster of directory.clusters) {
      const name = cluster.metadata.name;
      expect(cluster.spec.controller?.address).toBe(controller.advertiseJoin);
      expect(cluster.spec.gateway.advertise?.map(host)).toEqual([`gateway-${name}`]);
      expect(tokens).toContain(name);
      // The token file the gateway reads is on the tokens volume the tokens service writes.
      const gateway = compose.services[`gateway-${name}`] as ComposeService;
      const tokenMount = mounts(gateway).find((m) => cluster.spec.controller?.tokenFile?.startsWith(`${m.target}/`));
      expect(tokenMount?.source).toBe('tokens');
      expect(mounts(compose.services.tokens as ComposeService).some((m) => m.source === 'tokens' && m.target === tokenMount?.target && m.mode === 'rw')).toBe(true);
      // Its CA and state live in volumes of its own.
      expect(mounts(gateway).find((m) => cluster.pkiDir.startsWith(`${m.target}/`))?.source).toBe(`pki-${name}`);
      expect(mounts(gateway).find((m) => cluster.stateDir === m.target)?.source).toBe(`state-${name}`);
      for (const exported of cluster.spec.exports) {
        for (const endpoint of exported.endpoints) expect(Object.keys(compose.services)).toContain(endpoint.address);
      }
    }
  });

  it('publishes each process on its own host ports, and declares every named volume', () => {
    const published = Object.values(compose.services).flatMap((s) => (s.ports ?? []).map((p) => p.published));
    expect(new Set(published).size).toBe(published.length);
    expect(published.sort()).toEqual([15001, 15014, 15021, 16001, 16021, 17001, 17021]);
    const named = Object.values(compose.services).flatMap((s) => mounts(s).filter((m) => !m.source.startsWith('/')).map((m) => m.source));
    expect([...new Set(named)].sort()).toEqual(Object.keys(compose.volumes).sort());
    for (const sample of ['payments-us-east', 'payments-us-west', 'inventory-eu-west']) {
      const service = compose.services[sample] as ComposeService;
      expect(service.entrypoint).toEqual(['node', '/samples/echo-server.mjs']);
      expect(existsSync(mountedConfigPath(service, '/samples/echo-server.mjs'))).toBe(true);
    }
  });
});
