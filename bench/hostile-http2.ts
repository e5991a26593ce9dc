/**
 * fedgate's HTTP/2 server role under hostile clients while legitimate requests flow (issue 28):
 * slow readers (large windows, a large body, the socket never read), SETTINGS floods (2,730-entry
 * frames, and many small ones), rapid resets, PING floods without reading, and idle connections.
 * Three processes: the server (with the gateways' V8 flags), the attackers, and this one, which
 * sends the legitimate requests from Node's HTTP/2 client at a fixed rate and measures them.
 *
 *   npm run bench:hostile-http2
 *   QUIET_SECONDS=10 HOSTILE_SECONDS=30 RPS=200 npm run bench:hostile-http2
 *   ATTACKS=slowReader,idle npm run bench:hostile-http2     (any of slowReader, settingsFlood, rapidReset, pingFlood, idle)
 *
 * Prints the server's RSS and the legitimate requests' p50/p99, quiet vs hostile, failures, the
 * server's event-loop delay (what the server itself added, apart from a busy machine) and its
 * refusals by limit. `node dist/bench/hostile-http2.js serve [port]` runs the server
 * alone (for h2load).
 */
import { fork, type ChildProcess } from 'node:child_process';
import { connect as h2connect, type ClientHttp2Session, type IncomingHttpHeaders } from 'node:http2';
import { createServer, type AddressInfo } from 'node:net';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { SERVER_NODE_FLAGS } from '../src/core/node-flags.js';
import { H2ServerSession, type H2LimitKind, type H2ServerStream } from '../src/http2/index.js';
import { idle, pingFlood, rapidReset, settingsFlood, slowReader, tcp, type Attack } from './support/h2-attacks.js';
import { cpuSeconds } from './support/processes.js';

const QUIET_SECONDS = Number(process.env.QUIET_SECONDS ?? 10);
const HOSTILE_SECONDS = Number(process.env.HOSTILE_SECONDS ?? 20);
const RPS = Number(process.env.RPS ?? 200);
const SELF = fileURLToPath(import.meta.url);
const SMALL = Buffer.alloc(1024, 'x');
const BIG_CHUNK = Buffer.alloc(64 * 1024, 'y');
const BIG_TOTAL = 64 * 1024 * 1024;

// ---- the server ----

interface ServerReport {
  /** The server's event-loop delay since the last reset: what the server itself added to every request. */
  loopDelayP50Ms: number;
  loopDelayP99Ms: number;
  loopDelayMaxMs: number;
  rss: number;
  heapUsed: number;
  connections: number;
  peakQueuedBytes: number;
  refusals: Record<string, number>;
}

