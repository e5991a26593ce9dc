/**
 * Two gateways under a hostile mix while legitimate traffic flows (issue 28): edge's outbound
 * listener and east's inbound listener are attacked at once, and legitimate HTTP requests go from
 * a local client through edge, over mutual TLS to east, to east's service, at a fixed rate.
 *
 * The mix, from a process of its own:
 *  - edge's outbound listener (no credential needed): HTTP/2 slow readers, SETTINGS floods, rapid
 *    resets, PING floods, 500 idle h2c connections; HTTP/1.1 slowloris (a header byte a second on
 *    200 connections) and requests forging a caller identity (`x-fedgate-caller`);
 *  - east's inbound listener with the gateway certificate of a third member, `mallory` (a
 *    compromised member; edge's own traffic must not pay for it): slow readers, rapid resets,
 *    200 idle connections;
 *  - east's inbound listener with forged identities: TLS handshakes with a certificate from a CA
 *    no member trusts, and without a certificate.
 *
 *   npm run bench:hostile                                   (30 s quiet, then 10 min hostile, 200 rps)
 *   QUIET_SECONDS=10 HOSTILE_SECONDS=60 RPS=200 npm run bench:hostile
 *   ATTACKS=h2reset,slowloris npm run bench:hostile     (any of h2slow, h2slow2, h2settings, h2reset,
 *     h2ping, h2idle, slowloris, forged, memberSlow, memberReset, memberIdle, untrusted, noCertificate)
 *   BENCH_TIMELINE=1 (failures and the slowest request per second), BENCH_LOG_LEVEL=debug (gateway logs)
 *
 * The attackers run at the lowest CPU priority (nice 19): on a shared machine they stand for a
 * client on another host, and what they cost the gateways is then the gateways' work, not a
 * competition for the same cores.
 *
 * Prints the legitimate requests' failures and p50/p99, quiet vs hostile and per minute, each
 * gateway's RSS (start, peak, end) and CPU, the refusals each gateway counted, and
 * what the attackers managed to open.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { setPriority } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { fileURLToPath } from 'node:url';
import { percentile, runLoad, type Sample } from '../src/drill/load-generator.js';
import { SpiffeId } from '../src/model/spiffe-id.js';
import { CertificateAuthority } from '../src/pki/certificate-authority.js';
import { PkiDirectory } from '../src/pki/pki-directory.js';
import { issueSvid } from '../src/pki/svid.js';
import { LocalFederation } from '../test/support/federation.js';
import { FedgateProcess } from '../test/support/processes.js';
import { freePorts } from '../test/support/ports.js';
import { cpuSeconds } from './support/processes.js';
import { idle, pingFlood, rapidReset, settingsFlood, slowReader, tcp, type Attack, type Connector } from './support/h2-attacks.js';

const QUIET_SECONDS = Number(process.env.QUIET_SECONDS ?? 30);
const HOSTILE_SECONDS = Number(process.env.HOSTILE_SECONDS ?? 600);
const RPS = Number(process.env.RPS ?? 200);
const SELF = fileURLToPath(import.meta.url);
const AUTHORITY = 'payments.default.svc.clusterset.local:8080';

// ---- the attackers (a process of their own) ----

interface AttackPlan {
  outbound: number;
  inbound: number;
  seconds: number;
  /** A member gateway's credentials (mallory's): what a compromised member holds. */
  member: { cert: string; key: string; ca: string };
  /** A gateway identity from a CA no member trusts. */
  forged: { cert: string; key: string };
  /** Which attacks run (ATTACKS=h2reset,slowloris …); all by default. */
  attacks?: string[];
}

function tlsTo(port: number, credentials: { cert?: string; key?: string; ca?: string }): Connector {
  return () =>
    new Promise((resolve, reject) => {
      const socket = tlsConnect({ host: '127.0.0.1', port, ...credentials, ALPNProtocols: ['h2'], rejectUnauthorized: false }, () => resolve(socket));
      socket.once('error', reject);
    });
}

