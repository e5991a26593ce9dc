import { CertificateAuthority } from '../pki/certificate-authority.js';
import { formatSkew, validityProblem } from './connection-diagnosis.js';

describe('formatSkew', () => {
  it.each([
    [7_199_000, '2h'],
    [90 * 60_000 + 20_000, '1h30m'],
    [29_400, '29s'],
    [200, '1s'],
    [-3 * 86_400_000, '3d'],
  ])('%d ms reads %s', (ms, text) => {
    expect(formatSkew(ms)).toBe(text);
  });
});

describe('validityProblem', () => {
  const certificate = CertificateAuthority.create({ trustDomain: 'skew.test', ttlMs: 3_600_000 }).certificate;
  const from = Date.parse(certificate.validFrom);
  const to = Date.parse(certificate.validTo);

  it('names a certificate not valid yet and by how much this clock is behind', () => {
    expect(validityProblem(certificate, 'the cert', from - 2 * 3_600_000)).toEqual({
      code: 'before',
      skewMs: 2 * 3_600_000,
      message: `the cert is valid from ${new Date(from).toISOString().replace('.000Z', 'Z')}, 2h ahead of this machine's clock`,
    });
  });

  it('names an expired certificate and how long ago it expired', () => {
    expect(validityProblem(certificate, 'the cert', to + 45 * 60_000)).toEqual({
      code: 'after',
      skewMs: 45 * 60_000,
      message: `the cert expired at ${new Date(to).toISOString().replace('.000Z', 'Z')}, 45m ago by this machine's clock`,
    });
  });

  it('finds nothing inside the window', () => {
    expect(validityProblem(certificate, 'the cert', from + 1000)).toBeUndefined();
  });
});
