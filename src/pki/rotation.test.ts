import { jest } from '@jest/globals';
import type { Logger } from '../core/logger.js';
import { SpiffeId } from '../model/spiffe-id.js';
import { CertificateAuthority } from './certificate-authority.js';
import { RotatingSvid } from './rotation.js';
import { issueSvid } from './svid.js';

describe('RotatingSvid', () => {
  afterEach(() => jest.useRealTimers());

  it('re-issues at no more than half the lifetime, again and again', () => {
    jest.useFakeTimers({ now: Date.parse('2030-01-01T00:00:00Z') });
    const ca = CertificateAuthority.create({ trustDomain: 'td', clock: { now: () => Date.now() } });
    const issuedAt: number[] = [];
    const rotating = new RotatingSvid(() => {
      issuedAt.push(Date.now());
      return issueSvid(ca, SpiffeId.gateway('td', 'a'), { ttlMs: 3_600_000 });
    }, { clock: { now: () => Date.now() } });
    const rotations: string[] = [];
    rotating.onRotate((svid) => rotations.push(svid.certificate.serialNumber));
    rotating.start();
    jest.advanceTimersByTime(4 * 3_600_000);
    rotating.stop();
    const gaps = issuedAt.slice(1).map((t, i) => t - (issuedAt[i] as number));
    expect(rotations.length).toBeGreaterThanOrEqual(8);
    // Half of the hour from when each certificate arrived (not from its backdated notBefore).
    for (const gap of gaps) expect(gap).toBe(30 * 60_000);
    expect(new Set(rotations).size).toBe(rotations.length);
  });

  it('keeps the current certificate and retries when renewal fails', () => {
    jest.useFakeTimers({ now: Date.parse('2030-01-01T00:00:00Z') });
    const ca = CertificateAuthority.create({ trustDomain: 'td', clock: { now: () => Date.now() } });
    let fail = false;
    let attempts = 0;
    const rotating = new RotatingSvid(() => {
      attempts += 1;
      if (fail) throw new Error('CA unavailable');
      return issueSvid(ca, SpiffeId.gateway('td', 'a'), { ttlMs: 3_600_000 });
    }, { clock: { now: () => Date.now() } });
    const first = rotating.current;
    fail = true;
    rotating.start();
    jest.advanceTimersByTime(30 * 60_000 + 35_000);
    expect(rotating.current).toBe(first);
    expect(attempts).toBeGreaterThanOrEqual(3);
    fail = false;
    jest.advanceTimersByTime(60_000);
    expect(rotating.current).not.toBe(first);
    rotating.stop();
  });

  it('renews short-lived certificates at half their life, not in a loop (backdating ignored)', () => {
    jest.useFakeTimers({ now: Date.parse('2030-01-01T00:00:00Z') });
    const ca = CertificateAuthority.create({ trustDomain: 'td', clock: { now: () => Date.now() } });
    let issued = 0;
    const rotating = new RotatingSvid(() => {
      issued += 1;
      return issueSvid(ca, SpiffeId.gateway('td', 'a'), { ttlMs: 60_000 });
    }, { clock: { now: () => Date.now() } });
    rotating.start();
    jest.advanceTimersByTime(5 * 60_000);
    rotating.stop();
    // One at construction, then one every 30 s.
    expect(issued).toBe(11);
  });

  describe('with an asynchronous issuer (a signer)', () => {
    const clock = { now: () => Date.now() };

    function signer(ca: CertificateAuthority, ttlMs: number) {
      const state = { down: false, calls: 0 };
      const issue = async () => {
        state.calls += 1;
        await Promise.resolve();
        if (state.down) throw new Error('connect ECONNREFUSED 127.0.0.1:15016');
        return issueSvid(ca, SpiffeId.gateway('td', 'a'), { ttlMs });
      };
      return { state, issue };
    }

    it('obtains the first SVID, then renews at half-life, notifying listeners', async () => {
      jest.useFakeTimers({ now: Date.parse('2030-01-01T00:00:00Z') });
      const ca = CertificateAuthority.create({ trustDomain: 'td', clock });
      const { state, issue } = signer(ca, 600_000);
      const rotating = await RotatingSvid.obtain(issue, { clock });
      const seen: string[] = [];
      rotating.onRotate((svid) => seen.push(svid.certificate.serialNumber));
      rotating.start();
      await jest.advanceTimersByTimeAsync(300_000 - 1);
      expect(state.calls).toBe(1);
      await jest.advanceTimersByTimeAsync(1);
      expect(state.calls).toBe(2);
      await jest.advanceTimersByTimeAsync(3 * 300_000);
      rotating.stop();
      expect(seen).toHaveLength(4);
      expect(rotating.health()).toEqual({ state: 'valid', notAfter: rotating.current.notAfter, lastError: undefined });
    });

    it('refuses the synchronous constructor without an initial SVID', () => {
      const ca = CertificateAuthority.create({ trustDomain: 'td' });
      expect(() => new RotatingSvid(signer(ca, 60_000).issue)).toThrow('use RotatingSvid.obtain()');
    });

    it('keeps a valid certificate while the signer is down, retrying with growing delays, and recovers', async () => {
      jest.useFakeTimers({ now: Date.parse('2030-01-01T00:00:00Z') });
      const ca = CertificateAuthority.create({ trustDomain: 'td', clock });
      const { state, issue } = signer(ca, 3_600_000);
      const rotating = await RotatingSvid.obtain(issue, { clock, retry: { initialMs: 1000, maxMs: 60_000, jitter: 0 } });
      const first = rotating.current;
      state.down = true;
      rotating.start();
      await jest.advanceTimersByTimeAsync(1_800_000);
      const attempts: number[] = [];
      for (let i = 0; i < 5; i++) {
        const before = state.calls;
        let waited = 0;
        while (state.calls === before) {
          await jest.advanceTimersByTimeAsync(100);
          waited += 100;
        }
        attempts.push(waited);
      }
      // 1 s, 2 s, 4 s, 8 s, 16 s after the first failure: exponential back-off.
      expect(attempts).toEqual([1000, 2000, 4000, 8000, 16000]);
      expect(rotating.current).toBe(first);
      expect(rotating.health()).toMatchObject({ state: 'valid', lastError: 'connect ECONNREFUSED 127.0.0.1:15016' });
      state.down = false;
      await jest.advanceTimersByTimeAsync(32_000);
      expect(rotating.current).not.toBe(first);
      expect(rotating.health().lastError).toBeUndefined();
      rotating.stop();
    });

    it('never waits past a quarter of the life left between retries, so a short outage is bridged', async () => {
      jest.useFakeTimers({ now: Date.parse('2030-01-01T00:00:00Z') });
      const ca = CertificateAuthority.create({ trustDomain: 'td', clock });
      const { state, issue } = signer(ca, 8_000);
      const rotating = await RotatingSvid.obtain(issue, { clock, retry: { initialMs: 10_000, maxMs: 60_000, jitter: 0 } });
      state.down = true;
      rotating.start();
      await jest.advanceTimersByTimeAsync(4_000);
      const callsAtRenewal = state.calls;
      await jest.advanceTimersByTimeAsync(3_000);
      // 4 s left: retries after 1 s, 0.75 s, 0.56 s … rather than after the 10 s back-off.
      expect(state.calls - callsAtRenewal).toBeGreaterThanOrEqual(4);
      state.down = false;
      await jest.advanceTimersByTimeAsync(1_000);
      expect(rotating.health().state).toBe('valid');
      expect(rotating.current.notAfter.getTime()).toBeGreaterThan(Date.now() + 5_000);
      rotating.stop();
    });

    it('reports an expired certificate when the signer stays down, logs the error code, and recovers once it is back', async () => {
      jest.useFakeTimers({ now: Date.parse('2030-01-01T00:00:00Z') });
      const ca = CertificateAuthority.create({ trustDomain: 'td', clock });
      const { state, issue } = signer(ca, 8_000);
      const errors: unknown[] = [];
      const log = { info: () => undefined, warn: () => undefined, error: (fields: unknown) => errors.push(fields) } as unknown as Logger;
      const rotating = await RotatingSvid.obtain(issue, { clock, log, retry: { initialMs: 1000, maxMs: 5_000, jitter: 0 } });
      state.down = true;
      rotating.start();
      await jest.advanceTimersByTimeAsync(9_000);
      expect(rotating.health()).toMatchObject({ state: 'expired', lastError: 'connect ECONNREFUSED 127.0.0.1:15016' });
      await jest.advanceTimersByTimeAsync(5_000);
      expect(errors[0]).toMatchObject({ code: 'FEDGATE_ERR_CERTIFICATE_EXPIRED', err: 'connect ECONNREFUSED 127.0.0.1:15016' });
      state.down = false;
      await jest.advanceTimersByTimeAsync(5_000);
      expect(rotating.health().state).toBe('valid');
      rotating.stop();
    });

    it('starts from a persisted SVID without asking the issuer, and stops cleanly mid-request', async () => {
      jest.useFakeTimers({ now: Date.parse('2030-01-01T00:00:00Z') });
      const ca = CertificateAuthority.create({ trustDomain: 'td', clock });
      const { state, issue } = signer(ca, 600_000);
      const persisted = issueSvid(ca, SpiffeId.gateway('td', 'a'), { ttlMs: 600_000 });
      const rotating = await RotatingSvid.obtain(issue, { clock, initial: persisted });
      expect(state.calls).toBe(0);
      expect(rotating.current).toBe(persisted);
      rotating.start();
      const renewal = rotating.renew();
      rotating.stop();
      await renewal;
      await jest.advanceTimersByTimeAsync(3_600_000);
      expect(state.calls).toBe(1);
    });
  });
});
