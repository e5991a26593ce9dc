import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connectAdmin, readAdminCredentials, type AdminConnection } from '../../src/cli/controller-api.js';
import { PkiDirectory } from '../../src/pki/pki-directory.js';
import { freePorts } from './ports.js';
import { FedgateProcess, waitForHttp } from './processes.js';

export interface ExportSpecYaml {
  service: string;
  namespace?: string;
  ports: Array<{ name: string; port: number; targetPort: number; protocol: 'http' | 'http2' | 'grpc' | 'tcp' }>;
  endpoints?: Array<string | { address: string; ready: boolean }>;
  consumers?: string[];
}

export interface ClusterSpecYaml {
  name: string;
  region: string;
  zone: string;
  labels?: Record<string, string>;
  exports?: ExportSpecYaml[];
  tcpImports?: Array<{ service: string; port: number }>;
  /** YAML under spec.gateway.limits. */
  limits?: Record<string, string | number>;
  /** spec.discovery, as JSON-compatible YAML (default: file mode with `exports`). */
  discovery?: Record<string, unknown>;
  /** spec.gateway.policies. */
  policies?: { allowFaultInjection?: boolean };
  /** spec.gateway.callers. */
  callers?: Array<{ address: string; namespace: string; serviceAccount: string }>;
  /** More fields under spec.gateway, as JSON-compatible YAML (e.g. certificateSource and signer). */
  gatewayFields?: Record<string, unknown>;
}

export interface ControllerReplica {
  index: number;
  ports: { api: number; join: number; admin: number };
  file: string;
  process?: FedgateProcess;
}

export interface ClusterHandle {
  name: string;
  file: string;
  ports: { inbound: number; outbound: number; admin: number; tcp: number[] };
  process?: FedgateProcess;
}

/**
 * A static federation (no controller) written to a temp federation-config, each cluster with its
 * own CA; gateways run as real `fedgate gateway` processes.
 */
export interface FederationOptions {
  /** YAML under spec.defaults of federation.yaml. */
  defaults?: string;
  /** File name → YAML, written to policies/. */
  policies?: Record<string, string>;
  /**
   * Run a controller (the default store, or REDIS_URL-style `storeUrl`) and have the gateways join
   * it. `replicas` > 1 writes one federation file per replica (federation-1.yaml …), same store and
   * CA, own ports; gateways join through replica 0 and learn the others from it.
   */
  controller?: { storeUrl?: string; leaseTtl?: string; replicas?: number };
}

/**
 * A local federation in a temp federation-config, each cluster with its own CA; gateways (and the
 * controller, when asked for) run as real `fedgate` processes.
 */
export class LocalFederation {
  readonly clusters = new Map<string, ClusterHandle>();
  /** Replica 0 of the controller (the one gateways join through). */
  controller: ControllerReplica | undefined;
  readonly controllerReplicas: ControllerReplica[] = [];
  private readonly adminConnections = new Map<number, AdminConnection>();

  private constructor(readonly dir: string) {}

  static async create(clusters: ClusterSpecYaml[], options: FederationOptions = {}): Promise<LocalFederation> {
    const dir = mkdtempSync(join(tmpdir(), 'fedgate-fed-'));
    const federation = new LocalFederation(dir);
    mkdirSync(join(dir, 'clusters'));
    mkdirSync(join(dir, 'policies'));
    const federationLines = (controllerLines: string[]): string =>
      ['apiVersion: fedgate.io/v1alpha1', 'kind: Federation', 'metadata:', '  name: test', 'spec:', '  trustDomain: test.internal', ...controllerLines, ...(options.defaults ? ['  defaults:', ...options.defaults.split('\n').map((l) => `    ${l}`)] : []), ''].join('\n');
    if (options.controller) {
      for (let index = 0; index < (options.controller.replicas ?? 1); index++) {
        const [api, joinPort, admin] = (await freePorts(3)) as [number, number, number];
        const replica: ControllerReplica = { index, ports: { api, join: joinPort, admin }, file: join(dir, index === 0 ? 'federation.yaml' : `federation-${index}.yaml`) };
        federation.controllerReplicas.push(replica);
        writeFileSync(
          replica.file,
          federationLines([
            '  controller:',
            `    listen: 127.0.0.1:${api}`,
            `    joinListen: 127.0.0.1:${joinPort}`,
            `    admin: 127.0.0.1:${admin}`,
            '    pkiDir: pki/controller',
            `    leaseTtl: ${options.controller.leaseTtl ?? '15s'}`,
            '  store:',
            `    url: "${options.controller.storeUrl ?? ''}"`,
          ]),
        );
      }
      federation.controller = federation.controllerReplicas[0];
    } else {
      writeFileSync(join(dir, 'federation.yaml'), federationLines([]));
    }
    for (const [name, text] of Object.entries(options.policies ?? {})) writeFileSync(join(dir, 'policies', name), text);
    for (const cluster of clusters) {
      const ports = await freePorts(3 + (cluster.tcpImports?.length ?? 0));
      const [inbound, outbound, admin, ...tcp] = ports as [number, number, number, ...number[]];
      const td = `${cluster.name}.test.internal`;
      PkiDirectory.init(join(dir, 'pki', cluster.name), { trustDomain: td });
      const lines = [
        'apiVersion: fedgate.io/v1alpha1',
        'kind: Cluster',
        'metadata:',
        `  name: ${cluster.name}`,
        `  labels: ${JSON.stringify(cluster.labels ?? {})}`,
        'spec:',
        `  region: ${cluster.region}`,
        `  zone: ${cluster.zone}`,
        `  trustDomain: ${td}`,
        `  pkiDir: ../pki/${cluster.name}`,
        '  gateway:',
        `    inbound: 127.0.0.1:${inbound}`,
        `    outbound: 127.0.0.1:${outbound}`,
        `    admin: 127.0.0.1:${admin}`,
        `    stateDir: ../state/${cluster.name}`,
        ...(cluster.limits ? [`    limits: ${JSON.stringify(cluster.limits)}`] : []),
        ...(cluster.policies ? [`    policies: ${JSON.stringify(cluster.policies)}`] : []),
        ...(cluster.callers ? [`    callers: ${JSON.stringify(cluster.callers)}`] : []),
        ...Object.entries(cluster.gatewayFields ?? {}).map(([key, value]) => `    ${key}: ${JSON.stringify(value)}`),
        `    tcpImports: ${JSON.stringify((cluster.tcpImports ?? []).map((t, i) => ({ service: t.service, port: t.port, listen: `127.0.0.1:${tcp[i]}` })))}`,
        ...(federation.controller ? ['  controller:', `    address: 127.0.0.1:${federation.controller.ports.join}`, `    tokenFile: ../tokens/${cluster.name}`] : []),
        `  exports: ${JSON.stringify((cluster.exports ?? []).map((e) => ({ namespace: 'default', endpoints: ['127.0.0.1'], ...e })))}`,
        ...(cluster.discovery ? [`  discovery: ${JSON.stringify(cluster.discovery)}`] : []),
        '',
      ];
      const file = join(dir, 'clusters', `${cluster.name}.yaml`);
      writeFileSync(file, lines.join('\n'));
      federation.clusters.set(cluster.name, { name: cluster.name, file, ports: { inbound, outbound, admin, tcp } });
    }
    return federation;
  }

