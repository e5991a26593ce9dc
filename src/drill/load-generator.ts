import { Agent, request } from 'node:http';
import { echoClient, grpcForEcho, type EchoClient } from '../proto/echo-service.js';

export type LoadTarget =
  | { kind: 'http'; address: string; authority: string; path?: string; method?: string; headers?: Record<string, string> }
  | { kind: 'grpc'; address: string; authority: string };

export interface LoadOptions {
  /** Requests per second, sent on schedule whether or not earlier ones have answered (open loop). */
  rps: number;
  durationMs: number;
  /**
   * Asked on every tick once the planned end is reached: a later end keeps the load going (a drill
   * waiting for failback). Requests stay on the same schedule.
   */
  extendTo?: () => number;
  timeoutMs?: number;
  /** Requests in flight at most; beyond it a due request counts as failed (the system is saturated). */
  maxInFlight?: number;
  signal?: AbortSignal;
  /** performance.now() the run's times count from (default: when it starts). */
  origin?: number;
}

export interface Sample {
  /** When the request was due, ms since the start of the run. */
  at: number;
  /** From when it was due to its answer: queueing in the generator counts (no coordinated omission). */
  latencyMs: number;
  ok: boolean;
  status: string;
  /** The cluster that answered, from x-fedgate-upstream-cluster / the echo reply. */
  servedBy?: string;
  /**
   * Failed requests: the cause, grouped — `status 503 no_healthy_upstream`, `connect ECONNREFUSED
   * 127.0.0.1:17001`, `timeout: no answer from … within 5000 ms`, `grpc UNAVAILABLE …`.
   */
  error?: string;
}

/**
 * The built-in load generator of drills and benchmarks: a fixed request rate, HTTP/1.1 with
 * keep-alive or gRPC unary, every answer recorded with its latency and serving cluster.
 */
export async function runLoad(target: LoadTarget, options: LoadOptions, onSample?: (sample: Sample) => void): Promise<Sample[]> {
  const samples: Sample[] = [];
  const maxInFlight = options.maxInFlight ?? 1024;
  const timeoutMs = options.timeoutMs ?? 5000;
  const sender = target.kind === 'http' ? httpSender(target, maxInFlight, timeoutMs) : grpcSender(target, timeoutMs);
  const start = options.origin ?? performance.now();
  let endMs = options.durationMs;
  const totalFor = (ms: number): number => Math.floor((options.rps * ms) / 1000);
  let sent = 0;
  let inFlight = 0;
  let sending = true;
  let resolveDone: () => void = () => undefined;
  const done = new Promise<void>((resolve) => {
    resolveDone = resolve;
  });
  const settle = (): void => {
    if (!sending && inFlight === 0) resolveDone();
  };
  const record = (sample: Sample): void => {
    samples.push(sample);
    onSample?.(sample);
  };
  const fire = (index: number): void => {
    const due = (index * 1000) / options.rps;
    if (inFlight >= maxInFlight) {
      record({ at: due, latencyMs: 0, ok: false, status: 'overload', error: `overload: more than ${maxInFlight} requests in flight in the load generator` });
      return;
    }
    inFlight += 1;
    void sender.send().then((result) => {
      inFlight -= 1;
      record({ at: due, latencyMs: performance.now() - start - due, ...result });
      settle();
    });
  };
  // Past the planned end, the end is asked again on every tick: it can move later (still waiting)
  // or back (what was waited for happened), never before the planned end.
  const currentEnd = (): number => (options.extendTo && sent >= totalFor(options.durationMs) ? Math.max(options.durationMs, options.extendTo()) : endMs);
  const timer = setInterval(() => {
    const elapsed = performance.now() - start;
    endMs = currentEnd();
    const due = Math.min(totalFor(endMs), Math.floor((elapsed * options.rps) / 1000) + 1);
    while (sent < due && !options.signal?.aborted) fire(sent++);
    endMs = currentEnd();
    if (sent >= totalFor(endMs) || options.signal?.aborted) {
      clearInterval(timer);
      sending = false;
      settle();
    }
  }, 1);
  await Promise.race([done, new Promise<void>((resolve) => options.signal?.addEventListener('abort', () => setTimeout(resolve, timeoutMs)))]);
  clearInterval(timer);
  sender.close();
  return samples.sort((a, b) => a.at - b.at);
}

interface Sender {
  send(): Promise<Omit<Sample, 'at' | 'latencyMs'>>;
  close(): void;
}

