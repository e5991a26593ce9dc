import { ManualClock } from '../core/clock.js';
import { OutlierDetector } from './outlier-detector.js';

describe('OutlierDetector', () => {
  const config = { consecutiveErrors: 3, intervalMs: 1000, baseEjectionTimeMs: 10_000, maxEjectionPercent: 50 };

  it('ejects after consecutive errors, for longer each time, and readmits', () => {
    const clock = new ManualClock(0);
    const detector = new OutlierDetector(config, clock);
    const events: string[] = [];
    detector.onChange((cluster, ejected) => events.push(`${cluster}:${ejected}`));
    detector.failure('a', 4);
    detector.failure('a', 4);
    detector.success('a');
    detector.failure('a', 4);
    detector.failure('a', 4);
    expect(detector.isEjected('a')).toBe(false);
    expect(detector.failure('a', 4)).toBe(true);
    expect(detector.isEjected('a')).toBe(true);
    clock.advance(10_001);
    expect(detector.isEjected('a')).toBe(false);
    for (let i = 0; i < 3; i++) detector.failure('a', 4);
    clock.advance(10_001);
    expect(detector.isEjected('a')).toBe(true);
    clock.advance(10_000);
    expect(detector.isEjected('a')).toBe(false);
    expect(events).toEqual(['a:true', 'a:false', 'a:true', 'a:false']);
  });

  it('never ejects more than the maximum share, but always at least one', () => {
    const detector = new OutlierDetector({ ...config, maxEjectionPercent: 30 }, new ManualClock(0));
    for (let i = 0; i < 3; i++) detector.failure('a', 3);
    for (let i = 0; i < 3; i++) detector.failure('b', 3);
    expect(detector.isEjected('a')).toBe(true);
    expect(detector.isEjected('b')).toBe(false);
  });

  it('a passing gateway health check lifts an ejection caused by transport failures, not one caused by 5xx answers', () => {
    const clock = new ManualClock(0);
    const detector = new OutlierDetector(config, clock);
    for (let i = 0; i < 3; i++) detector.failure('restarted', 4, 'transport');
    for (let i = 0; i < 3; i++) detector.failure('blackholed', 4, 'response');
    expect(detector.isEjected('restarted')).toBe(true);
    expect(detector.isEjected('blackholed')).toBe(true);
    expect(detector.gatewayPassedCheck('restarted')).toBe(true);
    expect(detector.gatewayPassedCheck('blackholed')).toBe(false);
    expect(detector.isEjected('restarted')).toBe(false);
    expect(detector.isEjected('blackholed')).toBe(true);
    // Nothing to lift the second time; the ejection count stays, so a relapse is ejected longer.
    expect(detector.gatewayPassedCheck('restarted')).toBe(false);
    for (let i = 0; i < 3; i++) detector.failure('restarted', 4, 'transport');
    clock.advance(15_000);
    expect(detector.isEjected('restarted')).toBe(true);
  });
});
