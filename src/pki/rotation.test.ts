import { jest } from '@jest/globals';
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
    // Lifetime is 65 minutes (backdated 5); half of it from notBefore is 27.5 minutes after issue.
    for (const gap of gaps) expect(gap).toBe(27.5 * 60_000);
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
    jest.advanceTimersByTime(27.5 * 60_000 + 35_000);
    expect(rotating.current).toBe(first);
    expect(attempts).toBeGreaterThanOrEqual(3);
    fail = false;
    jest.advanceTimersByTime(60_000);
    expect(rotating.current).not.toBe(first);
    rotating.stop();
  });
});
