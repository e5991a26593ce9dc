/**
 * The lab's network namespaces: each host gets its own address on a bridge, this machine reaches
 * them, and everything is removed afterwards — by destroy(), by the exit of the process that made
 * the lab, and (after a SIGKILL, when nothing of the owner runs any more) by the next lab.
 */
import { jest } from '@jest/globals';
import { execFileSync, spawn } from 'node:child_process';
import { get } from 'node:http';
import { LabNetwork } from '../../src/demo/lab-network.js';
import { describeLab } from '../support/lab.js';

jest.setTimeout(60_000);

const namespaces = (): string[] =>
  execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })
    .split('\n')
    .map((line) => line.trim().split(/\s+/)[0] ?? '')
    .filter(Boolean);
const interfaces = (): string[] => execFileSync('ip', ['-o', 'link', 'show'], { encoding: 'utf8' }).split('\n').map((line) => line.split(':')[1]?.trim().split('@')[0] ?? '');

function httpText(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    get(url, { timeout: 2000 }, (response) => {
      let body = '';
      response.on('data', (chunk: Buffer) => (body += chunk.toString()));
      response.on('end', () => resolve(body));
    }).on('error', reject);
  });
}

/** A child process that makes a lab and prints its id and host interface, then waits to be told what to do. */
function labOwner(): { child: ReturnType<typeof spawn>; lab: Promise<{ id: string; hostInterface: string }> } {
  const script = `
    import { LabNetwork } from ${JSON.stringify(`${process.cwd()}/dist/src/demo/lab-network.js`)};
    const lab = await LabNetwork.create(['one', 'two']);
    console.log(JSON.stringify({ id: lab.id, hostInterface: lab.hostInterface }));
    process.stdin.on('data', (d) => { if (String(d).startsWith('exit')) process.exit(0); });
  `;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lab = new Promise<{ id: string; hostInterface: string }>((resolve, reject) => {
    child.stdout?.once('data', (data: Buffer) => resolve(JSON.parse(data.toString()) as { id: string; hostInterface: string }));
    child.once('exit', (code) => reject(new Error(`the lab owner exited (${code}) before making its lab`)));
  });
  return { child, lab };
}

describeLab('lab network namespaces', () => {
  it('gives each host its own address, reachable from here and from the other hosts, and removes everything on destroy', async () => {
    const first = await LabNetwork.create(['alpha', 'beta']);
    const second = await LabNetwork.create(['gamma']);
    try {
      // Two labs at once (parallel test workers) never share a subnet.
      expect(first.subnet).not.toBe(second.subnet);
      const alpha = first.host('alpha');
      const beta = first.host('beta');
      expect(alpha.address).not.toBe(beta.address);
      expect(namespaces()).toEqual(expect.arrayContaining([alpha.netns, beta.netns, `${first.id}-bridge`, second.host('gamma').netns]));
      const server = first.spawn('alpha', process.execPath, ['-e', `require('http').createServer((q, s) => s.end('alpha answers')).listen(8080, '${alpha.address}', () => console.log('up'))`], { stdio: ['ignore', 'pipe', 'inherit'] });
      await new Promise((resolve) => server.stdout?.once('data', resolve));
      expect(await httpText(`http://${alpha.address}:8080/`)).toBe('alpha answers');
      const fromBeta = execFileSync('ip', ['netns', 'exec', beta.netns, process.execPath, '-e', `require('http').get('http://${alpha.address}:8080/', (r) => r.pipe(process.stdout))`], { encoding: 'utf8' });
      expect(fromBeta).toBe('alpha answers');
      // The process runs inside alpha's namespace: its pid is what `ip netns pids` lists.
      expect(execFileSync('ip', ['netns', 'pids', alpha.netns], { encoding: 'utf8' }).trim().split('\n')).toContain(String(server.pid));
      const exited = new Promise((resolve) => server.once('exit', resolve));
      await first.destroy();
      await exited;
      expect(namespaces().filter((n) => n.startsWith(`${first.id}-`))).toEqual([]);
      expect(interfaces()).not.toContain(first.hostInterface);
    } finally {
      await first.destroy();
      await second.destroy();
    }
    expect(namespaces().filter((n) => n.startsWith(`${second.id}-`))).toEqual([]);
  });

  it('is removed when the process that made it exits', async () => {
    const { child, lab } = labOwner();
    const { id } = await lab;
    expect(namespaces().filter((n) => n.startsWith(`${id}-`))).toHaveLength(3);
    child.stdin?.write('exit\n');
    await new Promise((resolve) => child.once('exit', resolve));
    expect(namespaces().filter((n) => n.startsWith(`${id}-`))).toEqual([]);
  });

  it('removes what a SIGKILLed owner left behind when the next lab is made', async () => {
    const { child, lab } = labOwner();
    const { id, hostInterface } = await lab;
    child.kill('SIGKILL');
    await new Promise((resolve) => child.once('exit', resolve));
    expect(namespaces().filter((n) => n.startsWith(`${id}-`))).toHaveLength(3);
    // (A lab made meanwhile by a parallel test file may have removed them first: either way they go.)
    const removed = await LabNetwork.removeLeftovers();
    expect(removed.every((n) => !namespaces().includes(n))).toBe(true);
    expect(namespaces().filter((n) => n.startsWith(`${id}-`))).toEqual([]);
    expect(interfaces()).not.toContain(hostInterface);
  });
});
