import { execFile, execFileSync, spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { ErrorCodes, FedgateError } from '../core/errors.js';

/** One machine of the lab: a network namespace with its own address on the lab's bridge. */
export interface LabHost {
  name: string;
  netns: string;
  address: string;
}

/** Every lab namespace is named `fgl-<owner pid>-<sequence>-<host>`, so leftovers of dead owners can be found. */
const PREFIX = 'fgl';
const NAME = /^fgl-(\d+)-(\d+)-/;
/** 198.18.0.0/15 is reserved for network benchmarks (RFC 2544): no real network the host reaches uses it. */
const SUBNETS = 256;
let sequence = 0;

function ip(args: readonly string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('ip', args, { timeout: 10_000 }, (error, stdout, stderr) => {
      if (error) reject(new Error(`ip ${args.join(' ')}: ${(stderr || error.message).trim()}`));
      else resolve(stdout);
    });
  });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function namespaces(): string[] {
  try {
    return execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })
      .split('\n')
      .map((line) => line.trim().split(/\s+/)[0] ?? '')
      .filter((name) => name !== '');
  } catch {
    return [];
  }
}

function pidsIn(netns: string): number[] {
  try {
    return execFileSync('ip', ['netns', 'pids', netns], { encoding: 'utf8' })
      .split('\n')
      .map(Number)
      .filter((pid) => Number.isInteger(pid) && pid > 0 && pid !== process.pid);
  } catch {
    return [];
  }
}

function signal(pids: readonly number[], name: NodeJS.Signals): void {
  for (const pid of pids) {
    try {
      process.kill(pid, name);
    } catch {
      // already gone
    }
  }
}

/**
 * Removes namespaces, with every process still inside them: SIGTERM, then SIGKILL for what is
 * left after `graceMs`. Deleting a namespace deletes its veth ends, and a veth pair dies with
 * either end, so the host side of the lab goes with its bridge namespace.
 */
