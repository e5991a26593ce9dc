/**
 * The embedded store against real processes and a real kernel: a writer SIGKILLed at random
 * points, a second controller process on the same data dir, and a disk that fills up or turns
 * read-only (a tiny tmpfs in a private mount namespace, so nothing leaks into the host's mounts).
 * The child processes run the built code (`npm test` builds first).
 */
import { jest } from '@jest/globals';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connectAdmin, readAdminCredentials } from '../../src/cli/controller-api.js';
import { createRootLogger } from '../../src/core/logger.js';
import type { Change } from '../../src/model/catalog.js';
import { JournalStore } from '../../src/store/journal/journal-store.js';
import { eventually, exportSpec, joinSimulatedGateway, writeFederationYaml } from '../support/control-plane.js';
import { freePorts } from '../support/ports.js';
import { FedgateProcess, runFedgate, waitForHttp } from '../support/processes.js';

const CHILD = join(process.cwd(), 'test', 'support', 'journal-store-child.mjs');

// Several real processes per test, each started, killed and restarted: generous on a busy machine.
jest.setTimeout(120_000);

interface Child {
  process: ChildProcess;
  lines: string[];
  exited: Promise<number | null>;
  stderr: () => string;
  /** Resolves once `count` lines were printed (or the child exits first). */
  lineCount: (count: number) => Promise<void>;
}

function startChild(command: string, args: string[]): Child {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NODE_OPTIONS: '' } });
  const lines: string[] = [];
  const waiters: Array<{ count: number; resolve: () => void }> = [];
  let stderr = '';
  let partial = '';
  const check = (): void => {
    for (const waiter of [...waiters]) {
      if (lines.length >= waiter.count) {
        waiters.splice(waiters.indexOf(waiter), 1);
        waiter.resolve();
      }
    }
  };
  child.stdout?.on('data', (chunk: Buffer) => {
    partial += chunk.toString('utf8');
    const parts = partial.split('\n');
    partial = parts.pop() ?? '';
    lines.push(...parts);
    check();
  });
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  void exited.then(() => {
    for (const waiter of waiters.splice(0)) waiter.resolve();
  });
  return {
    process: child,
    lines,
    exited,
    stderr: () => stderr,
    lineCount: (count) => new Promise<void>((resolve) => {
      waiters.push({ count, resolve });
      check();
    }),
  };
}

async function ready(child: Child): Promise<void> {
  await child.lineCount(1);
  if (child.lines[0] !== 'ready') throw new Error(`child did not start: ${child.lines.join('\n')}\n${child.stderr()}`);
}