function httpSender(target: Extract<LoadTarget, { kind: 'http' }>, maxSockets: number, timeoutMs: number): Sender {
  const [host, port] = target.address.split(':') as [string, string];
  const agent = new Agent({ keepAlive: true, maxSockets, scheduling: 'lifo' });
  return {
    send: () =>
      new Promise((resolve) => {
        const req = request({ host, port: Number(port), path: target.path ?? '/', method: target.method ?? 'GET', headers: { ...target.headers, host: target.authority }, agent, timeout: timeoutMs }, (res) => {
          res.resume();
          res.once('end', () => {
            const status = res.statusCode ?? 0;
            const servedBy = (res.headers['x-fedgate-upstream-cluster'] ?? res.headers['x-served-by']) as string | undefined;
            // Only 2xx and 3xx count as served: a 404 for the service is a wrong --service or
            // --target, not a success of the drill.
            const ok = status >= 200 && status < 400;
            const reason = res.headers['x-fedgate-reason'];
            resolve({ ok, status: String(status), servedBy, error: ok ? undefined : statusCause(status, typeof reason === 'string' ? reason : undefined) });
          });
          res.once('error', (error) => resolve({ ok: false, status: 'error', error: transportCause(error, target.address) }));
        });
        req.once('timeout', () => req.destroy(new LoadTimeoutError(timeoutMs)));
        req.once('error', (error) => resolve({ ok: false, status: 'error', error: transportCause(error, target.address) }));
        req.end();
      }),
    close: () => agent.destroy(),
  };
}

/** The client gave up waiting: the answer (or the connection) never came. */
class LoadTimeoutError extends Error {
  constructor(readonly timeoutMs: number) {
    super(`no answer within ${timeoutMs} ms`);
  }
}

/** `status 503 no_healthy_upstream`: the status, and the gateway's reason when it gave one. */
function statusCause(status: number, reason: string | undefined): string {
  return reason ? `status ${status} ${reason}` : `status ${status}`;
}

/**
 * A transport failure named by what it was and where it was going: `connect ECONNREFUSED
 * 127.0.0.1:17001`, so a wrong --target or port is obvious in the report's error groups.
 */
function transportCause(error: Error, address: string): string {
  if (error instanceof LoadTimeoutError) return `timeout: no answer from ${address} within ${error.timeoutMs} ms`;
  const system = error as NodeJS.ErrnoException & { address?: string; port?: number };
  const where = system.address !== undefined ? `${system.address.includes(':') ? `[${system.address}]` : system.address}${system.port !== undefined ? `:${system.port}` : ''}` : address;
  if (system.syscall === 'connect' || system.code === 'ECONNREFUSED' || system.code === 'EHOSTUNREACH' || system.code === 'ENETUNREACH') return `connect ${system.code ?? 'error'} ${where}`;
  if (system.code) return `transport ${system.code} ${where}`;
  return `transport ${error.message} ${where}`;
}

function grpcSender(target: Extract<LoadTarget, { kind: 'grpc' }>, timeoutMs: number): Sender {
  const client: EchoClient = echoClient(target.address, target.authority);
  return {
    send: () =>
      new Promise((resolve) => {
        client.unary({ text: 'load' }, new grpcForEcho.Metadata(), { deadline: Date.now() + timeoutMs }, (error, response) => {
          if (error) resolve({ ok: false, status: `grpc-${error.code}`, error: grpcCause(error.code, error.details, target.address) });
          else resolve({ ok: true, status: 'grpc-0', servedBy: response?.servedBy });
        });
      }),
    close: () => client.close(),
  };
}

/**
 * `grpc UNAVAILABLE no_healthy_upstream`. grpc-js puts connection failures in the details
 * ("No connection established. Last error: connect ECONNREFUSED 127.0.0.1:1 …"): the address stays,
 * timestamps and counters go, so equal causes group together.
 */
function grpcCause(code: number, details: string, address: string): string {
  const name = grpcForEcho.status[code] ?? String(code);
  const connect = /connect (E[A-Z]+) ([^\s()]+)/.exec(details);
  if (connect) return `connect ${connect[1]} ${connect[2]}`;
  if (code === grpcForEcho.status.DEADLINE_EXCEEDED) return `timeout: no answer from ${address} (grpc DEADLINE_EXCEEDED)`;
  // grpc-message is percent-encoded on the wire (gRPC HTTP/2 spec); not every path decodes it.
  let decoded = details;
  try {
    decoded = decodeURIComponent(details);
  } catch {
    // not percent-encoded after all
  }
  const detail = decoded.replace(/\(.*?\)/g, '').replace(/\d{4}-\d\d-\d\dT[\d:.]+Z/g, '').replace(/\s+/g, ' ').trim();
  return detail ? `grpc ${name} ${detail}` : `grpc ${name}`;
}

/** Percentile of sorted numbers (nearest rank). */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] as number;
}
