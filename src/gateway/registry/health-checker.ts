import { errorMessage } from '../../core/errors.js';
import type { Logger } from '../../core/logger.js';

import type { GatewayDefaults } from '../../config/federation-config.js';

/** The health-check settings of the federation's defaults. */
export function healthCheckConfig(defaults: GatewayDefaults): HealthCheckConfig {
  const h = defaults.healthCheck;
  return { intervalMs: h.interval, timeoutMs: h.timeout, unhealthyThreshold: h.unhealthyThreshold, healthyThreshold: h.healthyThreshold };
}

export interface HealthCheckConfig {
  intervalMs: number;
  timeoutMs: number;
  unhealthyThreshold: number;
  healthyThreshold: number;
}

interface PeerHealth {
  alive: boolean;
  misses: number;
  successes: number;
  lastError: string;
  lastRttMs: number | undefined;
  changedAt: number;
  inFlight: boolean;
}

/**
 * Active health checks of remote gateways: an HTTP/2 PING over the pooled session every interval
 * (a connect first, when there is none). `unhealthyThreshold` misses in a row mark the gateway down;
 * `healthyThreshold` answers bring it back. Peers start alive, so a new gateway sends traffic at
 * once and relies on retries until the first checks settle.
 */
export class HealthChecker {
  private readonly peers = new Map<string, PeerHealth>();
  private timer: NodeJS.Timeout | undefined;
  private readonly listeners = new Set<(cluster: string, alive: boolean, reason: string) => void>();
  private readonly passListeners = new Set<(cluster: string) => void>();

  constructor(
    private config: HealthCheckConfig,
    private readonly ping: (cluster: string, timeoutMs: number) => Promise<number>,
    private readonly log: Logger,
  ) {}

  configure(config: HealthCheckConfig): void {
    const restart = config.intervalMs !== this.config.intervalMs && this.timer !== undefined;
    this.config = config;
    if (restart) {
      this.stop();
      this.start();
    }
  }

  onChange(listener: (cluster: string, alive: boolean, reason: string) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Calls `listener` after every check the peer answered (not only on a change of state). */
  onPass(listener: (cluster: string) => void): () => void {
    this.passListeners.add(listener);
    return () => this.passListeners.delete(listener);
  }

  /** The clusters to check; others are forgotten. */
  setPeers(clusters: Iterable<string>): void {
    const wanted = new Set(clusters);
    for (const cluster of [...this.peers.keys()]) if (!wanted.has(cluster)) this.peers.delete(cluster);
    for (const cluster of wanted) {
      if (!this.peers.has(cluster)) this.peers.set(cluster, { alive: true, misses: 0, successes: 0, lastError: '', lastRttMs: undefined, changedAt: Date.now(), inFlight: false });
    }
  }

  /** Peers that fail their checks now. */
  unhealthy(): Set<string> {
    const down = new Set<string>();
    for (const [cluster, peer] of this.peers) if (!peer.alive) down.add(cluster);
    return down;
  }

  isAlive(cluster: string): boolean {
    return this.peers.get(cluster)?.alive ?? true;
  }

  snapshot(): Record<string, { alive: boolean; misses: number; lastError: string; rttMs: number | undefined; since: string }> {
    return Object.fromEntries(
      [...this.peers].map(([cluster, h]) => [cluster, { alive: h.alive, misses: h.misses, lastError: h.lastError, rttMs: h.lastRttMs, since: new Date(h.changedAt).toISOString() }]),
    );
  }

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => this.checkAll(), this.config.intervalMs);
    this.timer.unref();
    this.checkAll();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** A request to the peer failed to connect: count it as a missed check at once. */
  reportFailure(cluster: string, reason: string): void {
    const peer = this.peers.get(cluster);
    if (peer) this.miss(cluster, peer, reason);
  }

  private checkAll(): void {
    for (const [cluster, peer] of this.peers) {
      if (peer.inFlight) continue;
      peer.inFlight = true;
      this.ping(cluster, this.config.timeoutMs).then(
        (rtt) => {
          peer.inFlight = false;
          peer.lastRttMs = rtt;
          peer.misses = 0;
          peer.successes += 1;
          if (!peer.alive && peer.successes >= this.config.healthyThreshold) this.set(cluster, peer, true, `answered ${peer.successes} checks`);
          if (peer.alive) for (const listener of this.passListeners) listener(cluster);
        },
        (error: unknown) => {
          peer.inFlight = false;
          this.miss(cluster, peer, errorMessage(error));
        },
      );
    }
  }

  private miss(cluster: string, peer: PeerHealth, reason: string): void {
    peer.misses += 1;
    peer.successes = 0;
    peer.lastError = reason;
    if (peer.alive && peer.misses >= this.config.unhealthyThreshold) this.set(cluster, peer, false, reason);
  }

  private set(cluster: string, peer: PeerHealth, alive: boolean, reason: string): void {
    peer.alive = alive;
    peer.changedAt = Date.now();
    if (alive) this.log.info({ cluster }, 'peer gateway healthy again');
    else this.log.warn({ cluster, misses: peer.misses, reason }, 'peer gateway unhealthy; failing over');
    for (const listener of this.listeners) listener(cluster, alive, reason);
  }
}
