/**
 * Data-plane overhead: a 1 KiB HTTP/1.1 backend and a gRPC unary backend measured three ways in one
 * run — direct, through two fedgate gateways (outbound → mTLS HTTP/2 → inbound), and through two
 * HAProxy instances in the same topology with the same certificates — at a fixed 1,000 rps
 * (latency: from the built-in open-loop load generator, and from h2load on one connection) and at
 * saturation (throughput, CPU).
 *
 *   npm run bench:dataplane                 # 10 s per fixed-rate run, 10 s per saturation run, 3 rounds
 *   SAT_ROUNDS=5: saturation rounds (fedgate and HAProxy back to back in each)
 *   SECONDS_SAT_WARMUP=2 (default): unmeasured load before each saturation run
 *   SECONDS_FIXED=5 SECONDS_SAT=5 npm run bench:dataplane
 *   SECONDS_WARMUP=5 (default): each fixed-rate run first sends this long at the same rate, unmeasured
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:http';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { percentile, runLoad, type LoadTarget } from '../src/drill/load-generator.js';
import { startEchoServer } from '../src/proto/echo-service.js';
import { SpiffeId } from '../src/model/spiffe-id.js';
import { PkiDirectory } from '../src/pki/pki-directory.js';
import { issueSvid } from '../src/pki/svid.js';
import { LocalFederation } from '../test/support/federation.js';
import { freePorts } from '../test/support/ports.js';
import { cpuSeconds, processCounters, requireCommands, run, type ProcessCounters } from './support/processes.js';

const FIXED_SECONDS = Number(process.env.SECONDS_FIXED ?? 10);
const SAT_SECONDS = Number(process.env.SECONDS_SAT ?? 10);
const SAT_WARMUP_SECONDS = Number(process.env.SECONDS_SAT_WARMUP ?? 2);
const SAT_ROUNDS = Math.max(1, Number(process.env.SAT_ROUNDS ?? 3));
const RATE = Number(process.env.RATE ?? 1000);
const WARMUP_SECONDS = Number(process.env.SECONDS_WARMUP ?? 5);
const HTTP_AUTHORITY = 'bench-http.default.svc.clusterset.local:8080';
const GRPC_AUTHORITY = 'bench-grpc.default.svc.clusterset.local:9090';

interface Setup {
  name: string;
  http: string;
  grpc: string;
  pids: () => number[];
  /** Names of the processes `pids` returns, in order. */
  hops: string[];
}

interface Row {
  setup: string;
  protocol: string;
  p50: number;
  p99: number;
  max: number;
  errors: number;
  rps: number;
  cpu: number;
  /** Proxy CPU per request (both hops together) at the fixed rate, µs. */
  fixedCpuUs: number;
  /** The same at saturation, µs. */
  satCpuUs: number;
  /** Fixed rate from h2load on one connection (a C client outside the bench process). */
  c1: { p50: number; p99: number; max: number; errors: number; over1ms: number; over2ms: number; hops: HopLoad[] };
  /** Saturation runs, in round order. */
  rounds: SaturationRound[];
}

/** What one proxy process spent per request during the h2load fixed-rate run. */
interface HopLoad {
  hop: string;
  userUs: number;
  systemUs: number;
  /** Thread sleeps per request: each is a wake-up later, which this VM charges for in system time. */
  voluntary: number;
  involuntary: number;
}

interface SaturationRound {
  rps: number;
  wall: number;
  /** CPU seconds per process of the setup, in `Setup.pids` order. */
  hopCpuSeconds: number[];
}

