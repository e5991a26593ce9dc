import { SpiffeId, trustDomainProblem } from './spiffe-id.js';

describe('SpiffeId.parse', () => {
  it.each([
    ['spiffe://us-east.acme.internal', 'us-east.acme.internal', ''],
    ['spiffe://us-east.acme.internal/fedgate/gateway/us-east', 'us-east.acme.internal', '/fedgate/gateway/us-east'],
    ['spiffe://td/ns/default/sa/Payments_v2.1-x', 'td', '/ns/default/sa/Payments_v2.1-x'],
  ])('accepts %s', (text, trustDomain, path) => {
    const id = SpiffeId.parse(text);
    expect(id.trustDomain).toBe(trustDomain);
    expect(id.path).toBe(path);
    expect(id.toString()).toBe(text);
  });

  it.each([
    ['http://td/a', 'it must start with "spiffe://"'],
    ['SPIFFE://td/a', 'it must start with "spiffe://"'],
    ['spiffe://', 'trust domain is empty'],
    ['spiffe:///a', 'trust domain is empty'],
    ['spiffe://US-east/a', 'trust domain must be lower case'],
    ['spiffe://td:8443/a', 'trust domain must not contain a port'],
    ['spiffe://user@td/a', 'trust domain must not contain user info'],
    ['spiffe://t%64/a', 'trust domain must not be percent-encoded'],
    [`spiffe://${'a'.repeat(256)}/x`, 'trust domain is longer than 255 bytes'],
    ['spiffe://td/a/../b', 'path must not contain "." or ".." segments'],
    ['spiffe://td/a/./b', 'path must not contain "." or ".." segments'],
    ['spiffe://td/a//b', 'path must not contain empty segments ("//")'],
    ['spiffe://td/a/', 'path must not end with "/"'],
    ['spiffe://td/', 'path must not end with "/"'],
    ['spiffe://td/a%2Fb', 'path must not be percent-encoded'],
    ['spiffe://td/a?x=1', 'SPIFFE ID must not have a query'],
    ['spiffe://td/a#frag', 'SPIFFE ID must not have a fragment'],
    ['spiffe://td/a b', 'path contains " "'],
    [`spiffe://td/${'a'.repeat(2040)}`, 'SPIFFE ID is longer than 2048 bytes'],
  ])('rejects %s', (text, reason) => {
    expect(() => SpiffeId.parse(text)).toThrow(reason);
    expect(SpiffeId.tryParse(text)).toBeUndefined();
  });

  it('accepts a trust domain of exactly 255 bytes and an ID of exactly 2048 bytes', () => {
    expect(trustDomainProblem('a'.repeat(255))).toBeUndefined();
    const id = `spiffe://td/${'a'.repeat(2048 - 'spiffe://td/'.length)}`;
    expect(SpiffeId.parse(id).toString()).toHaveLength(2048);
  });

  it('compares parsed IDs, not strings', () => {
    expect(SpiffeId.parse('spiffe://td/a/b').equals(SpiffeId.of('td', 'a', 'b'))).toBe(true);
    expect(SpiffeId.parse('spiffe://td/a/b').equals(SpiffeId.parse('spiffe://td/a/B'))).toBe(false);
    expect(SpiffeId.parse('spiffe://td/a').equals(SpiffeId.parse('spiffe://td2/a'))).toBe(false);
  });

  it('builds and recognises fedgate identities', () => {
    const gateway = SpiffeId.gateway('us-east.acme.internal', 'us-east');
    expect(gateway.toString()).toBe('spiffe://us-east.acme.internal/fedgate/gateway/us-east');
    expect(gateway.gatewayCluster).toBe('us-east');
    expect(SpiffeId.workload('td', 'default', 'web').namespace).toBe('default');
    expect(SpiffeId.workload('td', 'default', 'web').gatewayCluster).toBeUndefined();
    expect(() => SpiffeId.gateway('td', 'bad/name')).toThrow();
  });
});
