/**
 * The README's walkthrough, as a reader follows it: the ```sh blocks of its section are read from
 * README.md (never copied here, so the README cannot drift from what works) and typed, in order,
 * into one bash, in a working directory laid out like a checkout after ./tools/setup.sh. Commands
 * ending in `&` become that shell's jobs, as they would in the reader's terminal, so `kill %1`
 * means what it says; the test ends every job it saw. What differs from a reader's machine is only
 * the environment: `npm link` links into a temporary npm prefix (put first on PATH) instead of the
 * machine's global one, and fedgate/npm variables of the test run are not passed on.
 *
 * The example federation listens on fixed ports (15001-15443, 16001-16443, 17001-17443, the
 * sample services' 19001-19103), as `fedgate demo` does: when one is taken the test fails naming
 * it, rather than rewriting the README's addresses.
 */
import { jest } from '@jest/globals';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { eventually } from '../support/control-plane.js';
import { lockExampleAddresses } from '../support/example-addresses.js';

// Up to two minutes waiting for a `fedgate demo` test to free the example's addresses, then the walkthrough.
jest.setTimeout(240_000);

const ROOT = process.cwd();
const HEADING = '## Walkthrough: link clusters, export, apply a policy, run a drill';
const CLUSTERS = ['us-east', 'us-west', 'eu-west'];

/** The section's shell commands in order: one entry per command, `\` continuations joined, comment-only and blank lines dropped. */
function walkthroughCommands(readme: string): string[] {
  const start = readme.indexOf(`\n${HEADING}\n`);
  if (start < 0) throw new Error(`README.md has no section "${HEADING}"`);
  const next = readme.indexOf('\n## ', start + HEADING.length + 2);
  const section = readme.slice(start, next < 0 ? undefined : next);
  const commands: string[] = [];
  for (const block of section.matchAll(/^```sh\n([\s\S]*?)^```$/gm)) {
    let pending = '';
    for (const line of (block[1] ?? '').split('\n')) {
      if (pending === '' && (line.trim() === '' || line.trim().startsWith('#'))) continue;
      if (line.endsWith('\\')) {
        pending += `${line.slice(0, -1)}`;
        continue;
      }
      commands.push(`${pending}${line}`.trim());
      pending = '';
    }
    if (pending !== '') commands.push(pending.trim());
  }
  return commands;
}

/** Every address the example binds, from its own files. */
function exampleAddresses(configDir: string): string[] {
  const federation = parse(readFileSync(join(configDir, 'federation.yaml'), 'utf8')) as { spec: { controller: Record<string, string> } };
  const addresses = [federation.spec.controller.listen, federation.spec.controller.joinListen, federation.spec.controller.admin].map(String);
  for (const name of CLUSTERS) {
    const cluster = parse(readFileSync(join(configDir, 'clusters', `${name}.yaml`), 'utf8')) as { spec: { gateway: Record<string, string>; exports: Array<{ ports: Array<{ targetPort: number }> }> } };
    addresses.push(cluster.spec.gateway.inbound ?? '', cluster.spec.gateway.outbound ?? '', cluster.spec.gateway.admin ?? '');
    for (const e of cluster.spec.exports) for (const p of e.ports) addresses.push(`127.0.0.1:${p.targetPort}`);
  }
  return addresses;
}

function bindable(address: string): Promise<boolean> {
  const colon = address.lastIndexOf(':');
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(Number(address.slice(colon + 1)), address.slice(0, colon), () => server.close(() => resolve(true)));
  });
}

