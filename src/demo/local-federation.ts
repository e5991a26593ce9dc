import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, cpSync, existsSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer as createTcpServer } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { waitForReadyz } from '../admin/readiness-probe.js';
import { SERVER_NODE_FLAGS } from '../core/node-flags.js';
import { loadClusterFile, loadFederationFile } from '../config/load.js';
import type { ClusterConfig } from '../config/cluster-config.js';
import { PkiDirectory } from '../pki/pki-directory.js';
import { startExportBackends, type ExportBackend } from './sample-backends.js';
import { ErrorCodes, FedgateError } from '../core/errors.js';

/** The example federation shipped with fedgate (federation-config/ at the package root). */
export function embeddedFederationConfig(): string {
  // dist/src/demo/ (built) or src/demo/ (tests): the package root is above `src`.
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'federation-config', 'federation.yaml'))) {
    const parent = dirname(dir);
    if (parent === dir) throw new FedgateError(ErrorCodes.CONFIG_NOT_FOUND, 'the example federation-config/ was not found next to the fedgate package');
    dir = parent;
  }
  return join(dir, 'federation-config');
}

/** A fedgate command running as a child process, its output in a log file. */
export class LocalProcess {
  readonly exited: Promise<number | null>;

  private constructor(
    readonly name: string,
    readonly child: ChildProcess,
    readonly logFile: string,
  ) {
    this.exited = new Promise((done) => child.once('exit', (code) => done(code)));
  }

  static start(name: string, args: string[], logDir: string, env: NodeJS.ProcessEnv = process.env): LocalProcess {
    mkdirSync(logDir, { recursive: true });
    const logFile = join(logDir, `${name}.log`);
    const fd = openSync(logFile, 'a');
    const child = spawn(process.execPath, [...SERVER_NODE_FLAGS, resolve(process.argv[1] as string), ...args], { stdio: ['ignore', fd, fd], env });
    closeSync(fd);
    return new LocalProcess(name, child, logFile);
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

  async kill(): Promise<void> {
    if (!this.running) return;
    this.child.kill('SIGKILL');
    await this.exited;
  }

  async stop(graceMs = 5000): Promise<void> {
    if (!this.running) return;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(timer);
  }
}

export async function waitReady(process: LocalProcess, adminAddress: string, timeoutMs = 30_000): Promise<void> {
  try {
    await waitForReadyz(adminAddress, timeoutMs, process.name, () => {
      if (!process.running) throw new FedgateError(ErrorCodes.PROCESS_FAILED, `${process.name} exited while starting; its log (${process.logFile}) ends with:\n${process.tail()}`);
    });
  } catch (error) {
    if (process.running) throw new FedgateError(ErrorCodes.PROCESS_FAILED, `${error instanceof Error ? error.message : String(error)}; its log (${process.logFile}) ends with:\n${process.tail()}`);
    throw error;
  }
}

function portFree(host: string, port: number): Promise<boolean> {
  return new Promise((done) => {
    const server = createTcpServer();
    server.once('error', () => done(false));
    server.listen(port, host, () => server.close(() => done(true)));
  });
}

function hostPort(address: string): { host: string; port: number } {
  const index = address.lastIndexOf(':');
  return { host: address.slice(0, index).replace(/^\[|\]$/g, ''), port: Number(address.slice(index + 1)) };
}

export type DemoBackend = ExportBackend;

/**
 * A copy of the example federation in a work directory, with its processes: the controller and a
 * gateway per cluster run as child processes (the same binary users run), sample backends in this
 * process, answering with the name of the cluster they stand for.
 */
export class DemoFederation {
  readonly configDir: string;
  readonly logDir: string;
  readonly clusters: ClusterConfig[];
  readonly controllerAdmin: string;
  readonly controllerApi: string;
  readonly credentialsDir: string;
  controller: LocalProcess | undefined;
  readonly gateways = new Map<string, LocalProcess>();
  readonly backends: DemoBackend[] = [];

