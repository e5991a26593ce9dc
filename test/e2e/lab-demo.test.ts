/**
 * `fedgate demo --lab`: the example federation with every cluster, the controller and Redis on
 * its own network namespace, a drain drill and a partition drill run by the real CLI from the
 * --from cluster's namespace; Ctrl-C removes every namespace and interface it made.
 */
import { jest } from '@jest/globals';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Ajv2020 } from 'ajv/dist/2020.js';
import type { DrillReport } from '../../src/drill/report.js';
import { describeLab, FEDGATE_BIN } from '../support/lab.js';

jest.setTimeout(240_000);

const namespaces = (): string[] =>
  execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })
    .split('\n')
    .map((line) => line.trim().split(/\s+/)[0] ?? '')
    .filter(Boolean);

describeLab('fedgate demo --lab', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'fedgate-lab-demo-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('runs the example federation on network namespaces, drains and partitions us-east, and removes every namespace on Ctrl-C', async () => {
    const child = spawn(process.execPath, [FEDGATE_BIN, 'demo', '--lab', '--keep', '--dir', dir, '--drill-seconds', '4', '--rps', '50'], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NODE_OPTIONS: '' } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    const deadline = Date.now() + 200_000;
    while (!stdout.includes('the lab keeps running')) {
      if (child.exitCode !== null || Date.now() > deadline) throw new Error(`the lab demo did not get to --keep (exit ${child.exitCode}):\n${stdout}\n${stderr}`);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    const id = /lab (fgl-\d+-\d+): bridge (198\.\d+\.\d+\.0\/24)/.exec(stdout)?.[1] as string;
    expect(id).toBeDefined();
    const hostInterface = execFileSync('ip', ['-o', 'link', 'show'], { encoding: 'utf8' })
      .split('\n')
      .map((line) => line.split(':')[1]?.trim().split('@')[0] ?? '')
      .find((name) => /^fglab\d+$/.test(name) && stdout.includes(`this machine 198.18.${name.slice('fglab'.length)}.1`));
    expect(hostInterface).toBeDefined();
    const hosts = ['controller', 'us-east', 'us-west', 'eu-west', 'bridge'];
    expect(namespaces()).toEqual(expect.arrayContaining(hosts.map((h) => `${id}-${h}`)));
    expect(stdout).toMatch(/controller up on 198\.\d+\.\d+\.10:15012 /);
    expect(stdout).toMatch(/policies: revision \d+ in force on all 3 clusters/);
    expect(stdout).toContain(`$ ip netns exec ${id}-eu-west fedgate drill run --from eu-west`);
    expect(stdout).toMatch(/drill drain us-east for greeter\.default, traffic from us-west at 50 rps for 4 s: (PASSED|FAILED)\n/);
    expect(stdout).toMatch(/drill partition us-east \(both directions\) for payments\.default, traffic from eu-west at 50 rps for 4 s: (PASSED|FAILED)\n/);
    expect(stdout).toContain(`drop every packet into and out of us-east's network namespace ${id}-us-east (nft, no resets)`);

    const validate = new Ajv2020({ strict: true, validateFormats: false }).compile(JSON.parse(readFileSync(join(process.cwd(), 'docs', 'drill-report.schema.json'), 'utf8')) as object);
    const partition = JSON.parse(readFileSync(join(dir, 'drills', 'partition-default-payments', 'report.json'), 'utf8')) as DrillReport;
    expect(validate(partition)).toBe(true);
    expect(partition.plan.failure).toMatchObject({ direction: 'both', netns: `${id}-us-east` });
    expect(partition.failover.baselineShareOfFailing).toBeGreaterThan(0.9);
    expect(existsSync(join(dir, 'drills', 'drain-default-greeter', 'timeline.svg'))).toBe(true);

    child.kill('SIGINT');
    expect(await exited).toBe(0);
    expect(namespaces().filter((n) => n.startsWith(`${id}-`))).toEqual([]);
    expect(execFileSync('ip', ['-o', 'link', 'show'], { encoding: 'utf8' })).not.toContain(`${hostInterface}:`);
  });
});