function serve(port: number): void {
  const sessions = new Set<H2ServerSession>();
  const refusals: Record<string, number> = {};
  let peakQueuedBytes = 0;
  const loopDelay = monitorEventLoopDelay({ resolution: 1 });
  loopDelay.enable();
  const server = createServer((socket) => {
    // As the outbound listener's h2c: the limits at their defaults, the gateway's stream limit.
    const session = new H2ServerSession(socket, { initialWindowSize: 1 << 20, sessionWindowSize: 16 << 20, maxHeaderListSize: 16 * 1024, maxConcurrentStreams: 1000, idleTimeoutMs: 300_000 });
    sessions.add(session);
    session.on('error', () => undefined);
    session.on('limit', (kind: H2LimitKind, scope: string) => {
      const key = `${kind}/${scope}`;
      refusals[key] = (refusals[key] ?? 0) + 1;
    });
    session.once('close', () => {
      peakQueuedBytes = Math.max(peakQueuedBytes, session.peakQueuedBytes);
      sessions.delete(session);
    });
    session.on('stream', (stream: H2ServerStream, headers: IncomingHttpHeaders) => {
      stream.on('error', () => undefined);
      stream.resume();
      // Answered a turn later, as the gateway answers after routing.
      setImmediate(() => {
        if (stream.destroyed) return;
        if (headers[':path'] !== '/big') {
          stream.respond({ ':status': 200, 'content-type': 'text/plain' });
          stream.end(SMALL);
          return;
        }
        stream.respond({ ':status': 200 });
        let written = 0;
        const pump = (): void => {
          while (written < BIG_TOTAL && !stream.destroyed) {
            written += BIG_CHUNK.length;
            if (!stream.write(BIG_CHUNK)) {
              stream.once('drain', pump);
              return;
            }
          }
          if (!stream.destroyed) stream.end();
        };
        pump();
      });
    });
  });
  server.listen(port, '127.0.0.1', () => {
    const bound = (server.address() as AddressInfo).port;
    if (process.send) process.send({ port: bound });
    else console.log(`listening on 127.0.0.1:${bound}`);
  });
  process.on('message', (message: { report?: boolean; resetLoopDelay?: boolean }) => {
    if (message.resetLoopDelay) loopDelay.reset();
    if (!message.report || !process.send) return;
    for (const session of sessions) peakQueuedBytes = Math.max(peakQueuedBytes, session.peakQueuedBytes);
    const memory = process.memoryUsage();
    const report: ServerReport = {
      loopDelayP50Ms: loopDelay.percentile(50) / 1e6,
      loopDelayP99Ms: loopDelay.percentile(99) / 1e6,
      loopDelayMaxMs: loopDelay.max / 1e6,
      rss: memory.rss,
      heapUsed: memory.heapUsed,
      connections: sessions.size,
      peakQueuedBytes,
      refusals: { ...refusals },
    };
    process.send(report);
  });
}

async function attack(port: number, seconds: number): Promise<void> {
  const until = Date.now() + seconds * 1000;
  const all: Record<string, Attack> = { slowReader, settingsFlood, rapidReset, pingFlood, idle };
  const connect = tcp(port);
  const chosen = (process.env.ATTACKS ?? Object.keys(all).join(',')).split(',');
  const attacks = Object.entries(all).filter(([name]) => chosen.includes(name));
  const results = await Promise.all(attacks.flatMap(([name, run]) => [1, 2].map(async () => [name, await run(connect, until).catch(() => 0)] as const)));
  const connections: Record<string, number> = {};
  for (const [name, count] of results) connections[name] = (connections[name] ?? 0) + count;
  if (process.send) process.send({ connections });
}

// ---- the orchestrator ----