async function removeNamespaces(names: readonly string[], graceMs: number): Promise<void> {
  const pids = names.flatMap(pidsIn);
  signal(pids, 'SIGTERM');
  const deadline = Date.now() + graceMs;
  while (pids.some(alive) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
  signal(pids.filter(alive), 'SIGKILL');
  for (const name of names) {
    for (let attempt = 0; attempt < 20 && namespaces().includes(name); attempt++) {
      try {
        execFileSync('ip', ['netns', 'delete', name], { stdio: 'ignore' });
      } catch {
        // A process that was just killed can hold the namespace a moment longer.
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }
  }
}

/**
 * A small network of Linux network namespaces: one per host, each with its own address on a
 * bridge that lives in a namespace of its own, plus a veth from this machine into the bridge so
 * the process that made the lab (a test, `fedgate demo --lab`) reaches every host directly.
 * Nothing is bound or filtered on this machine's own interfaces; everything the lab creates is
 * removed by `destroy()`, by an exit of this process, or by the next lab once its owner is gone.
 */
export class LabNetwork {
  readonly hosts = new Map<string, LabHost>();
  private destroyed = false;
  private readonly onExit = (): void => this.destroySync();

  private constructor(
    /** `fgl-<pid>-<sequence>`: the prefix of every namespace of this lab. */
    readonly id: string,
    /** e.g. 198.18.7.0/24 */
    readonly subnet: string,
    /** This machine's address on the lab bridge. */
    readonly gateway: string,
    /** The interface on this machine that joins the lab bridge. */
    readonly hostInterface: string,
    private readonly bridgeNetns: string,
  ) {}

  /** Why a lab cannot be made here (not root, no iproute2), or undefined when it can. */
  static unavailable(): string | undefined {
    if (process.platform !== 'linux') return 'network namespaces need Linux';
    if (process.getuid?.() !== 0) return 'network namespaces need root (run as root, or use the loopback demo)';
    try {
      execFileSync('ip', ['netns', 'list'], { stdio: 'ignore' });
    } catch {
      return 'the ip command (iproute2) is missing or cannot list network namespaces: install iproute2 (tools/setup.sh does)';
    }
    return undefined;
  }

  /** Removes what labs of processes that are gone left behind; returns the namespaces removed. */
  static async removeLeftovers(): Promise<string[]> {
    const stale = namespaces().filter((name) => {
      const owner = NAME.exec(name);
      return owner !== null && Number(owner[1]) !== process.pid && !alive(Number(owner[1]));
    });
    // Hosts before bridges, so that no process is left in a namespace without its network.
    stale.sort((a, b) => Number(a.endsWith('-bridge')) - Number(b.endsWith('-bridge')));
    await removeNamespaces(stale, 2000);
    return stale;
  }

  /** A lab with one host per name; addresses are given in that order from .10 up. */
  static async create(hostNames: readonly string[]): Promise<LabNetwork> {
    const reason = LabNetwork.unavailable();
    if (reason) throw new FedgateError(ErrorCodes.UNAVAILABLE, `cannot make a network lab: ${reason}`);
    for (const name of hostNames) if (!/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(name) || name === 'bridge') throw new FedgateError(ErrorCodes.USAGE, `lab host name "${name}" must be a DNS label other than "bridge"`);
    await LabNetwork.removeLeftovers();
    sequence += 1;
    const id = `${PREFIX}-${process.pid}-${sequence}`;
    const bridge = `${id}-bridge`;
    await ip(['netns', 'add', bridge]);
    // The subnet is claimed by creating its host-side interface: the kernel refuses a second
    // interface of the same name, so two labs (parallel test workers) can never share a subnet.
    let claimed: { index: number; name: string } | undefined;
    try {
      const start = (process.pid * 7 + sequence) % SUBNETS;
      for (let n = 0; n < SUBNETS && !claimed; n++) {
        const index = (start + n) % SUBNETS;
        const name = `fglab${index}`;
        const subnet = `198.${18 + Math.floor(index / 256)}.${index % 256}.0/24`;
        if ((await ip(['-4', 'route', 'show', subnet])).trim() !== '') continue;
        try {
          await ip(['link', 'add', name, 'type', 'veth', 'peer', 'name', 'uplink', 'netns', bridge]);
          claimed = { index, name };
        } catch (error) {
          if (!/File exists/.test(String(error))) throw error;
        }
      }
      if (!claimed) throw new FedgateError(ErrorCodes.LIMIT_EXCEEDED, 'no free lab subnet in 198.18.0.0/16');
    } catch (error) {
      await removeNamespaces([bridge], 0);
      throw error;
    }
    const net = `198.${18 + Math.floor(claimed.index / 256)}.${claimed.index % 256}`;
    const lab = new LabNetwork(id, `${net}.0/24`, `${net}.1`, claimed.name, bridge);
    process.once('exit', lab.onExit);
    try {
      await ip(['-n', bridge, 'link', 'add', 'br0', 'type', 'bridge']);
      await ip(['-n', bridge, 'link', 'set', 'br0', 'up']);
      await ip(['-n', bridge, 'link', 'set', 'uplink', 'master', 'br0', 'up']);
      await ip(['addr', 'add', `${lab.gateway}/24`, 'dev', claimed.name]);
      await ip(['link', 'set', claimed.name, 'up']);
      for (const [i, name] of hostNames.entries()) {
        const netns = `${id}-${name}`;
        const address = `${net}.${10 + i}`;
        await ip(['netns', 'add', netns]);
        lab.hosts.set(name, { name, netns, address });
        await ip(['link', 'add', 'eth0', 'netns', netns, 'type', 'veth', 'peer', 'name', `port${i}`, 'netns', bridge]);
        await ip(['-n', bridge, 'link', 'set', `port${i}`, 'master', 'br0', 'up']);
        await ip(['-n', netns, 'addr', 'add', `${address}/24`, 'dev', 'eth0']);
        await ip(['-n', netns, 'link', 'set', 'eth0', 'up']);
        await ip(['-n', netns, 'link', 'set', 'lo', 'up']);
      }
    } catch (error) {
      await lab.destroy();
      throw error;
    }
    return lab;
  }

  host(name: string): LabHost {
    const host = this.hosts.get(name);
    if (!host) throw new FedgateError(ErrorCodes.USAGE, `no host ${name} in lab ${this.id}`);
    return host;
  }

  /** The argv that runs `command` on a lab host (inside its namespace). */
  command(host: string, command: string, args: readonly string[]): [string, string[]] {
    return ['ip', ['netns', 'exec', this.host(host).netns, command, ...args]];
  }

  /** Starts a process on a lab host. `ip netns exec` execs the command, so the child's pid is the process's own. */
  spawn(host: string, command: string, args: readonly string[], options: SpawnOptions = {}): ChildProcess {
    const [ipCommand, ipArgs] = this.command(host, command, args);
    return spawn(ipCommand, ipArgs, options);
  }

  /** Every namespace of this lab, bridge last. */
  get namespaces(): string[] {
    return [...[...this.hosts.values()].map((h) => h.netns), this.bridgeNetns];
  }

  /** Stops every process left in the lab and removes its namespaces (and so its interfaces). */
  async destroy(): Promise<void> {
    if (this.destroyed) return;
    this.destroyed = true;
    process.off('exit', this.onExit);
    await removeNamespaces(this.namespaces, 3000);
  }

  /** For `exit` handlers, where nothing asynchronous runs any more: SIGKILL and delete. */
  destroySync(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    process.off('exit', this.onExit);
    for (const name of this.namespaces) {
      signal(pidsIn(name), 'SIGKILL');
      try {
        execFileSync('ip', ['netns', 'delete', name], { stdio: 'ignore' });
      } catch {
        // removed by the next lab as a leftover of a dead owner
      }
    }
  }
}