  constructor(readonly workDir: string) {
    this.configDir = join(workDir, 'federation-config');
    this.logDir = join(workDir, 'logs');
    if (!existsSync(join(this.configDir, 'federation.yaml'))) cpSync(embeddedFederationConfig(), this.configDir, { recursive: true });
    const federation = loadFederationFile(join(this.configDir, 'federation.yaml'));
    this.controllerAdmin = federation.spec.controller.admin;
    this.controllerApi = federation.spec.controller.listen;
    this.credentialsDir = join(federation.controllerPkiDir, 'admin');
    this.clusters = ['us-east', 'us-west', 'eu-west'].map((name) => loadClusterFile(join(this.configDir, 'clusters', `${name}.yaml`)));
  }

  cluster(name: string): ClusterConfig {
    const cluster = this.clusters.find((c) => c.metadata.name === name);
    if (!cluster) throw new FedgateError(ErrorCodes.CLUSTER_NOT_FOUND, `no cluster ${name} in the demo`);
    return cluster;
  }

  /** Every address the demo binds, checked up front so a second demo fails with a clear message. */
  async checkPorts(): Promise<void> {
    const federation = loadFederationFile(join(this.configDir, 'federation.yaml'));
    const addresses = [federation.spec.controller.listen, federation.spec.controller.joinListen, federation.spec.controller.admin];
    for (const c of this.clusters) {
      addresses.push(c.spec.gateway.inbound, c.spec.gateway.outbound, c.spec.gateway.admin);
      for (const e of c.spec.exports) for (const p of e.ports) addresses.push(`127.0.0.1:${p.targetPort}`);
    }
    const busy: string[] = [];
    for (const address of addresses) {
      const { host, port } = hostPort(address);
      if (!(await portFree(host, port))) busy.push(address);
    }
    if (busy.length > 0) throw new FedgateError(ErrorCodes.UNAVAILABLE, `in use: ${busy.join(', ')} — is another fedgate demo (or the example federation) running? Stop it first.`);
  }

  /** Each cluster gets its own CA (its own trust domain), as independent clusters would. */
  initCertificateAuthorities(): void {
    for (const cluster of this.clusters) {
      if (!existsSync(join(cluster.pkiDir, 'tls.key'))) PkiDirectory.init(cluster.pkiDir, { trustDomain: cluster.spec.trustDomain });
    }
  }

  /** One sample backend per exported port: HTTP answers JSON naming its cluster, gRPC is fedgate.test.Echo. */
  async startBackends(): Promise<void> {
    for (const cluster of this.clusters) this.backends.push(...(await startExportBackends(cluster)));
  }

  async startController(env: NodeJS.ProcessEnv): Promise<void> {
    this.controller = LocalProcess.start('controller', ['controller', '--config', join(this.configDir, 'federation.yaml')], this.logDir, env);
    await waitReady(this.controller, this.controllerAdmin);
  }

  writeToken(cluster: string, token: string): void {
    const file = this.cluster(cluster).spec.controller?.tokenFile;
    if (!file) throw new FedgateError(ErrorCodes.CONFIG_INVALID, `${cluster} has no spec.controller.tokenFile`);
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, token, { mode: 0o600 });
  }

  async startGateway(name: string, env: NodeJS.ProcessEnv = process.env): Promise<LocalProcess> {
    const cluster = this.cluster(name);
    const gateway = LocalProcess.start(`gateway-${name}`, ['gateway', '--config', cluster.file], this.logDir, env);
    this.gateways.set(name, gateway);
    await waitReady(gateway, cluster.spec.gateway.admin);
    return gateway;
  }

  async stop(): Promise<void> {
    await Promise.all([...this.gateways.values()].map((g) => g.stop()));
    await this.controller?.stop();
    await Promise.all(this.backends.splice(0).map((b) => b.close()));
  }
}
