/**
 * A child process for test/integration/journal-store-crash.test.ts, running the built JournalStore
 * (dist/, as the controller runs it):
 *
 *   node journal-store-child.mjs writer DIR COMPACT_AFTER_BYTES ROUND   writes until killed; one JSON line per acknowledged write
 *   node journal-store-child.mjs hold DIR                              opens the store, prints "ready", waits
 *   node journal-store-child.mjs disk DIR                              the full / read-only disk scenario (DIR: a small tmpfs this process may mount on); prints a JSON report
 *
 * Lines go out with writeSync, so a line is on the pipe before the next write starts: a SIGKILL can
 * lose the acknowledgement of a write, never announce one that was not made.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(fileURLToPath(new URL('.', import.meta.url)), '..', '..');
const { JournalStore } = await import(join(root, 'dist', 'src', 'store', 'journal', 'journal-store.js'));
const { createRootLogger } = await import(join(root, 'dist', 'src', 'core', 'logger.js'));

const [mode, dir, ...rest] = process.argv.slice(2);

function emit(value) {
  writeSync(1, `${typeof value === 'string' ? value : JSON.stringify(value)}\n`);
}

function cluster(name) {
  return { name, region: 'r', zone: 'z', trustDomain: `${name}.test`, gatewayAddresses: ['127.0.0.1:15443'], labels: {}, state: 'active', stateReason: '', stateChangedBy: 't', stateChangedAt: 1, joinedAt: 1 };
}

function exportRecord(name, padding = 0) {
  return { cluster: 'c', namespace: 'default', name, ports: [{ name: 'http', port: 8080, protocol: 'http' }], readyEndpoints: 1, totalEndpoints: 1, consumers: padding ? ['x'.repeat(padding)] : [], createdAt: 1 };
}

async function ensureCluster(store) {
  if (!(await store.getCluster('c'))) await store.createCluster(cluster('c'), { trustDomain: 'c.test', sequence: 1, spiffeJson: '{}' });
}

async function writer() {
  const [compactAfterBytes, round] = rest;
  const store = new JournalStore({ dataDir: dir, compactAfterBytes: Number(compactAfterBytes) });
  await store.open();
  await ensureCluster(store);
  emit('ready');
  const worker = async (w) => {
    for (let n = 0; ; n++) {
      const id = `r${round}-w${w}-${n}`;
      if (n % 7 === 3) {
        const token = await store.acquireLock(`lock-${id}`, id, 60_000);
        emit({ op: 'fence', token });
      } else if (n % 5 === 2) {
        const rev = await store.putPolicies([{ key: `TrafficPolicy/default/${id}`, kind: 'TrafficPolicy', namespace: 'default', name: id, document: { spec: { n } } }]);
        emit({ op: 'policy', key: `TrafficPolicy/default/${id}`, rev });
      } else if (n % 11 === 6) {
        await store.putToken(`hash-${id}`, { cluster: 'c', expiresAt: Date.now() + 3_600_000, createdBy: 'test', createdAt: Date.now() }, 7_200_000);
        emit({ op: 'token', hash: `hash-${id}` });
      } else {
        const rev = await store.writeExports('c', { upserts: [exportRecord(id)], deletes: [], replace: false });
        emit({ op: 'export', key: `default/${id}`, rev });
      }
    }
  };
  await Promise.all(Array.from({ length: 8 }, (_, w) => worker(w)));
}

async function hold() {
  const store = new JournalStore({ dataDir: dir });
  await store.open();
  emit('ready');
  setInterval(() => undefined, 60_000);
}

function temporaries(path) {
  return existsSync(path) ? readdirSync(path).filter((name) => name.endsWith('.tmp') || name.includes('.stale-')) : [];
}

async function attempt(promise) {
  try {
    return { ok: true, value: await promise };
  } catch (error) {
    return { ok: false, code: error.code, message: error.message };
  }
}

/** DIR is a tmpfs of a few hundred KiB that this process may remount. */
async function disk() {
  const data = join(dir, 'data');
  const filler = join(dir, 'filler');
  const report = {};
  // Space to give back later, to see the store recover.
  writeFileSync(filler, Buffer.alloc(64 * 1024));

  const logLines = [];
  const log = createRootLogger({ level: 'info', destination: { write: (line) => logLines.push(JSON.parse(line)) } });
  // No compaction on its own: a snapshot's temp file coming and going would change what is free.
  const store = new JournalStore({ dataDir: data, compactAfterBytes: 1 << 30, log });
  await store.open();
  await ensureCluster(store);
  let acked = 0;
  let lastRevision = await store.revision();
  let failure;
  for (let n = 0; n < 10_000 && !failure; n++) {
    const result = await attempt(store.writeExports('c', { upserts: [exportRecord(`svc-${n}`, 900)], deletes: [], replace: false }));
    if (result.ok) {
      acked++;
      lastRevision = result.value;
    } else failure = result;
  }
  report.full = {
    acked,
    failure,
    revisionAfter: await store.revision(),
    lastRevision,
    exportsAfter: (await store.listExports('c')).length,
    compaction: await attempt(store.compact()),
    ping: await attempt(store.ping()),
    temporaries: temporaries(data),
    compactions: logLines.filter((line) => line.msg.startsWith('journal compacted')).length,
    failedCompactions: logLines.filter((line) => line.msg.startsWith('journal compaction failed')).map((line) => line.err),
    errorLines: logLines.filter((line) => line.level === 'error').map((line) => line.msg),
  };

  rmSync(filler);
  report.freed = { ping: await attempt(store.ping()), write: await attempt(store.writeExports('c', { upserts: [exportRecord('after-free')], deletes: [], replace: false })) };
  await store.close();
  const reopened = new JournalStore({ dataDir: data });
  await reopened.open();
  report.reopened = { revision: await reopened.revision(), exports: (await reopened.listExports('c')).length, temporaries: temporaries(data) };
  await reopened.close();

  // A start on a full disk: not even the lock file fits.
  try {
    for (let i = 0; ; i++) writeFileSync(join(dir, `fill-${i}`), Buffer.alloc(16 * 1024));
  } catch {
    // Full.
  }
  try {
    for (let i = 0; ; i++) writeFileSync(join(dir, `fill-small-${i}`), Buffer.alloc(512));
  } catch {
    // Full to the last block.
  }
  const fresh = join(dir, 'fresh');
  report.startFull = { open: await attempt(new JournalStore({ dataDir: data }).open()), openFresh: await attempt(new JournalStore({ dataDir: fresh }).open()), temporaries: [...temporaries(data), ...temporaries(fresh)], lockLeft: existsSync(join(data, 'controller.lock')) || existsSync(join(fresh, 'controller.lock')) };

  // Read-only: a start on a read-only view of the data dir (a read-only bind mount).
  for (const name of readdirSync(dir)) if (name.startsWith('fill')) rmSync(join(dir, name));
  const view = join(dir, 'read-only');
  mkdirSync(view);
  execFileSync('mount', ['--bind', data, view]);
  execFileSync('mount', ['-o', 'remount,bind,ro', view]);
  report.readOnly = {
    open: await attempt(new JournalStore({ dataDir: view }).open()),
    openMissing: await attempt(new JournalStore({ dataDir: join(view, 'missing') }).open()),
  };
  emit(report);
  process.exit(0);
}

await { writer, hold, disk }[mode]();