  cluster(name: string): ClusterHandle {
    const handle = this.clusters.get(name);
    if (!handle) throw new Error(`no cluster ${name}`);
    return handle;
  }

  async start(name: string, env: Record<string, string> = {}): Promise<FedgateProcess> {
    const handle = this.cluster(name);
    const process = FedgateProcess.start(`gateway-${name}`, ['gateway', '--config', handle.file], env);
    handle.process = process;
    await waitForHttp(`http://127.0.0.1:${handle.ports.admin}/readyz`, 200, 20_000, process);
    return process;
  }

  async startAll(env: Record<string, string> = {}): Promise<void> {
    if (this.controller) await this.startController(env);
    for (const replica of this.controllerReplicas.slice(1)) await this.startReplica(replica.index, env);
    await Promise.all([...this.clusters.keys()].map((name) => this.start(name, env)));
  }

  /** SIGKILLs a cluster's gateway and starts it again at once (same ports, same state dir). */
  async restart(name: string, env: Record<string, string> = {}): Promise<FedgateProcess> {
    await this.cluster(name).process?.kill('SIGKILL');
    return this.start(name, env);
  }

  /** Starts (again) one controller replica, on its own ports; resolves once it is ready. */
  async startReplica(index: number, env: Record<string, string> = {}): Promise<FedgateProcess> {
    const replica = this.controllerReplicas[index];
    if (!replica) throw new Error(`no controller replica ${index}`);
    replica.process = FedgateProcess.start(`controller-${index}`, ['controller', '--config', replica.file], env);
    await waitForHttp(`http://127.0.0.1:${replica.ports.admin}/readyz`, 200, 20_000, replica.process);
    return replica.process;
  }

  /** Starts the controller (replica 0) and writes a join token for every cluster that has none yet. */
  async startController(env: Record<string, string> = {}): Promise<FedgateProcess> {
    const controller = this.controller;
    if (!controller) throw new Error('this federation has no controller');
    await this.startReplica(0, env);
    mkdirSync(join(this.dir, 'tokens'), { recursive: true });
    for (const name of this.clusters.keys()) {
      const tokenFile = join(this.dir, 'tokens', name);
      if (existsSync(join(this.dir, 'state', name, 'membership.json'))) continue;
      const { token } = await this.admin().call.createToken({ cluster: name, ttlMs: 600_000 });
      writeFileSync(tokenFile, token);
    }
    return controller.process as FedgateProcess;
  }

  /** An operator's Admin connection to one controller replica (replica 0 by default). */
  admin(replica = 0): AdminConnection {
    const controller = this.controllerReplicas[replica];
    if (!controller) throw new Error(`this federation has no controller replica ${replica}`);
    let connection = this.adminConnections.get(replica);
    if (!connection) {
      connection = connectAdmin(`127.0.0.1:${controller.ports.api}`, readAdminCredentials(join(this.dir, 'pki', 'controller', 'admin')));
      this.adminConnections.set(replica, connection);
    }
    return connection;
  }

  /** Flags that point a CLI command at this federation's controller with the operator credentials. */
  cliTarget(replica = 0): string[] {
    const controller = this.controllerReplicas[replica];
    if (!controller) throw new Error(`this federation has no controller replica ${replica}`);
    return ['--controller', `127.0.0.1:${controller.ports.api}`, '--credentials', join(this.dir, 'pki', 'controller', 'admin')];
  }

  adminUrl(name: string): string {
    return `http://127.0.0.1:${this.cluster(name).ports.admin}`;
  }

  outbound(name: string): string {
    return `127.0.0.1:${this.cluster(name).ports.outbound}`;
  }

  async stop(): Promise<void> {
    for (const connection of this.adminConnections.values()) connection.close();
    await Promise.all([...this.clusters.values()].map((c) => c.process?.stop()));
    await Promise.all(this.controllerReplicas.map((r) => r.process?.stop()));
    rmSync(this.dir, { recursive: true, force: true });
  }
}
