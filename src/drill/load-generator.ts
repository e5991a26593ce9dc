import { Agent, request } from 'node:http';
import { echoClient, grpcForEcho, type EchoClient } from '../proto/echo-service.js';

export type LoadTarget =
  | { kind: 'http'; address: string; authority: string; path?: string; method?: string; headers?: Record<string, string> }
  | { kind: 'grpc'; address: string; authority: string };

export interface LoadOptions {
  /** Requests per second, sent on schedule whether or not earlier ones have answered (open loop). */
  rps: number;
  durationMs: number;
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
  const total = Math.floor((options.rps * options.durationMs) / 1000);
  let sent = 0;
  let inFlight = 0;
  let resolveDone: () => void = () => undefined;
  const done = new Promise<void>((resolve) => {
    resolveDone = resolve;
  });
  const record = (sample: Sample): void => {
    samples.push(sample);
    onSample?.(sample);
    if (samples.length === total) resolveDone();
  };
  const fire = (index: number): void => {
    const due = (index * 1000) / options.rps;
    if (inFlight >= maxInFlight) {
      record({ at: due, latencyMs: 0, ok: false, status: 'overload', error: `more than ${maxInFlight} requests in flight` });
      return;
    }
    inFlight += 1;
    sender.send().then((result) => {
      inFlight -= 1;
      record({ at: due, latencyMs: performance.now() - start - due, ...result });
    });
  };
  const timer = setInterval(() => {
    const elapsed = performance.now() - start;
    const due = Math.min(total, Math.floor((elapsed * options.rps) / 1000) + 1);
    while (sent < due && !options.signal?.aborted) fire(sent++);
    if (sent >= total || options.signal?.aborted) clearInterval(timer);
    if (options.signal?.aborted && inFlight === 0) resolveDone();
  }, 1);
  if (total === 0) resolveDone();
  options.signal?.addEventListener('abort', () => {
    if (inFlight === 0) resolveDone();
  });
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
            resolve({ ok: status < 500, status: String(status), servedBy, error: status >= 500 ? String(res.headers['x-fedgate-reason'] ?? status) : undefined });
          });
          res.once('error', (error) => resolve({ ok: false, status: 'error', error: error.message }));
        });
        req.once('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs}ms`)));
        req.once('error', (error) => resolve({ ok: false, status: 'error', error: error.message }));
        req.end();
      }),
    close: () => agent.destroy(),
  };
}

function grpcSender(target: Extract<LoadTarget, { kind: 'grpc' }>, timeoutMs: number): Sender {
  const client: EchoClient = echoClient(target.address, target.authority);
  return {
    send: () =>
      new Promise((resolve) => {
        client.unary({ text: 'load' }, new grpcForEcho.Metadata(), { deadline: Date.now() + timeoutMs }, (error, response) => {
          if (error) resolve({ ok: false, status: `grpc-${error.code}`, error: error.details });
          else resolve({ ok: true, status: 'grpc-0', servedBy: response?.servedBy });
        });
      }),
    close: () => client.close(),
  };
}

/** Percentile of sorted numbers (nearest rank). */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] as number;
}
