import type { Logger } from '../../core/logger.js';
import type { Clock } from '../../core/clock.js';
import { systemClock } from '../../core/clock.js';
import { OutlierDetector, type FailureCause, type OutlierDetectionConfig } from '../../balancer/outlier-detector.js';
import type { ControlView, Ejections } from '../view/control-view.js';

type EjectionListener = (cluster: string, service: string, ejected: boolean) => void;

/**
 * Every service has its own outlier detector (a policy's settings, else the federation
 * defaults): a service failing behind a healthy peer gateway — a blackhole, a broken deployment —
 * takes that cluster out for that service only. A peer gateway that is down is the health
 * checker's to detect, for every service at once. The registry follows the control view (a
 * policy or the defaults change the settings) and publishes its ejections into it.
 */
export class OutlierRegistry {
  private readonly detectors = new Map<string, { detector: OutlierDetector; config: string }>();
  private readonly listeners = new Set<EjectionListener>();
  private timer: NodeJS.Timeout | undefined;
  private view: ControlView;

  constructor(
    private readonly options: {
      view: ControlView;
      /** Publishes the current ejections (into the control view). */
      publish: (ejections: Ejections) => void;
      log: Logger;
      clock?: Clock;
      /** How often ended ejections are looked for (they end by time, not by an event). */
      sweepMs?: number;
    },
  ) {
    this.view = options.view;
  }

  /** Listens to ejections and readmissions, per service and cluster. */
  onEjection(listener: EjectionListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** A new control view: detectors take the settings it gives their service. */
  onView(view: ControlView): void {
    this.view = view;
    for (const [service, entry] of this.detectors) {
      const settings = settingsFor(view, service);
      const config = configKey(settings);
      if (config !== entry.config) {
        entry.detector.configure(settings);
        entry.config = config;
      }
    }
  }

  /** Records one attempt's outcome at `cluster`; `population` bounds how many may be ejected at once. */
  record(service: string, cluster: string, failed: FailureCause | undefined, population: number): void {
    const detector = this.detectorOf(service);
    if (failed === undefined) detector.success(cluster);
    else detector.failure(cluster, population, failed);
  }

  /** A peer gateway passed its health check: lifts ejections that transport failures caused. */
  gatewayPassedCheck(cluster: string): boolean {
    let lifted = false;
    for (const { detector } of this.detectors.values()) lifted = detector.gatewayPassedCheck(cluster) || lifted;
    return lifted;
  }

  /** The peer gateway came back after being down: every ejection of it ends. */
  unejectAll(cluster: string): void {
    for (const { detector } of this.detectors.values()) detector.uneject(cluster);
  }

  /** Current ejections, by service, for /config. */
  describe(): Record<string, Array<{ cluster: string; until: string; cause: FailureCause; ejections: number }>> {
    const out: Record<string, Array<{ cluster: string; until: string; cause: FailureCause; ejections: number }>> = {};
    for (const [service, { detector }] of this.detectors) {
      const list = detector.ejections().map((e) => ({ cluster: e.cluster, until: new Date(e.until).toISOString(), cause: e.cause, ejections: e.count }));
      if (list.length > 0) out[service] = list;
    }
    return out;
  }

  start(): void {
    const clock = this.options.clock ?? systemClock;
    this.timer = setInterval(() => {
      // An ejection that ended must reach the view: isEjected() notices it and fires the change.
      const now = clock.now();
      for (const [, { detector }] of this.detectors) {
        if ((detector.nextExpiry() ?? Infinity) <= now) detector.expireEnded();
        detector.decay();
      }
    }, this.options.sweepMs ?? 250);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  private detectorOf(service: string): OutlierDetector {
    const known = this.detectors.get(service);
    if (known) return known.detector;
    const settings = settingsFor(this.view, service);
    const detector = new OutlierDetector(settings, this.options.clock ?? systemClock);
    detector.onChange((cluster, ejected) => {
      this.options.log.warn({ cluster, service, ejected }, ejected ? 'cluster ejected for one service by its outlier detection' : 'cluster back for one service');
      this.options.publish(this.snapshot());
      for (const listener of this.listeners) listener(cluster, service, ejected);
    });
    this.detectors.set(service, { detector, config: configKey(settings) });
    return detector;
  }

  private snapshot(): Ejections {
    const now = (this.options.clock ?? systemClock).now();
    const out = new Map<string, ReadonlySet<string>>();
    for (const [service, { detector }] of this.detectors) {
      const ejected = detector.ejections().filter((e) => e.until > now);
      if (ejected.length > 0) out.set(service, new Set(ejected.map((e) => e.cluster)));
    }
    return out;
  }
}

function settingsFor(view: ControlView, service: string): OutlierDetectionConfig {
  const slash = service.indexOf('/');
  const policy = view.servicePolicy(service.slice(0, slash), service.slice(slash + 1));
  const od = policy.outlierDetection;
  if (od.dedicated) return { consecutiveErrors: od.consecutiveErrors, intervalMs: od.intervalMs, baseEjectionTimeMs: od.baseEjectionTimeMs, maxEjectionPercent: od.maxEjectionPercent };
  const d = view.defaults.outlierDetection;
  return { consecutiveErrors: d.consecutiveErrors, intervalMs: d.interval, baseEjectionTimeMs: d.baseEjectionTime, maxEjectionPercent: d.maxEjectionPercent };
}

function configKey(settings: OutlierDetectionConfig): string {
  return `${settings.consecutiveErrors}/${settings.intervalMs}/${settings.baseEjectionTimeMs}/${settings.maxEjectionPercent}`;
}
