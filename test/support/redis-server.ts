import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './ports.js';

/** A real redis-server process on a free port, for one test file. */
export class RedisProcess {
  private child: ChildProcess | undefined;
  readonly dir: string;

  private constructor(
    readonly port: number,
    private readonly args: string[],
  ) {
    this.dir = mkdtempSync(join(tmpdir(), 'fedgate-redis-'));
  }

  static async start(options: { args?: string[]; port?: number } = {}): Promise<RedisProcess> {
    const redis = new RedisProcess(options.port ?? (await freePort()), options.args ?? []);
    await redis.launch();
    return redis;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  async launch(): Promise<void> {
    this.child = spawn(
      'redis-server',
      ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', this.dir, '--loglevel', 'warning', ...this.args],
      { stdio: 'ignore' },
    );
    await waitForPing(this.port);
  }

  /** SIGKILL: what a crash looks like. Without persistence the data is gone. */
  async kill(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
  }

  /** Kill and start again on the same port: an empty Redis (no persistence). */
  async restart(): Promise<void> {
    await this.kill();
    await this.launch();
  }

  async stop(): Promise<void> {
    await this.kill();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Sends one command over a raw socket (RESP inline); enough for PING, SENTINEL and FLUSHALL. */
export function redisCommand(port: number, command: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let data = '';
    socket.setEncoding('utf8');
    socket.on('connect', () => socket.write(`${command}\r\n`));
    let timer: NodeJS.Timeout | undefined;
    socket.on('data', (chunk: string) => {
      data += chunk;
      // Replies can span chunks; one that ends a line and is followed by 20 ms of quiet is complete.
      if (timer) clearTimeout(timer);
      if (data.endsWith('\r\n')) {
        timer = setTimeout(() => {
          socket.end();
          resolve(data);
        }, 20);
      }
    });
    socket.on('error', reject);
  });
}

async function waitFor(check: () => Promise<boolean>, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function waitForPing(port: number): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      if ((await redisCommand(port, 'PING')).startsWith('+PONG')) return;
    } catch {
      // not up yet
    }
    if (Date.now() > deadline) throw new Error(`redis-server on port ${port} did not answer PING within 10s`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** A master, one replica and one sentinel watching them, for failover tests. */
export class SentinelSetup {
  private sentinel: ChildProcess | undefined;

  private constructor(
    readonly master: RedisProcess,
    readonly replica: RedisProcess,
    readonly sentinelPort: number,
    private readonly dir: string,
  ) {}

  static async start(name = 'mymaster'): Promise<SentinelSetup> {
    // Diskless sync without the default 5 s delay, so the replica is in step before the test starts.
    const master = await RedisProcess.start({ args: ['--repl-diskless-sync-delay', '0'] });
    const replica = await RedisProcess.start({ args: ['--replicaof', '127.0.0.1', String(master.port), '--repl-diskless-sync-delay', '0'] });
    const sentinelPort = await freePort();
    const dir = mkdtempSync(join(tmpdir(), 'fedgate-sentinel-'));
    const config = join(dir, 'sentinel.conf');
    writeFileSync(
      config,
      [
        `port ${sentinelPort}`,
        'bind 127.0.0.1',
        `dir ${dir}`,
        `sentinel monitor ${name} 127.0.0.1 ${master.port} 1`,
        `sentinel down-after-milliseconds ${name} 1000`,
        `sentinel failover-timeout ${name} 5000`,
        `sentinel parallel-syncs ${name} 1`,
        '',
      ].join('\n'),
    );
    const setup = new SentinelSetup(master, replica, sentinelPort, dir);
    setup.sentinel = spawn('redis-server', [config, '--sentinel'], { stdio: 'ignore' });
    await waitForPing(sentinelPort);
    // A failover needs a replica that is in sync and that Sentinel has discovered.
    await waitFor(async () => (await redisCommand(replica.port, 'INFO replication')).includes('master_link_status:up'), 'replica in sync');
    await waitFor(async () => (await redisCommand(sentinelPort, `SENTINEL replicas ${name}`)).includes(String(replica.port)), 'sentinel knows the replica');
    return setup;
  }

  /** The address Sentinel currently reports for the master. */
  async masterPort(name = 'mymaster'): Promise<number> {
    const reply = await redisCommand(this.sentinelPort, `SENTINEL get-master-addr-by-name ${name}`);
    const lines = reply.split('\r\n');
    return Number(lines[4]);
  }

  async stop(): Promise<void> {
    const sentinel = this.sentinel;
    if (sentinel && sentinel.exitCode === null && sentinel.signalCode === null) {
      const exited = new Promise((resolve) => sentinel.once('exit', resolve));
      sentinel.kill('SIGKILL');
      await exited;
    }
    await this.master.stop();
    await this.replica.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