/** Header bytes one at a time, one a second, on each of `count` connections (slowloris). */
async function slowloris(port: number, until: number, count = 200): Promise<number> {
  const sockets: Socket[] = [];
  let opened = 0;
  const line = Buffer.from(`GET / HTTP/1.1\r\nhost: ${AUTHORITY}\r\nx-padding: ${'a'.repeat(4000)}`);
  const progress = new Map<Socket, number>();
  const refill = async (): Promise<void> => {
    while (sockets.length < count && Date.now() < until) {
      const socket = await tcp(port)().catch(() => undefined);
      if (!socket) return;
      opened += 1;
      socket.on('error', () => undefined);
      socket.once('close', () => sockets.splice(sockets.indexOf(socket), 1));
      socket.resume();
      sockets.push(socket);
      progress.set(socket, 0);
    }
  };
  while (Date.now() < until) {
    await refill();
    for (const socket of sockets) {
      const at = progress.get(socket) ?? 0;
      if (at < line.length) {
        socket.write(line.subarray(at, at + 1));
        progress.set(socket, at + 1);
      }
    }
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
  for (const socket of [...sockets]) socket.destroy();
  return opened;
}

/** Requests that claim to come from another workload; the outbound listener must not believe them. */
async function forgedCaller(port: number, until: number, rps = 50): Promise<number> {
  let sent = 0;
  const request = `GET / HTTP/1.1\r\nhost: ${AUTHORITY}\r\nx-fedgate-caller: spiffe://east.test.internal/ns/kube-system/sa/admin\r\n\r\n`;
  while (Date.now() < until) {
    const socket = await tcp(port)().catch(() => undefined);
    if (socket) {
      socket.on('error', () => undefined);
      socket.resume();
      for (let i = 0; i < rps && Date.now() < until; i++) {
        socket.write(request);
        sent += 1;
        await new Promise((resolve) => setTimeout(resolve, 1000 / rps));
      }
      socket.destroy();
    }
  }
  return sent;
}

/** TLS handshakes with the given credentials, `perSecond` of them, each closed once it settles. */
async function handshakes(connect: Connector, until: number, perSecond = 20): Promise<number> {
  let tried = 0;
  while (Date.now() < until) {
    tried += 1;
    await connect()
      .then((socket) => socket.destroy())
      .catch(() => undefined);
    await new Promise((resolve) => setTimeout(resolve, 1000 / perSecond));
  }
  return tried;
}

async function attack(plan: AttackPlan): Promise<void> {
  const until = Date.now() + plan.seconds * 1000;
  const outbound = tcp(plan.outbound);
  const member = tlsTo(plan.inbound, plan.member);
  const guarded = (name: string, run: () => Promise<number>): Promise<readonly [string, number]> => run().then((n) => [name, n] as const, () => [name, 0] as const);
  const h2 = (name: string, attackWith: Attack, connect: Connector, authority?: string): Promise<readonly [string, number]> => guarded(name, () => attackWith(connect, until, authority));
  const all: Record<string, () => Promise<readonly [string, number]>> = {
    h2slow: () => h2('outbound h2c slow reader', slowReader, outbound, AUTHORITY),
    h2slow2: () => h2('outbound h2c slow reader', slowReader, outbound, AUTHORITY),
    h2settings: () => h2('outbound h2c SETTINGS flood', settingsFlood, outbound, AUTHORITY),
    h2reset: () => h2('outbound h2c rapid reset', rapidReset, outbound, AUTHORITY),
    h2ping: () => h2('outbound h2c PING flood', pingFlood, outbound),
    h2idle: () => h2('outbound h2c idle', idle, outbound),
    slowloris: () => guarded('outbound HTTP/1.1 slowloris', () => slowloris(plan.outbound, until)),
    forged: () => guarded('outbound forged caller (requests)', () => forgedCaller(plan.outbound, until)),
    memberSlow: () => h2('inbound member slow reader', slowReader, member, AUTHORITY),
    memberReset: () => h2('inbound member rapid reset', rapidReset, member, AUTHORITY),
    memberIdle: () => guarded('inbound member idle', () => idle(member, until)),
    untrusted: () => guarded('inbound untrusted CA (handshakes)', () => handshakes(tlsTo(plan.inbound, plan.forged), until)),
    noCertificate: () => guarded('inbound no certificate (handshakes)', () => handshakes(tlsTo(plan.inbound, {}), until)),
  };
  const chosen = plan.attacks ?? Object.keys(all);
  const results = await Promise.all(Object.entries(all).filter(([key]) => chosen.includes(key)).map(([, run]) => run()));
  const opened: Record<string, number> = {};
  for (const [name, count] of results) opened[name] = (opened[name] ?? 0) + count;
  process.send?.({ opened });
}

// ---- the orchestrator ----

interface GatewayProbe {
  name: string;
  pid: number;
  admin: string;
  rssStart: number;
  rssPeak: number;
}

function rssOf(pid: number): number {
  try {
    return Number(/^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) * 1024;
  } catch {
    return 0;
  }
}

async function metrics(admin: string): Promise<string> {
  const response = await fetch(`${admin}/metrics`).catch(() => undefined);
  return response ? response.text() : '';
}

/** Sum of a metric's series, by one label. */
function byLabel(text: string, metric: string, label: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${metric}{`)) continue;
    const value = Number(line.slice(line.lastIndexOf(' ') + 1));
    const key = new RegExp(`${label}="([^"]*)"`).exec(line)?.[1] ?? '?';
    const limit = /limit="([^"]*)"/.exec(line)?.[1];
    const name = limit && label !== 'limit' ? `${key}/${limit}` : key;
    out[name] = (out[name] ?? 0) + value;
  }
  return out;
}


