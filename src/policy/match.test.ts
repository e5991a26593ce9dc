import type { ShapeIssue } from '../config/shape.js';
import { requestMatchShape } from './kinds.js';
import { anyRequestMatches, compileRequestMatch, identityParts, pathOnly, pathPatternMatches, principalMatches, requestMatches, type RequestFacts } from './match.js';
import type { RequestMatch } from './service-policy.js';

/** A match as written in a policy, validated by the real schema, then compiled. */
function compiled(doc: Record<string, unknown>): RequestMatch {
  const issues: ShapeIssue[] = [];
  const checked = requestMatchShape.check(doc, [], issues);
  expect(issues).toEqual([]);
  if (checked === undefined) throw new Error('invalid match');
  return compileRequestMatch(checked);
}

function request(overrides: Partial<RequestFacts> = {}): RequestFacts {
  return { method: 'GET', path: '/api/v1/items?page=2', headers: { 'x-user': 'alice', 'x-version': 'v1', accept: 'application/json' }, ...overrides };
}

describe('request matching', () => {
  it.each<[string, Record<string, unknown>, Partial<RequestFacts>, boolean]>([
    ['header exact: equal', { headers: { 'x-user': { exact: 'alice' } } }, {}, true],
    ['header exact: different', { headers: { 'x-user': { exact: 'bob' } } }, {}, false],
    ['header exact: case matters in values', { headers: { 'x-user': { exact: 'Alice' } } }, {}, false],
    ['header exact: absent header', { headers: { 'x-team': { exact: 'a' } } }, {}, false],
    ['header prefix: starts with', { headers: { accept: { prefix: 'application/' } } }, {}, true],
    ['header prefix: does not', { headers: { accept: { prefix: 'text/' } } }, {}, false],
    ['header regex: matches the whole value', { headers: { 'x-version': { regex: 'v[0-9]' } } }, {}, true],
    ['header regex: a partial match is not enough', { headers: { 'x-version': { regex: 'v' } } }, {}, false],
    ['header regex: anchoring covers alternations', { headers: { 'x-version': { regex: 'v2|v1' } } }, { headers: { 'x-version': 'v11' } }, false],
    ['header regex: alternation, full value', { headers: { 'x-version': { regex: 'v2|v1' } } }, {}, true],
    ['header present: true, present', { headers: { 'x-user': { present: true } } }, {}, true],
    ['header present: true, absent', { headers: { 'x-debug': { present: true } } }, {}, false],
    ['header present: true, empty value', { headers: { 'x-debug': { present: true } } }, { headers: { 'x-debug': '' } }, true],
    ['header present: false, absent', { headers: { 'x-debug': { present: false } } }, {}, true],
    ['header present: false, present', { headers: { 'x-user': { present: false } } }, {}, false],
    ['header repeated: values joined with ","', { headers: { 'x-user': { exact: 'alice,bob' } } }, { headers: { 'x-user': ['alice', 'bob'] } }, true],
    ['header numeric value', { headers: { 'content-length': { exact: '42' } } }, { headers: { 'content-length': 42 } }, true],
    ['headers: all must match', { headers: { 'x-user': { exact: 'alice' }, 'x-version': { exact: 'v2' } } }, {}, false],
    ['path exact: query string ignored', { path: { exact: '/api/v1/items' } }, {}, true],
    ['path exact: different', { path: { exact: '/api/v1' } }, {}, false],
    ['path prefix', { path: { prefix: '/api/' } }, {}, true],
    ['path prefix: does not match', { path: { prefix: '/admin' } }, {}, false],
    ['path prefix: the query is not part of the path', { path: { prefix: '/api/v1/items?page' } }, {}, false],
    ['path regex: whole path', { path: { regex: '/api/v[0-9]+/.*' } }, {}, true],
    ['path regex: partial match is not enough', { path: { regex: '/api' } }, {}, false],
    ['methods: listed', { methods: ['GET', 'HEAD'] }, {}, true],
    ['methods: not listed', { methods: ['POST'] }, {}, false],
    ['all conditions of one match (AND): all hold', { headers: { 'x-user': { exact: 'alice' } }, path: { prefix: '/api' }, methods: ['GET'] }, {}, true],
    ['all conditions of one match (AND): method fails', { headers: { 'x-user': { exact: 'alice' } }, path: { prefix: '/api' }, methods: ['GET'] }, { method: 'PUT' }, false],
    ['an empty match matches every request', {}, { method: 'DELETE', path: '/', headers: {} }, true],
  ])('%s', (_name, doc, overrides, expected) => {
    expect(requestMatches(compiled(doc), request(overrides))).toBe(expected);
  });

  it('anyRequestMatches: any of the matches (OR); no matches at all matches everything', () => {
    const matches = [compiled({ methods: ['POST'] }), compiled({ headers: { 'x-user': { exact: 'alice' } } })];
    expect(anyRequestMatches(matches, request())).toBe(true);
    expect(anyRequestMatches(matches, request({ headers: {} }))).toBe(false);
    expect(anyRequestMatches(matches, request({ method: 'POST', headers: {} }))).toBe(true);
    expect(anyRequestMatches([], request())).toBe(true);
  });

  it('compileRequestMatch prepares anchored regular expressions once', () => {
    expect(compiled({ headers: { 'x-a': { regex: 'a|b' } }, path: { regex: '/v[0-9]' }, methods: ['GET'] })).toEqual({
      headers: [{ name: 'x-a', regex: /^(?:a|b)$/ }],
      pathRegex: /^(?:\/v[0-9])$/,
      methods: ['GET'],
    });
    expect(compiled({ path: { exact: '/a' } })).toEqual({ headers: [], pathExact: '/a' });
  });

  it('pathOnly drops the query string', () => {
    expect(pathOnly('/a/b?c=d?e')).toBe('/a/b');
    expect(pathOnly('/a/b')).toBe('/a/b');
  });
});

