/**
 * The embedded store (JournalStore): what a durable write costs, one writer at a time and 32 at
 * once (group commit), against the raw fdatasync of the same disk and against MemoryStore; and how
 * long a controller start takes with 10,000 exports in the store.
 *
 *   npm run bench:store
 *   WRITES=2000 EXPORTS=10000 DIR=/var/lib/fedgate-bench npm run bench:store
 */
import { mkdtempSync, openSync, closeSync, fdatasyncSync, rmSync, statSync, writeSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ExportRecord } from '../src/model/catalog.js';
import { JOURNAL_FILE, JournalStore, SNAPSHOT_FILE } from '../src/store/journal/journal-store.js';
import { MemoryStore } from '../src/store/memory-store.js';
import type { Store } from '../src/store/store.js';

const WRITES = Number(process.env.WRITES ?? 1000);
const EXPORTS = Number(process.env.EXPORTS ?? 10_000);
const CLUSTERS = 10;
const CONCURRENCY = 32;
const ROOT = process.env.DIR ?? tmpdir();

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] as number;
}

function exportRecord(cluster: string, name: string, ready = 2): ExportRecord {
  return { cluster, namespace: 'default', name, ports: [{ name: 'http', port: 8080, protocol: 'http' }], readyEndpoints: ready, totalEndpoints: 3, consumers: [], createdAt: 1_700_000_000_000 };
}

function clusterRecord(name: string) {
  return { name, region: `${name}-region`, zone: `${name}-zone`, trustDomain: `${name}.acme.internal`, gatewayAddresses: ['10.0.0.1:15443'], labels: {}, state: 'active' as const, stateReason: 'joined', stateChangedBy: 'bench', stateChangedAt: 1, joinedAt: 1 };
}

async function seeded(store: Store): Promise<void> {
  await store.open();
  await store.createCluster(clusterRecord('a'), { trustDomain: 'a.acme.internal', sequence: 1, spiffeJson: '{}' });
}