interface Phase {
  samples: Sample[];
}

async function legitimate(address: string, seconds: number, probes: GatewayProbe[]): Promise<Phase> {
  const sampler = setInterval(() => {
    for (const probe of probes) probe.rssPeak = Math.max(probe.rssPeak, rssOf(probe.pid));
  }, 1000);
  // Due times from the phase's own start (`Sample.at` counts from there).
  const samples = await runLoad({ kind: 'http', address, authority: AUTHORITY }, { rps: RPS, durationMs: seconds * 1000 });
  clearInterval(sampler);
  return { samples };
}

const mib = (bytes: number): string => (bytes / 1024 / 1024).toFixed(1);
const ms = (value: number): string => value.toFixed(2);

function summary(samples: Sample[]): { ok: number; failed: number; p50: number; p99: number } {
  const ok = samples.filter((s) => s.ok).map((s) => s.latencyMs).sort((a, b) => a - b);
  return { ok: ok.length, failed: samples.length - ok.length, p50: percentile(ok, 50), p99: percentile(ok, 99) };
}

async function main(): Promise<void> {
  if (process.argv[2] === 'attack') {
    process.once('message', (plan: AttackPlan) => void attack(plan));
    return;
  }
  const [backendPort] = (await freePorts(1)) as [number];
  const federation = await LocalFederation.create([
    { name: 'edge', region: 'r1', zone: 'a' },
    { name: 'mallory', region: 'r2', zone: 'a' },
    { name: 'east', region: 'r1', zone: 'a', exports: [{ service: 'payments', ports: [{ name: 'http', port: 8080, targetPort: backendPort, protocol: 'http' }] }] },
  ]);
  const processes: FedgateProcess[] = [];
  let attackers: ChildProcess | undefined;
  try {
    const backends = FedgateProcess.start('backends-east', ['demo', 'backends', '--config', federation.cluster('east').file]);
    processes.push(backends);
    await federation.startAll({ FEDGATE_LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? 'warn' });
    for (let i = 0; !backends.logs.includes('backends ready'); i++) {
      if (i > 200 || !backends.running) throw new Error(`the sample service did not start:\n${backends.logs}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const probes: GatewayProbe[] = ['edge', 'east'].map((name) => {
      const pid = federation.cluster(name).process?.pid as number;
      return { name, pid, admin: federation.adminUrl(name), rssStart: rssOf(pid), rssPeak: 0 };
    });
    // A member's credentials (mallory's gateway identity) and a gateway identity no member trusts.
    const malloryCa = new PkiDirectory(join(federation.dir, 'pki', 'mallory')).ca();
    const eastCa = new PkiDirectory(join(federation.dir, 'pki', 'east')).ca();
    const member = issueSvid(malloryCa, SpiffeId.gateway('mallory.test.internal', 'mallory'), { ttlMs: 3 * 3_600_000 });
    const evil = CertificateAuthority.create({ trustDomain: 'edge.test.internal' });
    const forged = issueSvid(evil, SpiffeId.gateway('edge.test.internal', 'edge'), { ttlMs: 3 * 3_600_000 });

    const address = federation.outbound('edge');
    // Warm-up: connections pooled, code compiled.
    await runLoad({ kind: 'http', address, authority: AUTHORITY }, { rps: RPS, durationMs: 5000 });
    const quiet = await legitimate(address, QUIET_SECONDS, probes);

    attackers = fork(SELF, ['attack'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    if (attackers.pid) setPriority(attackers.pid, 19);
    const opened = new Promise<Record<string, number>>((resolve) => attackers?.once('message', (m: { opened: Record<string, number> }) => resolve(m.opened)));
    attackers.send({
      outbound: federation.cluster('edge').ports.outbound,
      inbound: federation.cluster('east').ports.inbound,
      seconds: HOSTILE_SECONDS,
      member: { cert: member.chainPem, key: member.keyPem, ca: eastCa.certificatePem },
      forged: { cert: forged.chainPem, key: forged.keyPem },
      attacks: process.env.ATTACKS?.split(','),
    } satisfies AttackPlan);
    const cpuBefore = probes.map((p) => cpuSeconds(p.pid));
    const hostile = await legitimate(address, HOSTILE_SECONDS, probes);
    const cpuHostile = probes.map((p, i) => cpuSeconds(p.pid) - (cpuBefore[i] ?? 0));
    const attacked = await opened;
    const hostileMetrics = await Promise.all(probes.map((p) => metrics(p.admin)));
    const rssEnd = probes.map((p) => rssOf(p.pid));

    const q = summary(quiet.samples);
    const h = summary(hostile.samples);
    console.log(`# fedgate bench:hostile — node ${process.version}; legitimate HTTP GETs at ${RPS}/s through edge → east (mTLS); quiet ${QUIET_SECONDS} s, hostile ${HOSTILE_SECONDS} s`);
    console.log('');
    console.log('| phase | legitimate requests | failed | p50 ms | p99 ms | p99 / quiet p99 |');
    console.log('| --- | ---: | ---: | ---: | ---: | ---: |');
    console.log(`| quiet | ${q.ok + q.failed} | ${q.failed} | ${ms(q.p50)} | ${ms(q.p99)} | 1.00 |`);
    console.log(`| hostile | ${h.ok + h.failed} | ${h.failed} | ${ms(h.p50)} | ${ms(h.p99)} | ${(h.p99 / q.p99).toFixed(2)} |`);
    for (let minute = 0; minute * 60 < HOSTILE_SECONDS; minute++) {
      const from = minute * 60_000;
      const slice = summary(hostile.samples.filter((s) => s.at >= from && s.at < from + 60_000));
      if (HOSTILE_SECONDS > 60) console.log(`| hostile minute ${minute + 1} | ${slice.ok + slice.failed} | ${slice.failed} | ${ms(slice.p50)} | ${ms(slice.p99)} | ${(slice.p99 / q.p99).toFixed(2)} |`);
    }
    if (process.env.BENCH_TIMELINE) {
      for (let second = 0; second < HOSTILE_SECONDS; second++) {
        const from = second * 1000;
        const slice = hostile.samples.filter((s) => s.at >= from && s.at < from + 1000);
        console.log(`second ${second}: ${slice.length} requests, ${slice.filter((s) => !s.ok).length} failed, max ${Math.max(...slice.map((s) => s.latencyMs)).toFixed(0)} ms`);
      }
    }
    const causes = new Map<string, number>();
    for (const s of hostile.samples) if (!s.ok) causes.set(s.error ?? String(s.status), (causes.get(s.error ?? String(s.status)) ?? 0) + 1);
    if (causes.size > 0) console.log(`\nlegitimate failures: ${[...causes].map(([cause, n]) => `${n}× ${cause}`).join('; ')}`);
    console.log('');
    console.log('| gateway | RSS start MiB | RSS peak MiB | RSS end MiB | CPU seconds in the hostile phase |');
    console.log('| --- | ---: | ---: | ---: | ---: |');
    probes.forEach((p, i) => {
      console.log(`| ${p.name} | ${mib(p.rssStart)} | ${mib(p.rssPeak)} | ${mib(rssEnd[i] ?? 0)} | ${(cpuHostile[i] ?? 0).toFixed(1)} |`);
    });
    console.log('');
    probes.forEach((p, i) => {
      const refusals = byLabel(hostileMetrics[i] ?? '', 'fedgate_limit_refusals_total', 'listener');
      const rejected = byLabel(hostileMetrics[i] ?? '', 'fedgate_inbound_rejected_peers_total', 'reason');
      console.log(`${p.name} refusals: ${Object.entries(refusals).map(([k, n]) => `${k} ${n}`).join(', ') || 'none'}${Object.keys(rejected).length > 0 ? `; peers rejected: ${Object.entries(rejected).map(([k, n]) => `${k} ${n}`).join(', ')}` : ''}`);
    });
    console.log(`attackers opened: ${Object.entries(attacked).map(([k, n]) => `${k} ${n}`).join(', ')}`);
  } finally {
    attackers?.kill();
    await federation.stop();
    for (const p of processes) await p.stop();
  }
}

void main();