const dirs: string[] = [];
const children: Child[] = [];
afterAll(() => {
  for (const child of children) if (child.process.exitCode === null && child.process.signalCode === null) child.process.kill('SIGKILL');
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

function tempDir(name: string): string {
  const dir = mkdtempSync(join(tmpdir(), `fedgate-${name}-`));
  dirs.push(dir);
  return dir;
}

describe('JournalStore under SIGKILL', () => {
  it('keeps every acknowledged write and a gap-free revision sequence across kills at random points', async () => {
    const dir = tempDir('journal-crash');
    const logLines: string[] = [];
    const log = createRootLogger({ level: 'info', destination: { write: (line: string) => void logLines.push(line) } });
    const acked = { exports: new Map<string, number>(), policies: new Map<string, number>(), fences: [] as number[], tokens: [] as string[] };
    let epoch: string | undefined;
    const rounds = 5;
    for (let round = 1; round <= rounds; round++) {
      // Compacting every 8 KiB: many kills land inside a compaction, between its two renames.
      const child = startChild(process.execPath, [CHILD, 'writer', dir, '8192', String(round)]);
      children.push(child);
      await ready(child);
      // The kill point: after a random number of acknowledged writes.
      await child.lineCount(1 + 20 + Math.floor(Math.random() * 400));
      child.process.kill('SIGKILL');
      await child.exited;
      expect(child.process.signalCode).toBe('SIGKILL');
      for (const line of child.lines.slice(1)) {
        const ack = JSON.parse(line) as { op: string; key?: string; rev?: number; token?: number; hash?: string };
        if (ack.op === 'export') acked.exports.set(ack.key as string, ack.rev as number);
        if (ack.op === 'policy') acked.policies.set(ack.key as string, ack.rev as number);
        if (ack.op === 'fence') acked.fences.push(ack.token as number);
        if (ack.op === 'token') acked.tokens.push(ack.hash as string);
      }

      const store = new JournalStore({ dataDir: dir, log });
      await store.open();
      epoch ??= await store.epoch();
      expect(await store.epoch()).toBe(epoch);
      const revision = await store.revision();
      const changes = (await store.changesSince(0)) as Change[];
      // Gap-free: every revision from 1 to the current one is in the log, in order.
      expect([...new Set(changes.map((c) => c.revision))]).toEqual(Array.from({ length: revision }, (_, i) => i + 1));
      const exports = new Map((await store.listExports('c')).map((e) => [`${e.namespace}/${e.name}`, e]));
      const revisionOf = new Map(changes.filter((c) => c.type === 'export').map((c) => [c.key.slice(c.key.indexOf('/') + 1), c.revision]));
      for (const [key, rev] of acked.exports) {
        expect(exports.has(key)).toBe(true);
        expect(revisionOf.get(key)).toBe(rev);
      }
      const policies = new Map((await store.listPolicies()).map((p) => [p.key, p.revision]));
      for (const [key, rev] of acked.policies) expect(policies.get(key)).toBe(rev);
      for (const hash of acked.tokens) expect((await store.consumeToken(hash, Date.now(), 'not-c')).status).toBe('wrong-cluster');
      // Fencing tokens were handed out once each and keep increasing after the restart.
      expect(new Set(acked.fences).size).toBe(acked.fences.length);
      expect(await store.acquireLock(`after-round-${round}`, 'verifier', 1000)).toBeGreaterThan(Math.max(0, ...acked.fences));
      await store.close();
      // No temp file of a compaction cut short, no lock: the journal, and the snapshot once one was made.
      expect(readdirSync(dir).filter((name) => name !== 'store.snapshot')).toEqual(['store.journal']);
    }
    expect(acked.exports.size).toBeGreaterThan(rounds * 10);
    // A cut-off torn tail, if a kill produced one, is reported in one line per start.
    const torn = logLines.filter((line) => line.includes('torn record'));
    expect(torn.length).toBeLessThanOrEqual(rounds);
  });
});

describe('JournalStore data dir lock', () => {
  it('refuses a data dir a live controller holds, naming its pid, and takes over the lock of a killed one', async () => {
    const dir = tempDir('journal-lock');
    const holder = startChild(process.execPath, [CHILD, 'hold', dir]);
    children.push(holder);
    await ready(holder);
    const second = new JournalStore({ dataDir: dir });
    await expect(second.open()).rejects.toMatchObject({
      code: 'FEDGATE_ERR_STORE_UNAVAILABLE',
      message: expect.stringContaining(`data dir ${dir} is in use by controller pid ${holder.process.pid}; the embedded store allows one replica — use Redis for several`),
    });
    holder.process.kill('SIGKILL');
    await holder.exited;
    // The lock file is still there, its owner is gone: taken over.
    expect(readdirSync(dir)).toContain('controller.lock');
    const third = new JournalStore({ dataDir: dir });
    await third.open();
    expect(await third.revision()).toBe(0);
    // And a second store in this very process is refused too.
    await expect(new JournalStore({ dataDir: dir }).open()).rejects.toThrow(`is in use by controller pid ${process.pid} (this process)`);
    await third.close();
    expect(readdirSync(dir)).not.toContain('controller.lock');
  });
});

describe('JournalStore on a full or read-only disk', () => {
  it('refuses what it cannot persist with one clear error, keeps serving reads, leaves no temp files, and recovers when space returns', async () => {
    const mountPoint = tempDir('journal-disk');
    const namespace = process.getuid?.() === 0 ? ['--mount', '--propagation', 'private'] : ['--user', '--map-root-user', '--mount', '--propagation', 'private'];
    const child = startChild('unshare', [...namespace, 'sh', '-c', 'mount -t tmpfs -o size=256k tmpfs "$1" && exec "$2" "$3" disk "$1"', 'sh', mountPoint, process.execPath, CHILD]);
    children.push(child);
    const code = await child.exited;
    expect({ code, stderr: child.stderr() }).toEqual({ code: 0, stderr: '' });
    const report = JSON.parse(child.lines[child.lines.length - 1] as string);
    const journal = join(mountPoint, 'data', 'store.journal');

    // The write that did not fit: refused, naming the journal and the errno; nothing of it visible.
    expect(report.full.acked).toBeGreaterThan(10);
    expect(report.full.failure).toEqual({ ok: false, code: 'FEDGATE_ERR_STORE_UNAVAILABLE', message: `embedded store: cannot write the journal ${journal}: ENOSPC (no space left on device)` });
    expect(report.full.revisionAfter).toBe(report.full.lastRevision);
    expect(report.full.exportsAfter).toBe(report.full.acked);
    expect(report.full.ping).toMatchObject({ ok: false, code: 'FEDGATE_ERR_STORE_UNAVAILABLE' });
    expect(report.full.temporaries).toEqual([]);
    expect(report.full.errorLines).toEqual(['embedded store cannot persist writes; refusing them (reads go on) until the disk takes writes again']);
    // A compaction on the full disk fails the same way, and leaves nothing behind either.
    const snapshotFailure = `embedded store: cannot write the snapshot ${join(mountPoint, 'data', 'store.snapshot')}: ENOSPC (no space left on device)`;
    expect(report.full.compaction).toEqual({ ok: false, code: 'FEDGATE_ERR_STORE_UNAVAILABLE', message: snapshotFailure });
    expect(report.full.failedCompactions).toEqual([snapshotFailure]);

    // Space given back: the store says so and takes writes again; a restart finds every acknowledged one.
    expect(report.freed.ping).toEqual({ ok: true });
    expect(report.freed.write).toEqual({ ok: true, value: report.full.lastRevision + 1 });
    expect(report.reopened).toEqual({ revision: report.full.lastRevision + 1, exports: report.full.acked + 1, temporaries: [] });

    // A start on a full disk: one error naming the file and ENOSPC, no lock or temp file left.
    expect(report.startFull.open).toMatchObject({ ok: false, code: 'FEDGATE_ERR_STORE_UNAVAILABLE', message: expect.stringMatching(/^embedded store: cannot .* .*: ENOSPC \(no space left on device\)$/) });
    expect(report.startFull.openFresh).toMatchObject({ ok: false, code: 'FEDGATE_ERR_STORE_UNAVAILABLE', message: expect.stringContaining('ENOSPC') });
    expect(report.startFull.temporaries).toEqual([]);
    expect(report.startFull.lockLeft).toBe(false);

    // Read-only: a start says why, naming the file.
    const view = join(mountPoint, 'read-only');
    expect(report.readOnly.open).toEqual({ ok: false, code: 'FEDGATE_ERR_STORE_UNAVAILABLE', message: `embedded store: cannot create the lock file ${join(view, 'controller.lock')}: EROFS (read-only file system)` });
    expect(report.readOnly.openMissing).toEqual({ ok: false, code: 'FEDGATE_ERR_STORE_UNAVAILABLE', message: `embedded store: cannot create the data dir ${join(view, 'missing')}: EROFS (read-only file system)` });
  });
});

describe('fedgate controller on its default (embedded) store', () => {
  it('comes back from SIGKILL with every cluster, export, policy, revision and audit entry, and refuses a second controller on its data dir in one line', async () => {
    const dir = tempDir('journal-controller');
    const [api, joinPort, admin] = (await freePorts(3)) as [number, number, number];
    const config = writeFederationYaml({ dir, name: 'federation', pkiDir: join(dir, 'controller-pki'), ports: { api, join: joinPort, admin }, store: {} });
    const processes: FedgateProcess[] = [];
    const connections: Array<{ close(): void }> = [];
    const start = async (): Promise<FedgateProcess> => {
      const controller = FedgateProcess.start('controller', ['controller', '--config', config]);
      processes.push(controller);
      await waitForHttp(`http://127.0.0.1:${admin}/readyz`, 200, 20_000, controller);
      return controller;
    };
    const connect = () => {
      const connection = connectAdmin(`127.0.0.1:${api}`, readAdminCredentials(join(dir, 'controller-pki', 'admin')));
      connections.push(connection);
      return connection;
    };
    const policy = { key: '', kind: '', namespace: '', name: '', json: JSON.stringify({ apiVersion: 'fedgate.io/v1alpha1', kind: 'TrafficPolicy', metadata: { name: 'payments', namespace: 'default' }, spec: { timeout: '2s' } }), revision: 0 };
    const gateways: Array<{ stop(): void }> = [];
    try {
      const first = await start();
      const east = await joinSimulatedGateway(connect(), dir, 'us-east', { apiAddresses: [`127.0.0.1:${api}`], exports: [exportSpec('payments')] });
      gateways.push(east);
      const west = await joinSimulatedGateway(connect(), dir, 'us-west', { apiAddresses: [`127.0.0.1:${api}`] });
      gateways.push(west);
      await connect().call.putPolicies({ policies: [policy], sources: ['payments.yaml'] });
      await eventually(() => west.catalog.data.services.has('default/payments') && west.catalog.data.policies.has('TrafficPolicy/default/payments'), 'us-west holds the export and the policy');
      const before = await connect().call.status({});
      expect(before.clusters.map((c) => c.info?.name)).toEqual(['us-east', 'us-west']);

      // A second controller on the same data dir (other ports): one line, exit 1.
      const [api2, join2, admin2] = (await freePorts(3)) as [number, number, number];
      const secondConfig = writeFederationYaml({ dir, name: 'second', pkiDir: join(dir, 'controller-pki'), ports: { api: api2, join: join2, admin: admin2 }, store: {} });
      const second = await runFedgate(['controller', '--config', secondConfig]);
      expect(second.code).toBe(1);
      expect(second.stderr.trim()).toBe(
        `fedgate: data dir ${join(dir, 'state', 'controller')} is in use by controller pid ${first.pid}; the embedded store allows one replica — use Redis for several (lock file ${join(dir, 'state', 'controller', 'controller.lock')}) (FEDGATE_ERR_STORE_UNAVAILABLE)`,
      );

      await first.kill('SIGKILL');
      for (const gateway of gateways.splice(0)) gateway.stop();
      for (const connection of connections.splice(0)) connection.close();
      await start();
      const after = await connect().call.status({});
      expect(after.epoch).toBe(before.epoch);
      expect(after.revision).toBe(before.revision);
      expect(after.policyRevision).toBe(before.policyRevision);
      expect(after.clusters.map((c) => [c.info?.name, c.info?.trustDomain])).toEqual(before.clusters.map((c) => [c.info?.name, c.info?.trustDomain]));
      expect(after.services).toEqual(before.services);
      expect(after.services.map((s) => [s.namespace, s.name, s.clusters])).toEqual([['default', 'payments', ['us-east']]]);
      expect(after.audit).toEqual(before.audit);
      const policies = await connect().call.listPolicies({});
      expect(policies.policies.map((p) => p.key)).toEqual(['TrafficPolicy/default/payments']);
    } finally {
      for (const gateway of gateways) gateway.stop();
      for (const connection of connections) connection.close();
      await Promise.all(processes.map((p) => p.stop()));
    }
  });
});
