import { normalizePath, removeDotSegments, type PathNormalization } from './path-normalization.js';

describe('path normalization (issue 28, finding 4: authorization on un-normalized paths)', () => {
  const dflt: PathNormalization = 'decode-and-merge-slashes';

  it.each([
    ['/admin/x', '/admin/x'],
    ['/./admin/x', '/admin/x'],
    ['//admin/x', '/admin/x'],
    ['/x/../admin/x', '/admin/x'],
    ['/%61dmin/x', '/admin/x'],
    ['/%2e/admin/x', '/admin/x'],
    ['/%2E%2E/admin/x', '/admin/x'],
    ['/a/b/../../../admin/x', '/admin/x'],
    ['http://payments.default.svc.clusterset.local:8080/admin/x', '/admin/x'],
    ['http://payments.default.svc.clusterset.local:8080', '/'],
    ['/admin/x?next=/../y&a=%2f', '/admin/x?next=/../y&a=%2f'],
    ['/caf%c3%a9', '/caf%C3%A9'],
    ['/a/.', '/a/'],
    ['/a/..', '/'],
  ])('%s → %s', (input, expected) => {
    expect(normalizePath(input, dflt)).toEqual({ ok: true, path: expected });
  });

  it.each([
    ['/admin%2Fx', 'encoded slash'],
    ['/admin%5cx', 'encoded backslash'],
    ['/admin\\x', 'backslash in the path'],
    ['/admin/%zz', 'is not a percent-encoding'],
    ['*', 'not an origin-form'],
  ])('%s is refused (%s)', (input, reason) => {
    const result = normalizePath(input, dflt);
    expect(result.ok).toBe(false);
    expect(result.ok === false && result.reason).toContain(reason);
  });

  it('each mode does what it names, and no more', () => {
    expect(normalizePath('//a/./b%2Fc', 'none')).toEqual({ ok: true, path: '//a/./b%2Fc' });
    expect(normalizePath('//a/./b%2fc', 'base')).toEqual({ ok: true, path: '//a/b%2Fc' });
    expect(normalizePath('//a/./b%2fc', 'merge-slashes')).toEqual({ ok: true, path: '/a/b%2Fc' });
    expect(normalizePath('//a/./b%2fc', 'decode-and-merge-slashes').ok).toBe(false);
  });

  it('removes dot segments as RFC 3986 §5.2.4 does', () => {
    // The examples of RFC 3986 §5.4, as paths.
    expect(removeDotSegments('/a/b/c/./../../g')).toBe('/a/g');
    expect(removeDotSegments('/mid/content=5/../6')).toBe('/mid/6');
    expect(removeDotSegments('/../../g')).toBe('/g');
  });
});
