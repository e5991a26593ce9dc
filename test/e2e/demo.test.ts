/**
 * The README's main command, as a newcomer runs it: `fedgate demo` starts the example federation
 * from the embedded config (controller, three gateways, sample services, example policies), runs a
 * drain and a kill drill, prints the summaries and exits cleanly.
 */
import { jest } from '@jest/globals';
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { lockExampleAddresses } from '../support/example-addresses.js';
import { runFedgate } from '../support/processes.js';

jest.setTimeout(120_000);

describe('fedgate demo', () => {
  let dir: string;
  // The demo binds the example federation's fixed addresses, as the README walkthrough test does.
  let releaseAddresses: (() => void) | undefined;
  beforeAll(async () => {
    releaseAddresses = await lockExampleAddresses();
    dir = mkdtempSync(join(tmpdir(), 'fedgate-demo-test-'));
  });
  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
    releaseAddresses?.();
  });

  it('starts a local federation, runs a drain and a kill drill, reports them and exits 0', async () => {
    const started = Date.now();
    const result = await runFedgate(['demo', '--dir', dir, '--drill-seconds', '6'], { timeoutMs: 100_000, env: { FEDGATE_LOG_LEVEL: 'info' } });
    const seconds = (Date.now() - started) / 1000;
    if (result.code !== 0) throw new Error(`demo exited ${result.code}:\n${result.stdout}\n${result.stderr}`);
    console.log(`fedgate demo took ${seconds.toFixed(1)}s`);
    const out = result.stdout;
    expect(out).toContain('controller up (embedded journal store)');
    expect(out).toContain('gateways joined with one-time tokens: us-east');
    expect(out).toMatch(/example policies applied: 6 documents, policy revision \d+/);
    expect(out).toMatch(/policies: revision \d+ in force on all 3 clusters/);
    expect(out).toMatch(/default\/payments +(us-west,us-east|us-east,us-west) /);
    expect(out).toMatch(/default\/greeter +(eu-west,us-east|us-east,eu-west) /);
    expect(out).toContain('drill drain us-east for greeter.default, traffic from us-west at 100 rps for 6 s: PASSED');
    expect(out).toContain('drill kill us-east for payments.default, traffic from eu-west at 100 rps for 6 s: PASSED');
    expect(out).toMatch(/ {2}reason: us-east served \d+% of the baseline; 100% failed over after/);

    const validate = new Ajv2020({ strict: true, validateFormats: false }).compile(JSON.parse(readFileSync(join(process.cwd(), 'docs', 'drill-report.schema.json'), 'utf8')) as object);
    for (const name of ['drain-default-greeter', 'kill-default-payments']) {
      const reportDir = join(dir, 'drills', name);
      for (const file of ['report.json', 'report.md', 'timeline.svg']) expect(existsSync(join(reportDir, file))).toBe(true);
      const report = JSON.parse(readFileSync(join(reportDir, 'report.json'), 'utf8')) as { verdict: string; errors: { total: number }; failover: { baselineShareOfFailing: number } };
      expect(validate(report)).toBe(true);
      expect(report.verdict).toBe('PASSED');
      expect(report.failover.baselineShareOfFailing).toBeGreaterThan(0.2);
    }
    // Every process it started is gone: the ports are free for the next run. That run asks for the
    // lab without root (as nobody when the tests run as root): it says why and runs the loopback demo.
    const second = join(dir, 'second');
    mkdirSync(second, { mode: 0o777 });
    chmodSync(dir, 0o755);
    chmodSync(second, 0o777);
    const asUser = process.getuid?.() === 0 ? ['runuser', '-u', 'nobody', '--', process.execPath] : [process.execPath];
    const again = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      const child = spawn(asUser[0] as string, [...asUser.slice(1), join(process.cwd(), 'dist', 'src', 'bin', 'fedgate.js'), 'demo', '--lab', '--dir', second, '--drill-seconds', '2', '--rps', '20'], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NODE_OPTIONS: '' } });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
      child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
      const timer = setTimeout(() => child.kill('SIGKILL'), 100_000);
      child.once('close', (code) => {
        clearTimeout(timer);
        resolve({ code, stdout, stderr });
      });
    });
    expect(again.stderr).toContain('fedgate demo --lab: network namespaces need root (run as root, or use the loopback demo); running the loopback demo instead');
    expect(again.stderr).not.toContain('in use:');
    expect(again.stdout).toContain('drill kill us-east for payments.default, traffic from eu-west at 20 rps for 2 s: ');
    expect(again.code).toBe(0);
  });
});