describe('principal patterns', () => {
  it.each<[string, string, boolean]>([
    ['*', 'spiffe://td/ns/shop/sa/web', true],
    ['spiffe://td/ns/shop/sa/web', 'spiffe://td/ns/shop/sa/web', true],
    ['spiffe://td/ns/shop/sa/web', 'spiffe://td/ns/shop/sa/web2', false],
    ['spiffe://td/ns/shop/*', 'spiffe://td/ns/shop/sa/x', true],
    ['spiffe://td/ns/shop/*', 'spiffe://td/ns/shopping/sa/x', false],
    ['spiffe://td/ns/shop/*', 'spiffe://td/ns/shop', false],
    ['spiffe://td/*', 'spiffe://td/anything', true],
    ['spiffe://td/*', 'spiffe://td2/anything', false],
    ['*/sa/web', 'spiffe://td/ns/shop/sa/web', true],
    ['*/sa/web', 'spiffe://td/ns/shop/sa/xweb', false],
    ['*/sa/web', 'spiffe://td/ns/shop/xsa/web', false],
    ['*/sa/web', 'spiffe://td/sa/web', true],
    ['*/sa/web', 'spiffe://sa/web', false],
    ['*/web', 'spiffe://web', false],
  ])('%s ~ %s → %s', (pattern, id, expected) => {
    expect(principalMatches(pattern, id)).toBe(expected);
  });
});

describe('authorization path patterns', () => {
  it.each<[string, string, boolean]>([
    ['*', '/', true],
    ['/api/items', '/api/items', true],
    ['/api/items', '/api/items?x=1', true],
    ['/api/items', '/api/items/', false],
    ['/api/*', '/api/', true],
    ['/api/*', '/api/x/y?z', true],
    ['/api/*', '/api', false],
    ['*.json', '/a/b.json', true],
    ['*.json', '/a/b.json?pretty', true],
    ['*.json', '/a/b.jsonp', false],
  ])('%s ~ %s → %s', (pattern, path, expected) => {
    expect(pathPatternMatches(pattern, path)).toBe(expected);
  });
});

describe('identityParts', () => {
  it.each<[string, { trustDomain: string; namespace: string | undefined }]>([
    ['spiffe://td.example/ns/shop/sa/web', { trustDomain: 'td.example', namespace: 'shop' }],
    ['spiffe://td.example/ns/shop', { trustDomain: 'td.example', namespace: 'shop' }],
    ['spiffe://td.example/fedgate/gateway/us-east', { trustDomain: 'td.example', namespace: undefined }],
    ['spiffe://td.example/x/ns/shop', { trustDomain: 'td.example', namespace: undefined }],
    ['spiffe://td.example', { trustDomain: 'td.example', namespace: undefined }],
  ])('%s', (id, expected) => {
    expect(identityParts(id)).toEqual(expected);
  });
});
