/**
 * What a connection's stream registry costs the garbage collector: the access pattern of one
 * long-lived HTTP/2 connection (256 streams open, one insert and one delete per request, each
 * stream holding a few KiB of request objects), kept in a `Map` and in `StreamTable`. Each run is
 * a child process with the gateway's V8 flags, timing its own scavenges and mark-compacts.
 *
 *   npm run bench:streams
 *   REQUESTS=3000000 npm run bench:streams
 */
import { spawnSync } from 'node:child_process';
import { PerformanceObserver, constants } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { SERVER_NODE_FLAGS } from '../src/core/node-flags.js';
import { StreamTable } from '../src/http2/index.js';

const REQUESTS = Number(process.env.REQUESTS ?? 1_000_000);
const OPEN = 256;

interface Registry<V> {
  set(id: number, value: V): unknown;
  delete(id: number): boolean;
}

/** Roughly what one proxied request keeps while open: a few objects, a header list, a buffer. */
function requestObjects(id: number): object {
  const headers: string[] = [];
  for (let i = 0; i < 24; i++) headers.push(`x-header-${i}`, `value-${id}-${i}`);
  return { id, headers, state: { sent: 0, received: 0 }, chunks: [Buffer.allocUnsafe(64)], listeners: Array.from({ length: 16 }, (_, i) => () => i + id) };
}

async function child(kind: 'map' | 'table'): Promise<void> {
  const gc = { minorMs: 0, minor: 0, majorMs: 0, major: 0 };
  const observer = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      const detail = (entry as unknown as { detail?: { kind?: number } }).detail;
      if (detail?.kind === constants.NODE_PERFORMANCE_GC_MINOR) {
        gc.minor += 1;
        gc.minorMs += entry.duration;
      } else if (detail?.kind === constants.NODE_PERFORMANCE_GC_MAJOR) {
        gc.major += 1;
        gc.majorMs += entry.duration;
      }
    }
  });
  observer.observe({ entryTypes: ['gc'] });
  const registry: Registry<object> = kind === 'map' ? new Map<number, object>() : new StreamTable<object>();
  const open: number[] = [];
  let nextId = 1;
  const started = performance.now();
  for (let n = 0; n < REQUESTS; n++) {
    const id = nextId;
    nextId += 2;
    registry.set(id, requestObjects(id));
    open.push(id);
    if (open.length > OPEN) registry.delete(open.shift() as number);
    // Yield now and then, as a server does: GC entries reach the observer from the event loop.
    if (n % 10_000 === 0) await new Promise((resolve) => setImmediate(resolve));
  }
  const elapsed = performance.now() - started;
  await new Promise((resolve) => setTimeout(resolve, 100));
  observer.disconnect();
  process.stdout.write(JSON.stringify({ kind, elapsed, ...gc }));
}

function main(): void {
  console.log(`# fedgate bench:streams — node ${process.version}, flags ${SERVER_NODE_FLAGS.join(' ')}; ${REQUESTS.toLocaleString('en')} requests, ${OPEN} streams open`);
  console.log('');
  console.log('| registry | total ms | µs/request | scavenges | scavenge ms (mean) | mark-compacts | mark-compact ms (total) |');
  console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: |');
  const self = fileURLToPath(import.meta.url);
  for (const kind of ['map', 'table'] as const) {
    const result = spawnSync(process.execPath, [...SERVER_NODE_FLAGS, self, 'child', kind], { env: process.env, encoding: 'utf8', timeout: 600_000 });
    if (result.status !== 0) throw new Error(`bench child (${kind}) failed: ${result.stderr || result.error?.message}`);
    const r = JSON.parse(result.stdout) as { kind: string; elapsed: number; minor: number; minorMs: number; major: number; majorMs: number };
    const name = kind === 'map' ? '`Map`' : '`StreamTable`';
    console.log(`| ${name} | ${r.elapsed.toFixed(0)} | ${((r.elapsed / REQUESTS) * 1000).toFixed(2)} | ${r.minor} | ${(r.minorMs / Math.max(1, r.minor)).toFixed(2)} | ${r.major} | ${r.majorMs.toFixed(0)} |`);
  }
}

if (process.argv[2] === 'child') await child(process.argv[3] === 'map' ? 'map' : 'table');
else main();
