import { execFile, execFileSync, type ChildProcess } from 'node:child_process';
import { closeSync, cpSync, existsSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { waitForReadyz } from '../admin/readiness-probe.js';
import { SERVER_NODE_FLAGS } from '../core/node-flags.js';
import { PkiDirectory } from '../pki/pki-directory.js';
import { LabNetwork, type LabHost } from './lab-network.js';
import { ErrorCodes, FedgateError } from '../core/errors.js';

/** Well-known ports: every lab host has its own address, so every process can use the usual port. */
export const LAB_PORTS = { inbound: 15443, outbound: 15001, gatewayAdmin: 15021, api: 15012, join: 15010, controllerAdmin: 15014, redis: 6379 } as const;

export interface LabExport {
  service: string;
  namespace?: string;
  ports: Array<{ name: string; port: number; targetPort?: number; protocol: 'http' | 'http2' | 'grpc' | 'tcp' }>;
  consumers?: string[];
}

export interface LabCluster {
  name: string;
  region: string;
  zone: string;
  exports?: LabExport[];
}

export interface LabFederationOptions {
  /** The fedgate entry point (dist/src/bin/fedgate.js) the lab's processes run. */
  bin: string;
  /** Work directory: config, certificates, state, logs. */
  dir: string;
  /** Put the controller's state in a redis-server on a host of its own (default: when redis-server is installed). */
  redis?: boolean;
  leaseTtl?: string;
  /** YAML lines under spec.defaults of federation.yaml. */
  defaults?: string;
  /** Policy files to copy: file name → YAML, or a directory. */
  policies?: Record<string, string> | string;
  env?: NodeJS.ProcessEnv;
}

/** A fedgate (or redis-server) process on a lab host, its output in a log file. */
export class LabProcess {
  readonly exited: Promise<number | null>;

  constructor(
    readonly name: string,
    readonly child: ChildProcess,
    readonly logFile: string,
  ) {
    this.exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  tail(lines = 20): string {
    try {
      return readFileSync(this.logFile, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
    } catch {
      return '';
    }
  }

  async stop(graceMs = 5000): Promise<void> {
    if (!this.running) return;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(timer);
  }

  async kill(): Promise<void> {
    if (!this.running) return;
    this.child.kill('SIGKILL');
    await this.exited;
  }
}

export interface LabClusterHandle {
  name: string;
  host: LabHost;
  file: string;
  inbound: string;
  outbound: string;
  admin: string;
}

function redisAvailable(): boolean {
  try {
    execFileSync('redis-server', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

function ping(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port, timeout: 500 }, () => socket.write('PING\r\n'));
    socket.once('data', (data) => {
      socket.destroy();
      resolve(data.toString().startsWith('+PONG'));
    });
    socket.once('timeout', () => socket.destroy());
    socket.once('error', () => resolve(false));
    socket.once('close', () => resolve(false));
  });
}

/**
 * A federation whose controller, Redis and clusters each run on their own lab host (network
 * namespace) with their own address, as they would on separate machines: gateways listen and
 * advertise on their host's address, join the controller at its address, and reach each other
 * across the lab bridge. Every process is a real `fedgate` (or redis-server) child started with
 * `ip netns exec`.
 */
export class LabFederation {
  readonly clusters = new Map<string, LabClusterHandle>();
  readonly processes = new Map<string, LabProcess>();
  readonly logDir: string;
  readonly federationFile: string;
  readonly credentialsDir: string;
  readonly controller: { host: LabHost; api: string; join: string; admin: string };
  readonly redis: { host: LabHost; url: string } | undefined;

  private constructor(
    readonly network: LabNetwork,
    readonly options: LabFederationOptions,
    specs: readonly LabCluster[],
  ) {
    const dir = options.dir;
    this.logDir = join(dir, 'logs');
    this.federationFile = join(dir, 'federation.yaml');
    this.credentialsDir = join(dir, 'pki', 'controller', 'admin');
    const controllerHost = network.host('controller');
    this.controller = {
      host: controllerHost,
      api: `${controllerHost.address}:${LAB_PORTS.api}`,
      join: `${controllerHost.address}:${LAB_PORTS.join}`,
      admin: `${controllerHost.address}:${LAB_PORTS.controllerAdmin}`,
    };
    this.redis = network.hosts.has('redis') ? { host: network.host('redis'), url: `redis://${network.host('redis').address}:${LAB_PORTS.redis}` } : undefined;
    for (const dirName of ['clusters', 'policies', 'tokens', 'logs']) mkdirSync(join(dir, dirName), { recursive: true });
    writeFileSync(
      this.federationFile,
      [
        'apiVersion: fedgate.io/v1alpha1',
        'kind: Federation',
        'metadata: { name: lab }',
        'spec:',
        '  trustDomain: lab.internal',
        '  controller:',
        `    listen: ${this.controller.api}`,
        `    joinListen: ${this.controller.join}`,
        `    admin: ${this.controller.admin}`,
        '    pkiDir: pki/controller',
        `    leaseTtl: ${options.leaseTtl ?? '15s'}`,
        '  store:',
        `    url: "${this.redis?.url ?? ''}"`,
        ...(options.defaults ? ['  defaults:', ...options.defaults.split('\n').map((line) => `    ${line}`)] : []),
        '',
      ].join('\n'),
    );
    if (typeof options.policies === 'string') cpSync(options.policies, join(dir, 'policies'), { recursive: true });
    else for (const [name, text] of Object.entries(options.policies ?? {})) writeFileSync(join(dir, 'policies', name), text);
    for (const spec of specs) {
      const host = network.host(spec.name);
      const handle: LabClusterHandle = {
        name: spec.name,
        host,
        file: join(dir, 'clusters', `${spec.name}.yaml`),
        inbound: `${host.address}:${LAB_PORTS.inbound}`,
        outbound: `${host.address}:${LAB_PORTS.outbound}`,
        admin: `${host.address}:${LAB_PORTS.gatewayAdmin}`,
      };
      const pkiDir = join(dir, 'pki', spec.name);
      if (!existsSync(join(pkiDir, 'tls.key'))) PkiDirectory.init(pkiDir, { trustDomain: `${spec.name}.lab.internal` });
      const exports = (spec.exports ?? []).map((e) => ({ namespace: 'default', endpoints: ['127.0.0.1'], ...e }));
      writeFileSync(
        handle.file,
        [
          'apiVersion: fedgate.io/v1alpha1',
          'kind: Cluster',
          `metadata: { name: ${spec.name} }`,
          'spec:',
          `  region: ${spec.region}`,
          `  zone: ${spec.zone}`,
          `  trustDomain: ${spec.name}.lab.internal`,
          `  pkiDir: ../pki/${spec.name}`,
          '  gateway:',
          // Bound to the host's own address: that is what the gateway advertises to its peers.
          `    inbound: ${handle.inbound}`,
          `    outbound: ${handle.outbound}`,
          `    admin: ${handle.admin}`,
          `    stateDir: ../state/${spec.name}`,
          '  controller:',
          `    address: ${this.controller.join}`,
          `    tokenFile: ../tokens/${spec.name}`,
          `  exports: ${JSON.stringify(exports)}`,
          '',
        ].join('\n'),
      );
      this.clusters.set(spec.name, handle);
    }
  }

  /**
   * Makes the lab network (hosts `controller`, `redis` when used, and one per cluster) and writes
   * the federation's files for it; nothing runs yet.
   */
  static async create(clusters: readonly LabCluster[], options: LabFederationOptions): Promise<LabFederation> {
    const redis = options.redis ?? redisAvailable();
    for (const c of clusters) if (['controller', 'redis'].includes(c.name)) throw new FedgateError(ErrorCodes.USAGE, `a lab cluster may not be named ${c.name}`);
    const network = await LabNetwork.create(['controller', ...(redis ? ['redis'] : []), ...clusters.map((c) => c.name)]);
    try {
      return new LabFederation(network, options, clusters);
    } catch (error) {
      await network.destroy();
      throw error;
    }
  }

  cluster(name: string): LabClusterHandle {
    const handle = this.clusters.get(name);
    if (!handle) throw new FedgateError(ErrorCodes.CLUSTER_NOT_FOUND, `no cluster ${name} in the lab`);
    return handle;
  }

  /** Flags that point a CLI command at this lab's controller with the operator credentials. */
  cliTarget(): string[] {
    return ['--controller', this.controller.api, '--credentials', this.credentialsDir];
  }

  private start(name: string, host: string, command: string, args: readonly string[]): LabProcess {
    this.processes.get(name)?.child.kill('SIGKILL');
    const logFile = join(this.logDir, `${name}.log`);
    const fd = openSync(logFile, 'a');
    const child = this.network.spawn(host, command, args, { stdio: ['ignore', fd, fd], env: { ...process.env, ...this.options.env } });
    closeSync(fd);
    const started = new LabProcess(name, child, logFile);
    this.processes.set(name, started);
    return started;
  }

  private fedgate(name: string, host: string, args: readonly string[]): LabProcess {
    return this.start(name, host, process.execPath, [...SERVER_NODE_FLAGS, this.options.bin, ...args]);
  }

  private async ready(started: LabProcess, admin: string, timeoutMs = 30_000): Promise<void> {
    await waitForReadyz(admin, timeoutMs, started.name, () => {
      if (!started.running) throw new FedgateError(ErrorCodes.PROCESS_FAILED, `${started.name} exited while starting; its log (${started.logFile}) ends with:\n${started.tail()}`);
    });
  }

  async startRedis(): Promise<void> {
    if (!this.redis) return;
    const host = this.redis.host;
    const redis = this.start('redis', 'redis', 'redis-server', ['--bind', host.address, '--port', String(LAB_PORTS.redis), '--protected-mode', 'no', '--save', '', '--appendonly', 'no', '--dir', this.options.dir, '--loglevel', 'warning']);
    const deadline = Date.now() + 10_000;
    while (!(await ping(host.address, LAB_PORTS.redis))) {
      if (!redis.running || Date.now() > deadline) throw new FedgateError(ErrorCodes.PROCESS_FAILED, `redis-server on ${host.address} did not start; its log ends with:\n${redis.tail()}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  async startController(): Promise<void> {
    const controller = this.fedgate('controller', 'controller', ['controller', '--config', this.federationFile]);
    await this.ready(controller, this.controller.admin);
  }

  /** A one-time join token per cluster, created through the controller's admin API by the CLI. */
  async writeTokens(): Promise<void> {
    for (const handle of this.clusters.values()) {
      const tokenFile = join(this.options.dir, 'tokens', handle.name);
      if (existsSync(join(this.options.dir, 'state', handle.name, 'membership.json'))) continue;
      await new Promise<void>((resolve, reject) => {
        execFile(process.execPath, [this.options.bin, 'token', 'create', '--cluster', handle.name, '--ttl', '1h', '--out', tokenFile, ...this.cliTarget()], { timeout: 20_000 }, (error, _stdout, stderr) =>
          error ? reject(new Error(`token for ${handle.name}: ${stderr.trim() || error.message}`)) : resolve(),
        );
      });
    }
  }

  /** The sample services of a cluster's exports, on its host's loopback (`fedgate demo backends`). */
  async startBackends(name: string): Promise<void> {
    const handle = this.cluster(name);
    if (!readFileSync(handle.file, 'utf8').includes('"ports"')) return;
    const backends = this.fedgate(`backends-${name}`, name, ['demo', 'backends', '--config', handle.file]);
    const deadline = Date.now() + 20_000;
    while (!readFileSync(backends.logFile, 'utf8').includes('backends ready')) {
      if (!backends.running || Date.now() > deadline) throw new FedgateError(ErrorCodes.PROCESS_FAILED, `the sample services of ${name} did not start; their log ends with:\n${backends.tail()}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  async startGateway(name: string): Promise<LabProcess> {
    const gateway = this.fedgate(`gateway-${name}`, name, ['gateway', '--config', this.cluster(name).file]);
    await this.ready(gateway, this.cluster(name).admin);
    return gateway;
  }

  /** Redis, the controller, join tokens, every cluster's sample services and gateway. */
  async startAll(): Promise<void> {
    await this.startRedis();
    await this.startController();
    await this.writeTokens();
    for (const name of this.clusters.keys()) await this.startBackends(name);
    await Promise.all([...this.clusters.keys()].map((name) => this.startGateway(name)));
  }

  /** Runs a fedgate command on a lab host (a drill from its --from cluster, say) and collects its output. */
  run(host: string, args: readonly string[], options: { timeoutMs?: number; onLine?: (line: string, stream: 'stdout' | 'stderr') => void } = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
    return new Promise((resolve, reject) => {
      const child = this.network.spawn(host, process.execPath, [this.options.bin, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...this.options.env } });
      const out: string[] = [];
      const err: string[] = [];
      const lines = (stream: 'stdout' | 'stderr', sink: string[]) => {
        let partial = '';
        return (chunk: Buffer): void => {
          sink.push(chunk.toString('utf8'));
          if (!options.onLine) return;
          partial += chunk.toString('utf8');
          const parts = partial.split('\n');
          partial = parts.pop() ?? '';
          for (const line of parts) options.onLine(line, stream);
        };
      };
      child.stdout?.on('data', lines('stdout', out));
      child.stderr?.on('data', lines('stderr', err));
      const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 120_000);
      child.once('error', reject);
      child.once('close', (code) => {
        clearTimeout(timer);
        resolve({ code, stdout: out.join(''), stderr: err.join('') });
      });
    });
  }

  /** Stops every process (gateways first, Redis last) and removes the lab network. */
  async stop(): Promise<void> {
    const order = (name: string): number => (name.startsWith('gateway-') ? 0 : name.startsWith('backends-') ? 1 : name === 'controller' ? 2 : 3);
    const byOrder = [...this.processes.values()].sort((a, b) => order(a.name) - order(b.name));
    for (const rank of [0, 1, 2, 3]) await Promise.all(byOrder.filter((p) => order(p.name) === rank).map((p) => p.stop()));
    await this.network.destroy();
  }
}
