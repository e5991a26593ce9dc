import { jest } from '@jest/globals';
import { gatewayDefaultsShape, type GatewayDefaults } from '../../config/federation-config.js';
import { createSilentLogger } from '../../core/logger.js';
import { HealthChecker, healthCheckConfig, type HealthCheckConfig } from './health-checker.js';

const config: HealthCheckConfig = { intervalMs: 100, timeoutMs: 50, unhealthyThreshold: 3, healthyThreshold: 2 };

/** Peers answer their pings as `answers` says at the time of the ping. */
function setup(cfg = config): { checker: HealthChecker; answers: Map<string, boolean>; pings: string[]; changes: Array<[string, boolean, string]>; passes: string[] } {
  const answers = new Map<string, boolean>();
  const pings: string[] = [];
  const changes: Array<[string, boolean, string]> = [];
  const passes: string[] = [];
  const checker = new HealthChecker(
    cfg,
    async (cluster, timeoutMs) => {
      pings.push(`${cluster}/${timeoutMs}`);
      if (answers.get(cluster) === false) throw new Error(`${cluster}: connect ECONNREFUSED`);
      return 3;
    },
    createSilentLogger(),
  );
  checker.onChange((cluster, alive, reason) => changes.push([cluster, alive, reason]));
  checker.onPass((cluster) => passes.push(cluster));
  return { checker, answers, pings, changes, passes };
}

describe('HealthChecker', () => {
  beforeEach(() => jest.useFakeTimers());
  afterEach(() => jest.useRealTimers());

  it('reads its settings from the federation defaults', () => {
    const defaults = gatewayDefaultsShape.defaultFactory?.() as GatewayDefaults;
    expect(healthCheckConfig(defaults)).toEqual({ intervalMs: defaults.healthCheck.interval, timeoutMs: defaults.healthCheck.timeout, unhealthyThreshold: defaults.healthCheck.unhealthyThreshold, healthyThreshold: defaults.healthCheck.healthyThreshold });
  });

  it('pings every peer each interval with the timeout; peers start alive and pass', async () => {
    const { checker, pings, passes } = setup();
    checker.setPeers(['us-west', 'eu-west']);
    expect(checker.isAlive('us-west')).toBe(true);
    checker.start();
    await jest.advanceTimersByTimeAsync(0);
    expect(pings).toEqual(['us-west/50', 'eu-west/50']);
    await jest.advanceTimersByTimeAsync(100);
    expect(pings).toHaveLength(4);
    expect(passes).toEqual(['us-west', 'eu-west', 'us-west', 'eu-west']);
    expect(checker.snapshot()['us-west']).toMatchObject({ alive: true, misses: 0, rttMs: 3 });
    checker.stop();
  });

  it('marks a peer down after unhealthyThreshold misses in a row, and up after healthyThreshold answers', async () => {
    const { checker, answers, changes } = setup();
    checker.setPeers(['us-west']);
    answers.set('us-west', false);
    checker.start();
    await jest.advanceTimersByTimeAsync(100);
    expect(changes).toEqual([]);
    await jest.advanceTimersByTimeAsync(100);
    expect(changes).toEqual([['us-west', false, 'us-west: connect ECONNREFUSED']]);
    expect(checker.unhealthy()).toEqual(new Set(['us-west']));
    expect(checker.snapshot()['us-west']).toMatchObject({ alive: false, misses: 3, lastError: 'us-west: connect ECONNREFUSED' });

    answers.set('us-west', true);
    await jest.advanceTimersByTimeAsync(100);
    expect(checker.isAlive('us-west')).toBe(false);
    await jest.advanceTimersByTimeAsync(100);
    expect(changes.at(-1)).toEqual(['us-west', true, 'answered 2 checks']);
    expect(checker.unhealthy()).toEqual(new Set());
    checker.stop();
  });

  it('counts a failed connect of a request as a miss at once', () => {
    const { checker, changes } = setup({ ...config, unhealthyThreshold: 2 });
    checker.setPeers(['us-west']);
    checker.reportFailure('us-west', 'refused');
    checker.reportFailure('unknown', 'refused');
    expect(changes).toEqual([]);
    checker.reportFailure('us-west', 'refused again');
    expect(changes).toEqual([['us-west', false, 'refused again']]);
  });

  it('does not stack pings to a peer that has not answered yet', async () => {
    const pending: Array<() => void> = [];
    const pings: string[] = [];
    const checker = new HealthChecker(config, (cluster) => {
      pings.push(cluster);
      return new Promise<number>((resolve) => pending.push(() => resolve(1)));
    }, createSilentLogger());
    checker.setPeers(['us-west']);
    checker.start();
    await jest.advanceTimersByTimeAsync(300);
    expect(pings).toEqual(['us-west']);
    pending[0]?.();
    await jest.advanceTimersByTimeAsync(100);
    expect(pings).toEqual(['us-west', 'us-west']);
    checker.stop();
  });

  it('forgets peers no longer wanted, and restarts its timer on a new interval', async () => {
    const { checker, pings } = setup();
    checker.setPeers(['us-west', 'eu-west']);
    checker.setPeers(['eu-west']);
    expect(Object.keys(checker.snapshot())).toEqual(['eu-west']);
    checker.start();
    checker.start(); // already running: no second timer
    await jest.advanceTimersByTimeAsync(0);
    pings.length = 0;
    checker.configure({ ...config, intervalMs: 1000 });
    await jest.advanceTimersByTimeAsync(999);
    expect(pings).toEqual(['eu-west/50']); // the immediate check of the restart
    await jest.advanceTimersByTimeAsync(1);
    expect(pings).toEqual(['eu-west/50', 'eu-west/50']);
    checker.stop();
    expect(jest.getTimerCount()).toBe(0);
  });
});
