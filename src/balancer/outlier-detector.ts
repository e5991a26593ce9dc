import { systemClock, type Clock } from '../core/clock.js';

export interface OutlierDetectionConfig {
  consecutiveErrors: number;
  /** How often ejections are re-evaluated (and the window after which a streak resets). */
  intervalMs: number;
  baseEjectionTimeMs: number;
  /** At most this share of targets may be ejected at once. */
  maxEjectionPercent: number;
}

/**
 * What a failure says about the cluster: `transport` (the connection to its gateway failed or was
 * reset: the gateway itself is in doubt) or `response` (its gateway answered, with a 5xx: the
 * service behind it is in doubt).
 */
export type FailureCause = 'transport' | 'response';

interface State {
  consecutive: number;
  ejections: number;
  ejectedUntil: number;
  lastFailure: number;
  /** The cause of the failure that triggered the current ejection. */
  ejectedBy: FailureCause;
}

/**
 * Passive outlier detection: a cluster that fails `consecutiveErrors` requests in a row (connect
 * failures, resets, 5xx) is ejected for base × number of ejections so far, so a flapping cluster
 * stays out longer each time. Never more than `maxEjectionPercent` of the targets at once.
 */
export class OutlierDetector {
  private readonly states = new Map<string, State>();
  private readonly listeners = new Set<(cluster: string, ejected: boolean) => void>();

  constructor(
    private config: OutlierDetectionConfig,
    private readonly clock: Clock = systemClock,
  ) {}

  configure(config: OutlierDetectionConfig): void {
    this.config = config;
  }

  onChange(listener: (cluster: string, ejected: boolean) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private state(cluster: string): State {
    let state = this.states.get(cluster);
    if (!state) {
      state = { consecutive: 0, ejections: 0, ejectedUntil: 0, lastFailure: 0, ejectedBy: 'response' };
      this.states.set(cluster, state);
    }
    return state;
  }

  success(cluster: string): void {
    const state = this.states.get(cluster);
    if (state && state.consecutive !== 0) state.consecutive = 0;
  }

  /** Records a failure; `population` is how many targets the service has (for the max-ejection cap). */
  failure(cluster: string, population: number, cause: FailureCause = 'response'): boolean {
    const now = this.clock.now();
    const state = this.state(cluster);
    if (now - state.lastFailure > this.config.intervalMs * 10) state.consecutive = 0;
    state.lastFailure = now;
    state.consecutive += 1;
    if (state.consecutive < this.config.consecutiveErrors || this.isEjected(cluster)) return false;
    // As Envoy: at most maxEjectionPercent of the targets, but always at least one.
    const ejectedNow = [...this.states.values()].filter((s) => s.ejectedUntil > now).length;
    if (ejectedNow > 0 && ((ejectedNow + 1) * 100) / Math.max(1, population) > this.config.maxEjectionPercent) return false;
    state.ejections += 1;
    state.ejectedBy = cause;
    state.consecutive = 0;
    state.ejectedUntil = now + this.config.baseEjectionTimeMs * state.ejections;
    for (const listener of this.listeners) listener(cluster, true);
    return true;
  }

  isEjected(cluster: string): boolean {
    const state = this.states.get(cluster);
    if (!state || state.ejectedUntil === 0) return false;
    if (state.ejectedUntil > this.clock.now()) return true;
    state.ejectedUntil = 0;
    for (const listener of this.listeners) listener(cluster, false);
    return false;
  }

  /**
   * Ends an ejection early: the cluster passed its active health checks again (Envoy's
   * successful_active_health_check_uneject_host). The ejection count stays, so a relapse is
   * ejected for longer.
   */
  uneject(cluster: string): void {
    const state = this.states.get(cluster);
    if (!state || state.ejectedUntil === 0) return;
    state.ejectedUntil = 0;
    state.consecutive = 0;
    for (const listener of this.listeners) listener(cluster, false);
  }

  /**
   * A passing active health check of the cluster's gateway: lifts an ejection that transport
   * failures caused (the gateway was down, or restarted within the checks' window and so was
   * never seen down), so traffic returns within a check interval instead of a whole ejection
   * time. An ejection for 5xx answers stays: the gateway was up, its service was not.
   */
  gatewayPassedCheck(cluster: string): boolean {
    const state = this.states.get(cluster);
    if (!state || state.ejectedUntil === 0 || state.ejectedBy !== 'transport') return false;
    this.uneject(cluster);
    return true;
  }

  /** The clusters ejected now, with when each ejection ends and what caused it (for /config). */
  ejections(): Array<{ cluster: string; until: number; cause: FailureCause; count: number }> {
    const now = this.clock.now();
    return [...this.states].filter(([, s]) => s.ejectedUntil > now).map(([cluster, s]) => ({ cluster, until: s.ejectedUntil, cause: s.ejectedBy, count: s.ejections }));
  }

  /** Ends every ejection whose time is up, telling the listeners (ejections end by time, not by an event). */
  expireEnded(): void {
    const now = this.clock.now();
    for (const [cluster, state] of this.states) {
      if (state.ejectedUntil === 0 || state.ejectedUntil > now) continue;
      state.ejectedUntil = 0;
      for (const listener of this.listeners) listener(cluster, false);
    }
  }

  /** The earliest time an ejection ends (for a timer that re-admits the cluster). */
  nextExpiry(): number | undefined {
    let next: number | undefined;
    for (const state of this.states.values()) if (state.ejectedUntil > 0 && (next === undefined || state.ejectedUntil < next)) next = state.ejectedUntil;
    return next;
  }

  /** Returns to zero the ejection count of clusters healthy for a while (a back-off that heals). */
  decay(): void {
    const now = this.clock.now();
    for (const state of this.states.values()) {
      if (state.ejectedUntil === 0 && state.ejections > 0 && now - state.lastFailure > this.config.baseEjectionTimeMs * state.ejections * 2) state.ejections = 0;
    }
  }
}
