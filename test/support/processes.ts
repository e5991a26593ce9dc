import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync } from 'node:fs';
import { get } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SERVER_NODE_FLAGS } from '../../src/core/node-flags.js';

const BIN = join(process.cwd(), 'dist', 'src', 'bin', 'fedgate.js');

/**
 * A fedgate command running as a real child process (built code, as users run it). Its output goes
 * to a file rather than a pipe, so nothing it logs depends on the test reading fast enough.
 */
export class FedgateProcess {
  readonly exited: Promise<number | null>;

  private constructor(
    readonly name: string,
    readonly child: ChildProcess,
    readonly logFile: string,
  ) {
    this.exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
  }

  static start(name: string, args: string[], env: Record<string, string> = {}, nodeArgs: string[] = []): FedgateProcess {
    const logFile = join(mkdtempSync(join(tmpdir(), `fedgate-${name}-`)), 'output.log');
    const fd = openSync(logFile, 'a');
    // FEDGATE_TEST_NODE_ARGS (e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof") profiles every process a test starts.
    const extra = process.env.FEDGATE_TEST_NODE_ARGS?.split(' ').filter(Boolean) ?? [];
    const child = spawn(process.execPath, [...SERVER_NODE_FLAGS, ...extra, ...nodeArgs, BIN, ...args], {
      env: { ...process.env, FEDGATE_LOG_LEVEL: process.env.FEDGATE_TEST_LOG_LEVEL ?? 'info', NODE_OPTIONS: '', ...env },
      stdio: ['ignore', fd, fd],
    });
    closeSync(fd);
    return new FedgateProcess(name, child, logFile);
  }

  /** What the process printed (logs included), for failure messages. */
  get logs(): string {
    try {
      return readFileSync(this.logFile, 'utf8');
    } catch {
      return '';
    }
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    if (!this.running) return;
    this.child.kill(signal);
    await this.exited;
  }

  /** SIGTERM and wait; SIGKILL after `graceMs`. */
  async stop(graceMs = 5000): Promise<number | null> {
    if (!this.running) return this.child.exitCode;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    const code = await this.exited;
    clearTimeout(timer);
    return code;
  }
}

export function httpGet(url: string, timeoutMs = 2000): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const request = get(url, { timeout: timeoutMs }, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => {
        body += chunk;
      });
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body }));
    });
    request.on('timeout', () => request.destroy(new Error('timeout')));
    request.on('error', reject);
  });
}

/** Waits until an HTTP endpoint answers with `status` (readiness, health). */
export async function waitForHttp(url: string, status = 200, timeoutMs = 20_000, process?: FedgateProcess): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    try {
      const response = await httpGet(url);
      if (response.status === status) return;
      last = `${response.status} ${response.body.trim()}`;
    } catch (error) {
      last = (error as Error).message;
    }
    if (process && !process.running) throw new Error(`${process.name} exited while waiting for ${url}:\n${process.logs}`);
    if (Date.now() > deadline) throw new Error(`${url} did not answer ${status} within ${timeoutMs}ms (last: ${last})${process ? `\n${process.name} logs:\n${process.logs}` : ''}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Runs a fedgate command to completion (the built CLI, as users run it): exit code and output. */
export function runFedgate(args: string[], options: { cwd?: string; env?: Record<string, string>; timeoutMs?: number; input?: string } = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd: options.cwd, env: { ...process.env, NODE_OPTIONS: '', ...options.env }, stdio: [options.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    if (options.input !== undefined) child.stdin?.end(options.input);
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout?.on('data', (c: Buffer) => out.push(c));
    child.stderr?.on('data', (c: Buffer) => err.push(c));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 30_000);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') });
    });
  });
}