function start(role: string, args: string[], execArgv: readonly string[] = []): ChildProcess {
  return fork(SELF, [role, ...args], { execArgv: [...execArgv], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
}

function nextMessage<T>(child: ChildProcess): Promise<T> {
  return new Promise((resolve) => child.once('message', (message) => resolve(message as T)));
}

async function report(server: ChildProcess): Promise<ServerReport> {
  const answer = nextMessage<ServerReport>(server);
  server.send({ report: true });
  return answer;
}

interface Phase {
  latencies: number[];
  failures: number;
  peakRss: number;
}

/** Legitimate GETs at RPS on one connection of Node's client for `seconds`; the server's RSS sampled meanwhile. */
async function legitimate(port: number, seconds: number, server: ChildProcess): Promise<Phase> {
  const client: ClientHttp2Session = h2connect(`http://127.0.0.1:${port}`);
  client.on('error', () => undefined);
  const phase: Phase = { latencies: [], failures: 0, peakRss: 0 };
  const sampler = setInterval(() => void report(server).then((r) => (phase.peakRss = Math.max(phase.peakRss, r.rss))), 250);
  const total = Math.round(seconds * RPS);
  const started = performance.now();
  const requests: Array<Promise<void>> = [];
  for (let n = 0; n < total; n++) {
    const due = started + (n * 1000) / RPS;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    requests.push(
      new Promise<void>((resolve) => {
        const sent = performance.now();
        const timer = setTimeout(() => {
          phase.failures += 1;
          resolve();
        }, 10_000);
        const req = client.request({ ':path': '/legit' }, { endStream: true });
        let status = 0;
        req.on('response', (headers: IncomingHttpHeaders) => (status = Number(headers[':status'])));
        req.resume();
        req.on('end', () => {
          clearTimeout(timer);
          if (status === 200) phase.latencies.push(performance.now() - sent);
          else phase.failures += 1;
          resolve();
        });
        req.on('error', () => {
          clearTimeout(timer);
          phase.failures += 1;
          resolve();
        });
      }),
    );
  }
  await Promise.all(requests);
  clearInterval(sampler);
  client.destroy();
  return phase;
}

function percentile(values: number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;
}

const mib = (bytes: number): string => (bytes / 1024 / 1024).toFixed(1);
const ms = (value: number): string => value.toFixed(2);

async function main(): Promise<void> {
  const role = process.argv[2];
  if (role === 'serve') return serve(Number(process.argv[3] ?? 0));
  if (role === 'attack') return attack(Number(process.argv[3]), Number(process.argv[4]));

  const server = start('serve', ['0'], SERVER_NODE_FLAGS);
  const { port } = await nextMessage<{ port: number }>(server);
  const baseline = await report(server);
  server.send({ resetLoopDelay: true });
  const quiet = await legitimate(port, QUIET_SECONDS, server);
  const afterQuiet = await report(server);
  server.send({ resetLoopDelay: true });
  const attackers = start('attack', [String(port), String(HOSTILE_SECONDS)]);
  const attackersDone = nextMessage<{ connections: Record<string, number> }>(attackers);
  const cpuBefore = cpuSeconds(server.pid);
  const hostile = await legitimate(port, HOSTILE_SECONDS, server);
  const { connections } = await attackersDone;
  const cpuHostile = cpuSeconds(server.pid) - cpuBefore;
  const afterHostile = await report(server);
  server.kill();
  attackers.kill();

  console.log(`# fedgate bench:hostile-http2 — node ${process.version}; legitimate GETs at ${RPS}/s; quiet ${QUIET_SECONDS} s, hostile ${HOSTILE_SECONDS} s`);
  console.log('');
  console.log('| phase | legitimate requests | failures | p50 ms | p99 ms | server event-loop delay p50 / p99 / max ms | server RSS peak MiB |');
  console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: |');
  const delay = (r: ServerReport): string => `${ms(r.loopDelayP50Ms)} / ${ms(r.loopDelayP99Ms)} / ${ms(r.loopDelayMaxMs)}`;
  console.log(`| quiet | ${quiet.latencies.length} | ${quiet.failures} | ${ms(percentile(quiet.latencies, 50))} | ${ms(percentile(quiet.latencies, 99))} | ${delay(afterQuiet)} | ${mib(Math.max(quiet.peakRss, afterQuiet.rss))} |`);
  console.log(`| hostile | ${hostile.latencies.length} | ${hostile.failures} | ${ms(percentile(hostile.latencies, 50))} | ${ms(percentile(hostile.latencies, 99))} | ${delay(afterHostile)} | ${mib(Math.max(hostile.peakRss, afterHostile.rss))} |`);
  console.log('');
  console.log(`server RSS at start ${mib(baseline.rss)} MiB; heap after the hostile phase ${mib(afterHostile.heapUsed)} MiB; CPU during the hostile phase ${cpuHostile.toFixed(1)} s; peak bytes queued on one connection ${mib(afterHostile.peakQueuedBytes)} MiB`);
  console.log(`hostile connections opened: ${Object.entries(connections).map(([name, count]) => `${name} ${count}`).join(', ')}`);
  console.log(`server refusals: ${Object.entries(afterHostile.refusals).map(([kind, count]) => `${kind} ${count}`).join(', ') || 'none'}`);
}

void main();