function alive(pid: number): boolean {
  try {
    // A zombie has exited; its parent (the shell, or an init that does not reap) merely has not collected it.
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

interface Step {
  command: string;
  code: number;
  stdout: string;
  stderr: string;
  seconds: number;
}

/**
 * One bash the commands are typed into. Each command runs in the shell itself (a brace group, so
 * jobs, `%1` and variables behave as at a prompt) with its output in files, followed by a marker
 * line with its exit code and the shell's jobs.
 */
class Shell {
  private readonly child: ChildProcessWithoutNullStreams;
  private buffer = '';
  private count = 0;
  private waiting: { marker: string; resolve: (line: string) => void } | undefined;
  readonly jobs = new Set<number>();
  readonly exited: Promise<number | null>;

  constructor(
    readonly cwd: string,
    private readonly outputDir: string,
    env: NodeJS.ProcessEnv,
  ) {
    this.child = spawn('bash', ['--noprofile', '--norc'], { cwd, env, stdio: ['pipe', 'pipe', 'pipe'], detached: true });
    this.exited = new Promise((resolve) => this.child.once('exit', (code) => resolve(code)));
    this.child.stdout.setEncoding('utf8');
    this.child.stdout.on('data', (chunk: string) => {
      this.buffer += chunk;
      const waiting = this.waiting;
      if (!waiting) return;
      const at = this.buffer.indexOf(waiting.marker);
      const end = this.buffer.indexOf('\n', at);
      if (at < 0 || end < 0) return;
      const line = this.buffer.slice(at, end);
      this.buffer = this.buffer.slice(end + 1);
      this.waiting = undefined;
      waiting.resolve(line);
    });
    this.child.stderr.resume();
  }

  get pid(): number {
    return this.child.pid as number;
  }

  async run(command: string, timeoutMs = 60_000): Promise<Step> {
    const n = ++this.count;
    const out = join(this.outputDir, `${n}.out`);
    const err = join(this.outputDir, `${n}.err`);
    const marker = `__walkthrough_step_${n}__`;
    const started = Date.now();
    const line = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`README command did not finish within ${timeoutMs} ms: ${command}\nstdout: ${readIfAny(out)}\nstderr: ${readIfAny(err)}`)), timeoutMs);
      this.waiting = {
        marker,
        resolve: (text) => {
          clearTimeout(timer);
          resolve(text);
        },
      };
      this.child.stdin.write(`{ ${command}\n} </dev/null >${out} 2>${err}; __rc=$?; echo "${marker} $__rc $(jobs -p | tr '\\n' ' ')"\n`);
    });
    const [, code, ...pids] = line.split(/\s+/).filter(Boolean);
    for (const pid of pids) this.jobs.add(Number(pid));
    return { command, code: Number(code), stdout: readIfAny(out), stderr: readIfAny(err), seconds: (Date.now() - started) / 1000 };
  }

  /** Ends every job the shell ever had and the shell itself; SIGKILL for what is left after 15 s. */
  async close(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      this.child.stdin.end('kill $(jobs -p) 2>/dev/null; wait; exit 0\n');
      const timer = setTimeout(() => {
        try {
          process.kill(-this.pid, 'SIGKILL');
        } catch {
          // the group is gone already
        }
      }, 15_000);
      await this.exited;
      clearTimeout(timer);
    }
    for (const pid of this.jobs) if (alive(pid)) process.kill(pid, 'SIGKILL');
  }
}