/** `writers` loops writing one export change each until `total` writes are done; latency per write. */
async function measureWrites(store: Store, writers: number, total: number): Promise<{ perSecond: number; latencies: number[] }> {
  let next = 0;
  const latencies: number[] = [];
  const started = performance.now();
  await Promise.all(
    Array.from({ length: writers }, async () => {
      while (next < total) {
        const n = next++;
        const t0 = performance.now();
        await store.writeExports('a', { upserts: [exportRecord('a', `svc-${n % 500}`, n)], deletes: [], replace: false });
        latencies.push(performance.now() - t0);
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  return { perSecond: total / seconds, latencies: latencies.sort((x, y) => x - y) };
}

function rawFdatasync(dir: string, count: number): number[] {
  const fd = openSync(join(dir, 'fsync-probe'), 'w');
  const line = Buffer.alloc(300, 'x');
  const out: number[] = [];
  try {
    for (let i = 0; i < count; i++) {
      const t0 = performance.now();
      writeSync(fd, line);
      fdatasyncSync(fd);
      out.push(performance.now() - t0);
    }
  } finally {
    closeSync(fd);
  }
  return out.sort((x, y) => x - y);
}

async function startTime(dir: string): Promise<{ ms: number; revision: number; exports: number }> {
  const t0 = performance.now();
  const store = new JournalStore({ dataDir: dir, compactAfterBytes: 1 << 30 });
  await store.open();
  const ms = performance.now() - t0;
  const result = { ms, revision: await store.revision(), exports: (await store.listExports()).length };
  await store.close();
  return result;
}

const row = (name: string, perSecond: number, latencies: number[]): string =>
  `| ${name} | ${Math.round(perSecond).toLocaleString('en-US')} | ${percentile(latencies, 50).toFixed(2)} | ${percentile(latencies, 99).toFixed(2)} |`;

async function main(): Promise<void> {
  const dir = mkdtempSync(join(ROOT, 'fedgate-bench-store-'));
  try {
    console.log(`data dir under ${ROOT}; ${WRITES} writes per run (one export change each); load average at start ${loadavg()[0]?.toFixed(1)}`);
    const fsync = rawFdatasync(dir, 200);
    console.log(`raw write + fdatasync of 300 bytes on this disk: p50 ${percentile(fsync, 50).toFixed(2)} ms, p99 ${percentile(fsync, 99).toFixed(2)} ms`);
    console.log('');
    console.log('| store, writers | writes/s | p50 ms | p99 ms |');
    console.log('| --- | ---: | ---: | ---: |');
    for (const writers of [1, CONCURRENCY]) {
      const memory = new MemoryStore();
      await seeded(memory);
      const m = await measureWrites(memory, writers, WRITES);
      console.log(row(`MemoryStore (no disk), ${writers}`, m.perSecond, m.latencies));
      const journalDir = join(dir, `writes-${writers}`);
      const journal = new JournalStore({ dataDir: journalDir });
      await seeded(journal);
      const j = await measureWrites(journal, writers, WRITES);
      await journal.close();
      console.log(row(`JournalStore, ${writers}`, j.perSecond, j.latencies));
    }

    // A federation of 10 clusters × EXPORTS/10 exports, each export then updated twice (the change
    // log holds all three writes of each: 3 × EXPORTS changes).
    const big = join(dir, 'startup');
    const store = new JournalStore({ dataDir: big, compactAfterBytes: 1 << 30 });
    await store.open();
    for (let c = 0; c < CLUSTERS; c++) {
      const name = `cluster-${c}`;
      await store.createCluster(clusterRecord(name), { trustDomain: `${name}.acme.internal`, sequence: 1, spiffeJson: '{}' });
      const all = Array.from({ length: EXPORTS / CLUSTERS }, (_, i) => exportRecord(name, `svc-${i}`));
      await store.writeExports(name, { upserts: all, deletes: [], replace: true });
    }
    for (let round = 1; round <= 2; round++) {
      for (let c = 0; c < CLUSTERS; c++) {
        const name = `cluster-${c}`;
        for (let i = 0; i < EXPORTS / CLUSTERS; i += 100) {
          const batch = Array.from({ length: 100 }, (_, k) => exportRecord(name, `svc-${i + k}`, 2 + round));
          await store.writeExports(name, { upserts: batch, deletes: [], replace: false });
        }
      }
    }
    await store.close();
    const journalOnly = statSync(join(big, JOURNAL_FILE)).size;
    const fromJournal = await startTime(big);
    // Compaction while one writer goes on: how long the snapshot takes, and what writes wait.
    const compacting = new JournalStore({ dataDir: big, compactAfterBytes: 1 << 30 });
    await compacting.open();
    const t0 = performance.now();
    let compacted = false;
    const compaction = compacting.compact().finally(() => (compacted = true));
    const during: number[] = [];
    for (let n = 0; !compacted; n++) {
      const w0 = performance.now();
      await compacting.writeExports('cluster-0', { upserts: [exportRecord('cluster-0', `svc-${n % 1000}`, 100 + n)], deletes: [], replace: false });
      during.push(performance.now() - w0);
    }
    await compaction;
    const compactMs = performance.now() - t0;
    during.sort((x, y) => x - y);
    await compacting.close();
    const snapshotBytes = statSync(join(big, SNAPSHOT_FILE)).size;
    const fromSnapshot = await startTime(big);
    console.log('');
    console.log(`start-up with ${fromJournal.exports.toLocaleString('en-US')} exports in ${CLUSTERS} clusters, revision ${fromJournal.revision}, change log of ${(3 * EXPORTS).toLocaleString('en-US')} changes:`);
    console.log(`| read from | file size | open() ms |`);
    console.log(`| --- | ---: | ---: |`);
    console.log(`| journal only (never compacted) | ${(journalOnly / 1048576).toFixed(1)} MiB | ${fromJournal.ms.toFixed(0)} |`);
    console.log(`| snapshot (after compaction) | ${(snapshotBytes / 1048576).toFixed(1)} MiB | ${fromSnapshot.ms.toFixed(0)} |`);
    console.log(`compaction (writing that snapshot, then the journal swap): ${compactMs.toFixed(0)} ms; meanwhile ${during.length} writes by one writer, p50 ${percentile(during, 50).toFixed(2)} ms, max ${(during[during.length - 1] ?? 0).toFixed(2)} ms`);
    console.log(`load average at the end: ${loadavg()[0]?.toFixed(1)}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