async function oneKiBBackend(port: number): Promise<() => Promise<void>> {
  const body = Buffer.alloc(1024, 'x');
  const server = createServer({ keepAliveTimeout: 65_000 }, (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': body.length });
    res.end(body);
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return () => new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}

function haproxyConfigs(dir: string, ports: { outHttp: number; outGrpc: number; inHttp: number; inGrpc: number; backend: number; grpcBackend: number }): [string, string] {
  const common = ['global', '  maxconn 4000', '  tune.ssl.default-dh-param 2048', 'defaults', '  mode http', '  timeout connect 5s', '  timeout client 60s', '  timeout server 60s', '  option http-keep-alive', ''];
  const ca = join(dir, 'ca.pem');
  const client = join(dir, 'client.pem');
  const server = join(dir, 'server.pem');
  const hop1 = [
    ...common,
    'frontend out_http',
    `  bind 127.0.0.1:${ports.outHttp}`,
    // The status line comes back from HTTP/2 without a reason phrase ("HTTP/1.1 200 "), which
    // h2load's HTTP/1.1 parser counts as a failed request; wrk and Node do not mind.
    '  http-response set-status 200 reason OK if { status 200 }',
    '  default_backend remote_http',
    'frontend out_grpc',
    `  bind 127.0.0.1:${ports.outGrpc} proto h2`,
    '  default_backend remote_grpc',
    'backend remote_http',
    `  server gw 127.0.0.1:${ports.inHttp} ssl verify required ca-file ${ca} crt ${client} alpn h2`,
    'backend remote_grpc',
    `  server gw 127.0.0.1:${ports.inGrpc} ssl verify required ca-file ${ca} crt ${client} alpn h2`,
    '',
  ].join('\n');
  const hop2 = [
    ...common,
    'frontend in_http',
    `  bind 127.0.0.1:${ports.inHttp} ssl crt ${server} ca-file ${ca} verify required alpn h2`,
    '  default_backend app_http',
    'frontend in_grpc',
    `  bind 127.0.0.1:${ports.inGrpc} ssl crt ${server} ca-file ${ca} verify required alpn h2`,
    '  default_backend app_grpc',
    'backend app_http',
    `  server app 127.0.0.1:${ports.backend}`,
    'backend app_grpc',
    `  server app 127.0.0.1:${ports.grpcBackend} proto h2`,
    '',
  ].join('\n');
  const hop1File = join(dir, 'hop1.cfg');
  const hop2File = join(dir, 'hop2.cfg');
  writeFileSync(hop1File, hop1);
  writeFileSync(hop2File, hop2);
  return [hop1File, hop2File];
}

async function fixedRate(target: LoadTarget, pids: () => number[]): Promise<{ p50: number; p99: number; max: number; errors: number; fixedCpuUs: number }> {
  // Warm-up at the measured rate, not measured: connections, TLS sessions, and V8 compiling the
  // hot path. A gateway's first ~2,000 requests after start run partly interpreted and cost about
  // twice the CPU; at 1,000 rps that queues requests for tens of ms in the first two seconds.
  await runLoad(target, { rps: RATE, durationMs: WARMUP_SECONDS * 1000, timeoutMs: 5000 });
  const cpuBefore = pids().reduce((sum, pid) => sum + cpuSeconds(pid), 0);
  const samples = await runLoad(target, { rps: RATE, durationMs: FIXED_SECONDS * 1000, timeoutMs: 5000 });
  const cpu = pids().reduce((sum, pid) => sum + cpuSeconds(pid), 0) - cpuBefore;
  const latencies = samples.filter((s) => s.ok).map((s) => s.latencyMs).sort((a, b) => a - b);
  return { p50: percentile(latencies, 50), p99: percentile(latencies, 99), max: latencies[latencies.length - 1] ?? NaN, errors: samples.filter((s) => !s.ok).length, fixedCpuUs: (cpu / samples.length) * 1e6 };
}

function grpcBodyFile(dir: string): string {
  const message = Buffer.from(JSON.stringify({ text: 'load' }));
  const file = join(dir, 'grpc-body');
  writeFileSync(file, Buffer.concat([Buffer.from([0]), Buffer.from([0, 0, 0, message.length]), message]));
  return file;
}

function h2loadArgs(protocol: 'http' | 'grpc', authority: string, dir: string): string[] {
  return protocol === 'http'
    ? ['--h1', '-H', `:authority: ${authority}`]
    : ['-d', grpcBodyFile(dir), '-H', 'content-type: application/grpc', '-H', 'te: trailers', '-H', `:authority: ${authority}`];
}

function h2loadUrl(protocol: 'http' | 'grpc', address: string): string {
  return protocol === 'http' ? `http://${address}/` : `http://${address}/fedgate.demo.Echo/Unary`;
}

/**
 * The fixed rate again from h2load on one connection: a C client in its own process, so the
 * figures are the proxies' and the backends', not the Node load generator's (which shares the
 * bench process with the backends and adds about 0.8 ms of its own). Requests leave 1/RATE s
 * apart, one at a time: h2load's --rps with several connections fires them in bursts (one per
 * connection at once), and with several streams per connection it queued gRPC calls behind each
 * other even direct (p50 0.15 ms with one stream, 1.4 ms with 16). One at a time, a stall delays
 * the requests behind it, and those count from when they were sent: the tail is a lower bound.
 */
async function fixedRateH2load(protocol: 'http' | 'grpc', address: string, authority: string, dir: string, setup: Setup): Promise<Row['c1']> {
  const log = join(dir, 'h2load-fixed.log');
  const args = [...h2loadArgs(protocol, authority, dir), '-c', '1', '-m', '1', '--rps', String(RATE)];
  await run('h2load', [...args, '-D', String(WARMUP_SECONDS), h2loadUrl(protocol, address)], (WARMUP_SECONDS + 30) * 1000);
  rmSync(log, { force: true });
  const before = setup.pids().map((pid) => processCounters(pid));
  const result = await run('h2load', [...args, '-D', String(FIXED_SECONDS), '--log-file', log, h2loadUrl(protocol, address)], (FIXED_SECONDS + 30) * 1000);
  const after = setup.pids().map((pid) => processCounters(pid));
  let lines: string[] = [];
  try {
    lines = readFileSync(log, 'utf8').trim().split('\n');
  } catch {
    console.error(`  h2load wrote no log: ${result.stderr || result.stdout}`);
  }
  // Columns: start time (µs since the epoch), HTTP status, µs until the end of the response.
  const rows = lines.map((line) => line.split('\t'));
  const latencies = rows.filter((r) => r[1]?.startsWith('2')).map((r) => Number(r[2]) / 1000).sort((a, b) => a - b);
  const failed = Number(/requests: \d+ total, \d+ started, \d+ done, \d+ succeeded, (\d+) failed/.exec(result.stdout)?.[1] ?? 0);
  const errors = rows.length - latencies.length + failed;
  if (errors > 0) console.error(`  h2load ${protocol} on one connection: ${errors} errors; ${/status codes: .*/.exec(result.stdout)?.[0] ?? result.stdout.slice(-400)}`);
  // The share of slow requests shows the tail's shape, which p99 alone hides: a few long stalls
  // and many short delays can give the same p99.
  const share = (ms: number): number => latencies.filter((l) => l > ms).length / Math.max(1, latencies.length);
  const requests = Math.max(1, rows.length);
  const hops = setup.hops.map((hop, i) => hopLoad(hop, before[i], after[i], requests));
  return { p50: percentile(latencies, 50), p99: percentile(latencies, 99), max: latencies[latencies.length - 1] ?? NaN, errors, over1ms: share(1), over2ms: share(2), hops };
}

function hopLoad(hop: string, before: ProcessCounters | undefined, after: ProcessCounters | undefined, requests: number): HopLoad {
  const delta = (field: keyof ProcessCounters): number => ((after?.[field] ?? 0) - (before?.[field] ?? 0)) / requests;
  return { hop, userUs: delta('userSeconds') * 1e6, systemUs: delta('systemSeconds') * 1e6, voluntary: delta('voluntarySwitches'), involuntary: delta('involuntarySwitches') };
}

/**
 * The scheduling policy the bench runs under (children inherit it): on this 2-vCPU VM the
 * fixed-rate tails depend on it more than on any code change, so a run says which it had.
 */
function schedulingPolicy(): string {
  try {
    const stat = readFileSync('/proc/self/stat', 'utf8');
    // Split after the parenthesised command name (it may hold spaces): index 0 is field 3, so
    // rt_priority (field 40) is index 37 and policy (field 41) index 38.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const policy = Number(fields[38]);
    const names: Record<number, string> = { 0: 'SCHED_OTHER', 1: 'SCHED_FIFO', 2: 'SCHED_RR', 3: 'SCHED_BATCH', 5: 'SCHED_IDLE' };
    const rtPriority = Number(fields[37]);
    return `${names[policy] ?? `policy ${policy}`}${policy === 1 || policy === 2 ? ` priority ${rtPriority}` : ''}`;
  } catch {
    return 'unknown';
  }
}

async function saturateHttp(address: string, authority: string, seconds: number): Promise<number> {
  const result = await run('wrk', ['-t1', '-c64', `-d${seconds}s`, '-H', `Host: ${authority}`, `http://${address}/`], (seconds + 30) * 1000);
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(result.stdout)?.[1];
  const errors = /Non-2xx or 3xx responses: (\d+)/.exec(result.stdout)?.[1];
  if (errors) console.error(`  wrk: ${errors} non-2xx responses`);
  return Number(rps ?? NaN);
}

async function saturateGrpc(address: string, authority: string, dir: string, seconds: number): Promise<number> {
  const result = await run('h2load', [...h2loadArgs('grpc', authority, dir), '-c', '16', '-m', '16', '-D', String(seconds), h2loadUrl('grpc', address)], (seconds + 30) * 1000);
  const rps = /finished in [\d.]+\w*, ([\d.]+) req\/s/.exec(result.stdout)?.[1];
  const failed = /requests: \d+ total, \d+ started, \d+ done, \d+ succeeded, (\d+) failed/.exec(result.stdout)?.[1];
  if (failed && failed !== '0') console.error(`  h2load: ${failed} failed`);
  return Number(rps ?? NaN);
}

/** Fixed-rate latency (both load generators) for both protocols; saturation is measured apart, in rounds. */
async function measureLatency(setup: Setup, dir: string): Promise<Row[]> {
  const rows: Row[] = [];
  for (const protocol of ['http', 'grpc'] as const) {
    const address = protocol === 'http' ? setup.http : setup.grpc;
    const authority = protocol === 'http' ? HTTP_AUTHORITY : GRPC_AUTHORITY;
    const fixed = await fixedRate(protocol === 'http' ? { kind: 'http', address, authority } : { kind: 'grpc', address, authority }, setup.pids);
    const c1 = await fixedRateH2load(protocol, address, authority, dir, setup);
    rows.push({ setup: setup.name, protocol, ...fixed, c1, rps: NaN, cpu: NaN, satCpuUs: NaN, rounds: [] });
    console.error(`  ${setup.name} ${protocol}: p50 ${fixed.p50.toFixed(3)} ms, p99 ${fixed.p99.toFixed(3)} ms (h2load, one connection: ${c1.p50.toFixed(3)} / ${c1.p99.toFixed(3)} ms)`);
  }
  return rows;
}

/** One saturation run: requests per second, and the CPU seconds each of the setup's processes used. */
async function saturate(setup: Setup, protocol: 'http' | 'grpc', dir: string): Promise<SaturationRound> {
  const address = protocol === 'http' ? setup.http : setup.grpc;
  const authority = protocol === 'http' ? HTTP_AUTHORITY : GRPC_AUTHORITY;
  const load = (seconds: number): Promise<number> => (protocol === 'http' ? saturateHttp(address, authority, seconds) : saturateGrpc(address, authority, dir, seconds));
  // Unmeasured, the same load first: a setup that sat idle through the other setups' runs started
  // its first measured round with 30 % more CPU per request than its later rounds.
  if (SAT_WARMUP_SECONDS > 0) await load(SAT_WARMUP_SECONDS);
  const before = setup.pids().map((pid) => cpuSeconds(pid));
  const started = Date.now();
  const rps = await load(SAT_SECONDS);
  const wall = (Date.now() - started) / 1000;
  const hopCpuSeconds = setup.pids().map((pid, i) => cpuSeconds(pid) - (before[i] ?? 0));
  const hops = hopCpuSeconds.map((seconds, i) => `${setup.hops[i] ?? `hop ${i + 1}`} ${((seconds / (rps * SAT_SECONDS)) * 1e6).toFixed(0)}`).join(', ');
  console.error(`  ${setup.name} ${protocol} saturation: ${Math.round(rps)} rps${hops ? `; CPU µs/req: ${hops}` : ''}`);
  return { rps, wall, hopCpuSeconds };
}

/** The middle round (the lower of the two middle ones for an even count), by the drills' percentile. */
function median(values: number[]): number {
  return percentile(values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b), 50);
}

/**
 * Saturation in rounds, fedgate and HAProxy back to back in each round (the order alternating), so
 * that a noisy minute on the shared VM hits both: single runs taken minutes apart put HAProxy's
 * HTTP figure anywhere between 10.9k and 17.3k rps on the same machine. The ratio is the median
 * of the rounds' ratios; throughput the median round; CPU per request over all rounds.
 */
async function saturationRounds(direct: Setup, proxies: Setup[], rows: Row[], dir: string): Promise<void> {
  const row = (setup: string, protocol: string): Row | undefined => rows.find((r) => r.setup === setup && r.protocol === protocol);
  for (const protocol of ['http', 'grpc'] as const) {
    // Direct once: it is the ceiling, not part of the ratio.
    row(direct.name, protocol)?.rounds.push(await saturate(direct, protocol, dir));
    for (let round = 0; round < SAT_ROUNDS; round++) {
      const order = round % 2 === 0 ? proxies : [...proxies].reverse();
      for (const setup of order) row(setup.name, protocol)?.rounds.push(await saturate(setup, protocol, dir));
    }
  }
  for (const r of rows) {
    r.rps = median(r.rounds.map((x) => x.rps));
    const cpuSeconds = r.rounds.reduce((sum, x) => sum + x.hopCpuSeconds.reduce((a, b) => a + b, 0), 0);
    const requests = r.rounds.reduce((sum, x) => sum + x.rps * SAT_SECONDS, 0);
    const wall = r.rounds.reduce((sum, x) => sum + x.wall, 0);
    r.cpu = cpuSeconds / wall;
    r.satCpuUs = (cpuSeconds / requests) * 1e6;
  }
}

async function main(): Promise<void> {
  requireCommands({ haproxy: 'haproxy', wrk: 'wrk', h2load: 'nghttp2-client' });
  const dir = mkdtempSync(join(tmpdir(), 'fedgate-bench-dataplane-'));
  const [backendPort, grpcPort, outHttp, outGrpc, inHttp, inGrpc] = (await freePorts(6)) as [number, number, number, number, number, number];
  const closeBackend = await oneKiBBackend(backendPort);
  const grpcBackend = await startEchoServer('us-east', `127.0.0.1:${grpcPort}`);
  const federation = await LocalFederation.create([
    {
      name: 'us-east',
      region: 'us-east-1',
      zone: 'a',
      exports: [
        { service: 'bench-http', ports: [{ name: 'http', port: 8080, targetPort: backendPort, protocol: 'http' }] },
        { service: 'bench-grpc', ports: [{ name: 'grpc', port: 9090, targetPort: grpcPort, protocol: 'grpc' }] },
      ],
    },
    { name: 'eu-west', region: 'eu-west-1', zone: 'a' },
  ]);
  const haproxies: ChildProcess[] = [];
  const rows: Row[] = [];
  try {
    await federation.startAll({ FEDGATE_LOG_LEVEL: 'warn' });
    // HAProxy gets the same kind of certificates, from the same two cluster CAs.
    const east = new PkiDirectory(join(federation.dir, 'pki', 'us-east')).ca();
    const eu = new PkiDirectory(join(federation.dir, 'pki', 'eu-west')).ca();
    const serverSvid = issueSvid(east, SpiffeId.gateway('us-east.test.internal', 'us-east'), { ttlMs: 3_600_000 });
    const clientSvid = issueSvid(eu, SpiffeId.gateway('eu-west.test.internal', 'eu-west'), { ttlMs: 3_600_000 });
    writeFileSync(join(dir, 'ca.pem'), east.certificatePem + eu.certificatePem);
    writeFileSync(join(dir, 'server.pem'), serverSvid.chainPem + serverSvid.keyPem);
    writeFileSync(join(dir, 'client.pem'), clientSvid.chainPem + clientSvid.keyPem);
    const [hop1, hop2] = haproxyConfigs(dir, { outHttp, outGrpc, inHttp, inGrpc, backend: backendPort, grpcBackend: grpcPort });
    for (const config of [hop2, hop1]) {
      const check = await run('haproxy', ['-c', '-f', config]);
      if (check.code !== 0) throw new Error(`haproxy config invalid: ${check.stdout}${check.stderr}`);
      const child = spawn('haproxy', ['-db', '-f', config], { stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      child.stderr?.on('data', (c: Buffer) => (stderr += c.toString()));
      child.on('exit', (code) => {
        if (code !== null && code !== 0) console.error(`haproxy (${config}) exited ${code}: ${stderr}`);
      });
      haproxies.push(child);
    }
    await new Promise((resolve) => setTimeout(resolve, 500));

    const gatewayPids = (): number[] => ['eu-west', 'us-east'].map((name) => federation.clusters.get(name)?.process?.pid ?? 0);
    console.log(`# fedgate bench:dataplane — node ${process.version}, ${cpus().length}× ${cpus()[0]?.model ?? 'cpu'}, HAProxy 2.6 (Debian), wrk 4.1, h2load 1.52; scheduling ${schedulingPolicy()}`);
    console.log(`# fixed rate ${RATE} rps for ${FIXED_SECONDS} s after ${WARMUP_SECONDS} s of warm-up at that rate (Node load generator, keep-alive HTTP/1.1 / grpc-js); saturation ${SAT_SECONDS} s after ${SAT_WARMUP_SECONDS} s unmeasured, × ${SAT_ROUNDS} rounds (fedgate and HAProxy back to back, alternating order): wrk -t1 -c64 (HTTP), h2load -c16 -m16 (gRPC)`);
    const direct: Setup = { name: 'direct', http: `127.0.0.1:${backendPort}`, grpc: `127.0.0.1:${grpcPort}`, pids: () => [], hops: [] };
    const fedgate: Setup = { name: 'fedgate', http: federation.outbound('eu-west'), grpc: federation.outbound('eu-west'), pids: gatewayPids, hops: ['outbound', 'inbound'] };
    // Hop 2 was spawned first: its pid comes first.
    const haproxy: Setup = { name: 'haproxy', http: `127.0.0.1:${outHttp}`, grpc: `127.0.0.1:${outGrpc}`, pids: () => haproxies.map((h) => h.pid ?? 0), hops: ['inbound', 'outbound'] };
    for (const setup of [direct, fedgate, haproxy]) rows.push(...(await measureLatency(setup, dir)));
    await saturationRounds(direct, [fedgate, haproxy], rows, dir);
  } finally {
    for (const h of haproxies) h.kill('SIGKILL');
    await federation.stop();
    await grpcBackend.close();
    await closeBackend();
    rmSync(dir, { recursive: true, force: true });
  }
  const direct = (protocol: string): Row | undefined => rows.find((r) => r.setup === 'direct' && r.protocol === protocol);
  const haproxy = (protocol: string): Row | undefined => rows.find((r) => r.setup === 'haproxy' && r.protocol === protocol);
  console.log('');
  // Paired: each round's fedgate figure over the same round's HAProxy figure.
  const ratio = (r: Row): number => median(r.rounds.map((round, i) => round.rps / (haproxy(r.protocol)?.rounds[i]?.rps ?? NaN)));
  console.log(`| setup | protocol | p50 ms | p99 ms | max ms | added p50 | added p99 | errors | saturation rps (median round) | × HAProxy (median of rounds) | proxy CPU (cores) | proxy µs/req at ${RATE} rps | at saturation |`);
  console.log('| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const r of rows) {
    const base = direct(r.protocol);
    const ha = haproxy(r.protocol);
    const added = (v: number, b: number | undefined): string => (r.setup === 'direct' || b === undefined ? '—' : (v - b).toFixed(3));
    console.log(
      `| ${r.setup} | ${r.protocol} | ${r.p50.toFixed(3)} | ${r.p99.toFixed(3)} | ${r.max.toFixed(1)} | ${added(r.p50, base?.p50)} | ${added(r.p99, base?.p99)} | ${r.errors} | ${Math.round(r.rps)} | ${r.setup === 'direct' || !ha ? '—' : ratio(r).toFixed(2)} | ${r.setup === 'direct' ? '—' : r.cpu.toFixed(2)} | ${r.setup === 'direct' ? '—' : r.fixedCpuUs.toFixed(0)} | ${r.setup === 'direct' ? '—' : r.satCpuUs.toFixed(0)} |`,
    );
  }
  console.log('');
  console.log('Saturation rounds (rps; × HAProxy in the same round):');
  console.log('');
  console.log('| protocol | round | fedgate | haproxy | × HAProxy |');
  console.log('| --- | ---: | ---: | ---: | ---: |');
  for (const protocol of ['http', 'grpc']) {
    const f = rows.find((r) => r.setup === 'fedgate' && r.protocol === protocol);
    const h = haproxy(protocol);
    for (let i = 0; i < SAT_ROUNDS; i++) {
      const a = f?.rounds[i]?.rps ?? NaN;
      const b = h?.rounds[i]?.rps ?? NaN;
      console.log(`| ${protocol} | ${i + 1} | ${Math.round(a)} | ${Math.round(b)} | ${(a / b).toFixed(2)} |`);
    }
  }
  console.log('');
  console.log(`Fixed rate ${RATE} rps from h2load, one connection, one request at a time (a C client in its own process; tails are lower bounds):`);
  console.log('');
  console.log('| setup | protocol | p50 ms | p99 ms | max ms | added p50 | added p99 | > 1 ms | > 2 ms | errors |');
  console.log('| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const r of rows) {
    const base = direct(r.protocol)?.c1;
    const added = (v: number, b: number | undefined): string => (r.setup === 'direct' || b === undefined ? '—' : (v - b).toFixed(3));
    console.log(`| ${r.setup} | ${r.protocol} | ${r.c1.p50.toFixed(3)} | ${r.c1.p99.toFixed(3)} | ${r.c1.max.toFixed(1)} | ${added(r.c1.p50, base?.p50)} | ${added(r.c1.p99, base?.p99)} | ${(r.c1.over1ms * 100).toFixed(2)} % | ${(r.c1.over2ms * 100).toFixed(2)} % | ${r.c1.errors} |`);
  }
  console.log('');
  // At this rate every request wakes each proxy from sleep twice or more; the split shows whether
  // a proxy's extra cost is its own code (user) or the kernel's wake-ups and loopback TCP (system).
  console.log("Per proxy process during those runs, per request (CPU from /proc, 10 ms ticks; context switches summed over each process's threads):");
  console.log('');
  console.log('| setup | protocol | hop | user µs | system µs | sleeps | preemptions |');
  console.log('| --- | --- | --- | ---: | ---: | ---: | ---: |');
  for (const r of rows) {
    for (const h of r.c1.hops) {
      console.log(`| ${r.setup} | ${r.protocol} | ${h.hop} | ${h.userUs.toFixed(0)} | ${h.systemUs.toFixed(0)} | ${h.voluntary.toFixed(2)} | ${h.involuntary.toFixed(2)} |`);
    }
  }
}

main().then(
  () => setTimeout(() => process.exit(0), 500).unref(),
  (error: unknown) => {
    console.error(error);
    process.exitCode = 1;
    setTimeout(() => process.exit(1), 500).unref();
  },
);