function readIfAny(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

interface ClusterRow {
  state: string;
  gateway: string;
  catalog: number;
  policies: string;
  exports: number;
}

/** The cluster rows of `fedgate status` (text), by cluster name. */
function statusRows(text: string): Map<string, ClusterRow> {
  const rows = new Map<string, ClusterRow>();
  for (const match of text.matchAll(/^(\S+) +\S+\/\S+ +(\S+) +(\S+) +(\d+) +(.+?) +(\d+)$/gm)) {
    rows.set(match[1] as string, { state: match[2] as string, gateway: match[3] as string, catalog: Number(match[4]), policies: match[5] as string, exports: Number(match[6]) });
  }
  return rows;
}

function converged(text: string, policyRevision: number): boolean {
  const rows = statusRows(text);
  const catalogs = new Set([...rows.values()].map((r) => r.catalog));
  return (
    CLUSTERS.every((c) => rows.get(c)?.state === 'active' && rows.get(c)?.gateway === 'connected' && rows.get(c)?.policies === `${policyRevision} in force`) &&
    catalogs.size === 1 &&
    text.includes(`policies: revision ${policyRevision} in force on all 3 clusters`) &&
    new RegExp(`catalog revision ${[...catalogs][0]},`).test(text)
  );
}

describe('the README walkthrough', () => {
  let work: string;
  let shell: Shell | undefined;
  let release: (() => void) | undefined;
  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), 'fedgate-walkthrough-'));
  });
  afterAll(async () => {
    await shell?.close();
    release?.();
    rmSync(work, { recursive: true, force: true });
  });

  it('runs as written, in order, with the controller restarted in the middle', async () => {
    const commands = walkthroughCommands(readFileSync(join(ROOT, 'README.md'), 'utf8'));
    expect(commands.length).toBeGreaterThan(10);

    // A checkout after ./tools/setup.sh, as far as the walkthrough can tell: the package, its
    // build and dependencies, and a fresh copy of the example.
    const checkout = join(work, 'fedgate');
    mkdirSync(checkout);
    cpSync(join(ROOT, 'package.json'), join(checkout, 'package.json'));
    cpSync(join(ROOT, 'federation-config'), join(checkout, 'federation-config'), { recursive: true });
    symlinkSync(join(ROOT, 'dist'), join(checkout, 'dist'));
    symlinkSync(join(ROOT, 'node_modules'), join(checkout, 'node_modules'));
    // `fedgate demo` binds the same addresses: a test running it holds the lock; a demo started by
    // hand (`--keep`) is named.
    release = await lockExampleAddresses();
    const addresses = exampleAddresses(join(checkout, 'federation-config'));
    const busy = async (): Promise<string[]> => {
      const taken: string[] = [];
      for (const address of addresses) if (!(await bindable(address))) taken.push(address);
      return taken;
    };
    await eventually(async () => (await busy()).length === 0, 'the example federation\'s addresses to be free', 10_000).catch(async () => {
      throw new Error(`the example federation's addresses are in use: ${(await busy()).join(', ')} — a fedgate demo or another walkthrough is running on this machine; stop it and run again`);
    });

    const prefix = join(work, 'npm-prefix');
    const env: NodeJS.ProcessEnv = {};
    for (const [key, value] of Object.entries(process.env)) if (!/^(npm_|fedgate_|redis_url$|node_options$)/i.test(key)) env[key] = value;
    Object.assign(env, { npm_config_prefix: prefix, npm_config_update_notifier: 'false', npm_config_fund: 'false', npm_config_audit: 'false', PATH: `${join(prefix, 'bin')}:${process.env.PATH ?? ''}` });
    const outputDir = join(work, 'steps');
    mkdirSync(outputDir);
    shell = new Shell(checkout, outputDir, env);

    const started = Date.now();
    const transcript: string[] = [];
    const seen = new Set<string>();
    let policyRevision = 0;
    let beforeRestart: Map<string, ClusterRow> | undefined;
    let controllerRestarted = false;
    const fail = (step: Step, why: string): never => {
      throw new Error(`README walkthrough: ${why}\n$ ${step.command}\nexit ${step.code}\nstdout:\n${step.stdout}\nstderr:\n${step.stderr}\n\nsteps so far:\n${transcript.join('\n')}`);
    };

    for (const command of commands) {
      let step = await shell.run(command);
      transcript.push(`${step.seconds.toFixed(1).padStart(5)}s  exit ${step.code}  ${command}`);
      if (step.code !== 0) fail(step, 'a command failed');

      try {
        if (command === 'npm link') {
          const which = await shell.run('command -v fedgate');
          if (which.stdout.trim() !== join(prefix, 'bin', 'fedgate')) fail(which, `fedgate is not the linked one after npm link`);
          seen.add('link');
        } else if (/^fedgate config validate /.test(command)) {
          expect(step.stdout).toMatch(/3 clusters .*: valid/);
        } else if (/^fedgate ca init /.test(command)) {
          const out = /--out (\S+)/.exec(command)?.[1] as string;
          expect(step.stdout).toMatch(/^created CA \S+\.acme\.internal /);
          for (const file of ['tls.crt', 'tls.key', 'ca.crt', 'bundle.json']) expect(existsSync(join(checkout, out, file))).toBe(true);
          seen.add(`ca ${out}`);
        } else if (/fedgate token create /.test(command)) {
          for (const c of CLUSTERS) {
            expect(step.stdout).toContain(`join token for ${c} written to .fedgate/tokens/${c}`);
            // Where each cluster file's spec.controller.tokenFile expects it.
            expect(existsSync(join(checkout, '.fedgate', 'tokens', c))).toBe(true);
          }
          seen.add('tokens');
        } else if (/\/readyz$/.test(command)) {
          expect(step.stdout.trim().split(/\s+/).every((word) => word === 'ready')).toBe(true);
          if (command.includes('15014')) {
            seen.add(beforeRestart ? 'controller ready again' : 'controller ready');
            if (beforeRestart) controllerRestarted = true;
          } else {
            expect(step.stdout.trim().split(/\s+/)).toHaveLength(3);
            seen.add('gateways ready');
          }
        } else if (/^curl .*payments\.default\.svc\.clusterset\.local/.test(command)) {
          // Answered 200 by the sample service behind us-west's own export (locality: same cluster).
          expect(step.stdout).toMatch(/^HTTP\/1\.1 200 OK\r?\n/);
          const body = JSON.parse(step.stdout.slice(step.stdout.indexOf('\r\n\r\n') + 4)) as { service: string; cluster: string };
          expect(body).toMatchObject({ service: 'payments', cluster: 'us-west' });
          seen.add('curl');
        } else if (/^fedgate policy validate /.test(command)) {
          expect(step.stdout).toMatch(/6 documents in 2 files: 0 errors, 0 warnings — valid/);
        } else if (/^fedgate policy apply /.test(command)) {
          policyRevision = Number(/applied 6 documents: policy revision (\d+)/.exec(step.stdout)?.[1] ?? fail(step, 'no policy revision in the output'));
          seen.add('apply');
        } else if (command.startsWith('fedgate status')) {
          // The README's command again, until its answer settles: gateways ACK what they applied (and,
          // after a restart, reconnect) a moment after the command before it returned.
          const settled = await eventually(async () => {
            if (converged(step.stdout, policyRevision)) return step;
            step = await shell?.run(command) as Step;
            return converged(step.stdout, policyRevision) ? step : undefined;
          }, `fedgate status showing every cluster active, connected and at policy revision ${policyRevision}; last:\n${step.stdout}`, 20_000);
          const rows = statusRows(settled.stdout);
          expect([...rows.values()].map((r) => r.exports)).toEqual([1, 2, 1]);
          if (controllerRestarted) {
            // Everything came back: the same clusters, revisions and exports as before the restart.
            expect(rows).toEqual(beforeRestart);
            seen.add('status after restart');
          } else {
            beforeRestart = rows;
            seen.add('status');
          }
        } else if (command.startsWith('kill %1')) {
          expect(shell.jobs.size).toBeGreaterThan(0);
          expect(controllerRestarted).toBe(false);
          seen.add('controller stopped');
        } else if (command.startsWith('fedgate drill run ')) {
          expect(step.stdout).toMatch(/^drill drain us-east for payments\.default, traffic from eu-west at \d+ rps for \d+ s: PASSED$/m);
          expect(step.stderr).toContain('post-flight ok  cluster us-east after the restore: active, gateway connected');
          const reports = readdirSync(join(checkout, 'drills'));
          expect(reports).toHaveLength(1);
          for (const file of ['report.json', 'report.md', 'timeline.svg']) expect(existsSync(join(checkout, 'drills', reports[0] as string, file))).toBe(true);
          seen.add('drill');
        } else if (command.startsWith('kill $(jobs -p)')) {
          seen.add('stopped');
        }
      } catch (error) {
        if ((error as Error).message.startsWith('README walkthrough:')) throw error;
        fail(step, (error as Error).message);
      }
    }

    expect([...seen].sort()).toEqual(
      ['apply', 'ca .fedgate/pki/eu-west', 'ca .fedgate/pki/us-east', 'ca .fedgate/pki/us-west', 'controller ready', 'controller ready again', 'controller stopped', 'curl', 'drill', 'gateways ready', 'link', 'status', 'status after restart', 'stopped', 'tokens'].sort(),
    );
    // The last block stopped every job: nothing the walkthrough started is left, and its ports are free.
    expect([...shell.jobs].filter(alive)).toEqual([]);
    expect(await busy()).toEqual([]);
    console.log(`README walkthrough: ${commands.length} commands in ${((Date.now() - started) / 1000).toFixed(1)}s\n${transcript.join('\n')}`);
  });
});
